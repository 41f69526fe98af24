#!/usr/bin/env python
"""One model, three doors: safetensors + factory, ``onnx:FILE`` and ``export:FILE.pt2`` audited alike.

Trains ``examples/own_model`` (a residual CNN in plain PyTorch, inputs ``x / 255``) once with its own
script, exports it with ``torch.onnx.export(..., dynamo=True)`` and ``torch.export.save`` (dynamic
batch), opens each file with ``mintaudit.targets.open_target`` and measures, per door, the members'
accuracy and the LOSS AUC of ``mintaudit.audit`` (the same members, external and test samples).
Then the extraction speed: the taps (``--taps``) and the logits over every sample at batch 256,
through the hook-based Recorder, ONNX against PyTorch, both at ``--threads`` threads (best of 3).

    python benchmarks/formats.py                              # digits, 600 members, 12 epochs (a few minutes)
    python benchmarks/formats.py --dataset fashion-mnist --members 3000 --epochs 10

Ends with one line: RESULT torch_acc=<x> onnx_acc=<x> export_acc=<x> torch_auc=<x> onnx_auc=<x> export_auc=<x>
max_acc_diff=<x> max_auc_diff=<x> max_logit_diff=<x> max_tap_diff=<x> onnx_extract_ratio=<x>
(ratio = ONNX wall time / PyTorch wall time; target <= 1.5).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_model"
sys.path[:0] = [str(ROOT / "src"), str(EXAMPLE), str(Path(__file__).resolve().parent)]

import train as own_train  # noqa: E402  (examples/own_model/train.py)
from _bench import emit_result  # noqa: E402

import mintaudit  # noqa: E402
from mintaudit.data import load_dataset  # noqa: E402
from mintaudit.targets import open_target  # noqa: E402
from mintaudit.taps import Recorder  # noqa: E402


def _logits(module: torch.nn.Module, x: torch.Tensor, taps: list[str], batch: int) -> tuple[torch.Tensor, dict]:
    outs, acts = [], {t: [] for t in taps}
    with torch.no_grad(), Recorder(module, taps) as rec:
        for i in range(0, len(x), batch):
            outs.append(module(x[i : i + batch]))
            for t, v in rec.pop().items():
                acts[t].append(v)
    return torch.cat(outs), {t: torch.cat(v) for t, v in acts.items()}


def _timed(module: torch.nn.Module, x: torch.Tensor, taps: list[str], batch: int, repeats: int = 3) -> float:
    _logits(module, x[:batch], taps, batch)  # warm up (onnxruntime builds its session for these taps)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _logits(module, x, taps, batch)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--members", type=int, default=600)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--taps", default="stage2,head.3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-formats")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    warnings.simplefilter("ignore")

    own_train.main(
        [
            *("--dataset", args.dataset, "--members", str(args.members), "--test", str(args.test)),
            *("--epochs", str(args.epochs), "--seed", str(args.seed), "--out", str(out)),
        ]
    )
    ds = load_dataset(args.dataset)
    members = np.loadtxt(out / "members.txt", dtype=np.int64).reshape(-1)
    test = np.loadtxt(out / "test.txt", dtype=np.int64).reshape(-1)
    rest = np.setdiff1d(np.arange(len(ds)), np.concatenate([members, test]))
    external = np.sort(np.random.default_rng(args.seed).permutation(rest)[: max(len(test), 1)])
    c, h, w = ds.image_shape
    shape = (c, h, w)

    eager = open_target("model:build", input_shape=shape, num_classes=ds.num_classes, weights=out / "model.safetensors")
    example = own_train.to_input(ds.images[members[:2]])
    dim = {"x": {0: torch.export.Dim("batch")}}
    program = torch.export.export(eager.module, (example,), dynamic_shapes=dim)
    torch.export.save(program, str(out / "model.pt2"))
    torch.onnx.export(eager.module, (example,), str(out / "model.onnx"), dynamo=True, dynamic_shapes=dim)
    doors = {
        "torch": eager,
        "onnx": open_target(f"onnx:{out / 'model.onnx'}", input_shape=shape, num_classes=ds.num_classes),
        "export": open_target(f"export:{out / 'model.pt2'}", input_shape=shape, num_classes=ds.num_classes),
    }

    def sample_set(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return own_train.to_input(ds.images[idx]), torch.from_numpy(ds.labels[idx].astype(np.int64))

    sets = {"members": sample_set(members), "external": sample_set(external), "test": sample_set(test)}
    x_all = torch.cat([v[0] for v in sets.values()])
    taps = [t.strip() for t in args.taps.split(",") if t.strip()]
    figures: dict[str, float] = {}
    ref_logits, ref_taps = _logits(eager.module, x_all, taps, args.batch_size)
    logit_diff = tap_diff = 0.0
    for door, target in doors.items():
        logits, acts = _logits(target.module, x_all, taps, args.batch_size)
        logit_diff = max(logit_diff, float((logits - ref_logits).abs().max()))
        tap_diff = max(tap_diff, *(float((acts[t] - ref_taps[t]).abs().max()) for t in taps))
        xm, ym = sets["members"]
        with torch.no_grad():
            figures[f"{door}_acc"] = float((target.module(xm).argmax(1) == ym).float().mean())
        result = mintaudit.audit(target.module, **sets, fusion="outputs", n_bootstrap=200, seed=args.seed)
        figures[f"{door}_auc"] = next(r.metrics["auc"] for r in result.rows if r.method == "loss")
        print(f"{door}: members' accuracy {figures[f'{door}_acc']:.4f}, LOSS AUC {figures[f'{door}_auc']:.4f}")
    figures["max_acc_diff"] = max(abs(figures[f"{d}_acc"] - figures["torch_acc"]) for d in doors)
    figures["max_auc_diff"] = max(abs(figures[f"{d}_auc"] - figures["torch_auc"]) for d in doors)
    figures["max_logit_diff"] = logit_diff
    figures["max_tap_diff"] = tap_diff
    t_torch = _timed(eager.module, x_all, taps, args.batch_size)
    t_onnx = _timed(doors["onnx"].module, x_all, taps, args.batch_size)
    figures["onnx_extract_ratio"] = t_onnx / t_torch
    details = {
        "dataset": args.dataset,
        "members": len(members),
        "external": len(external),
        "test": len(test),
        "epochs": args.epochs,
        "taps": taps,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "samples_timed": len(x_all),
        "torch_seconds": t_torch,
        "onnx_seconds": t_onnx,
        "auc_from": "the LOSS row of mintaudit.audit(fusion='outputs')",
    }
    emit_result("formats", figures, details=details)


if __name__ == "__main__":
    main()

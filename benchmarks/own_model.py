#!/usr/bin/env python
"""A model trained elsewhere, audited through the command line and through the Python API.

Trains ``examples/own_model`` (a residual CNN in plain PyTorch, inputs ``x / 255``) on
Fashion-MNIST members with its own script, or reuses it. Then:

1. the command line with the default normalisation: the sanity gate must refuse (exit 2);
2. the command line with the owner's preprocessing (``--mean 0 --std 1``), its member and test
   lists, the sweep over the taps with the output signals fused in, and the LOSS baseline;
3. ``mintaudit.audit`` on DataLoaders yielding the owner's own ``x / 255`` tensors of the same
   samples, in the same order: every figure must equal the command line's.

    python benchmarks/own_model.py                        # 3,000 members, 40 epochs (~10 min on 2 cores)
    python benchmarks/own_model.py --members 600 --epochs 5 --out runs/bench-own-small
    python benchmarks/own_model.py --reference 8       # then the attacks with 8 reference models

4. with ``--reference R``: ``mintaudit attack`` on the command line's work directory, its R
   reference models trained by the owner's recipe (``examples/own_model/recipe.py``, the same
   epochs) on Fashion-MNIST images no split uses; RMIA, LiRA, InfoRMIA, calibrated MINT and
   white-box LiRA; then ``benchmarks/compare.py``'s comparison: the best white-box row by
   validation AUC against RMIA, paired bootstrap of the AUC difference, and the cost table.

Ends with one line: RESULT task_accuracy=<x> loss_auc=<x> best_mint_auc=<x> cli_equals_api=<0|1> max_diff=<x>
default_refused=<0|1>, then with --reference compare.py's keys (best_mint_auc, rmia_auc,
mint_minus_rmia_auc, mint_minus_rmia_lo, ...) (best MINT row chosen by its validation AUC, on the auditor's own MINT-training data;
cli_equals_api: the same rows with identical figures, max_diff the largest difference).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_model"


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(EXAMPLE), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=3000)
    ap.add_argument("--external", type=int, default=3000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--taps", default="stage2,head.3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-own")
    ap.add_argument("--reference", type=int, default=0, help="reference models for the attacks (0: no attacks)")
    ap.add_argument("--methods", default="rmia,lira,informia,calibrated-mint,whitebox-lira")
    args = ap.parse_args()
    out = Path(args.out)
    own, cli_dir, api_dir = out / "model", out / "cli", out / "api"
    t0 = time.perf_counter()

    if not (own / "metrics.json").is_file():
        p = _run(
            [
                str(EXAMPLE / "train.py"),
                "--dataset",
                "fashion-mnist",
                "--members",
                str(args.members),
                "--test",
                str(args.test),
                "--epochs",
                str(args.epochs),
                "--seed",
                str(args.seed),
                "--out",
                str(own),
            ]
        )
        if p.returncode:
            sys.exit(p.stderr)
    measured = json.loads((own / "metrics.json").read_text())
    t_train = time.perf_counter() - t0
    print(f"the owner's script: train accuracy {measured['train_accuracy']:.4f}, test {measured['test_accuracy']:.4f}")

    sweep = [
        "-m",
        "mintaudit.cli",
        "sweep",
        "--dataset",
        "fashion-mnist",
        "--model",
        "model:build",
        "--weights",
        str(own / "model.safetensors"),
        "--members-file",
        str(own / "members.txt"),
        "--test-file",
        str(own / "test.txt"),
        "--external",
        str(args.external),
        "--taps",
        args.taps,
        "--fusion",
        "both",
        "--seed",
        str(args.seed),
        "--quiet",
    ]
    blind = _run([*sweep, "--out", str(out / "blind")])
    refused = blind.returncode == 2 and not (out / "blind" / "report.json").exists()
    print(f"default normalisation: exit {blind.returncode}: {blind.stderr.strip()}")

    t1 = time.perf_counter()
    p = _run([*sweep, "--mean", "0", "--std", "1", "--out", str(cli_dir)])
    if p.returncode:
        sys.exit(p.stderr)
    t_cli = time.perf_counter() - t1
    cli = json.loads((cli_dir / "report.json").read_text())
    print(p.stdout)

    # the same samples, as the owner's own tensors, through the Python API
    import mintaudit
    from mintaudit.data import load_dataset

    sys.path.insert(0, str(EXAMPLE))
    from model import build  # noqa: E402
    from safetensors.torch import load_file

    splits = json.loads((cli_dir / "splits.json").read_text())
    ds = load_dataset("fashion-mnist")

    def loader(role: str) -> DataLoader:
        idx = np.asarray(splits[role], dtype=np.int64)
        x = torch.from_numpy(ds.images[idx]).permute(0, 3, 1, 2).float() / 255.0
        return DataLoader(TensorDataset(x, torch.from_numpy(ds.labels[idx])), batch_size=512)

    net = build(1, 10)
    net.load_state_dict(load_file(str(own / "model.safetensors")))
    t2 = time.perf_counter()
    result = mintaudit.audit(
        net,
        members=loader("members"),
        external=loader("external"),
        test=loader("test"),
        taps=args.taps.split(","),
        fusion="both",
        seed=args.seed,
        work_dir=api_dir,
        name="model:build",
    )
    result.write(api_dir)
    t_api = time.perf_counter() - t2

    rows = list(zip(cli["results"], result.report["results"]))
    same_rows = len(cli["results"]) == len(result.report["results"]) and all(
        (a["method"], a["layer"], a["signal"]) == (b["method"], b["layer"], b["signal"]) for a, b in rows
    )
    diff = max(abs(a["metrics"][k] - b["metrics"][k]) for a, b in rows for k in ("auc", "accuracy"))
    # equal means equal: the same rows with the same figures, to the last bit (the pool's batches and the
    # DataLoader's tensors have the same values and the same memory layout, so every activation is the same)
    equal = same_rows and diff == 0.0
    print(f"{'row':<32} {'CLI AUC':>8} {'API AUC':>8}")
    for a, b in rows:
        print(
            f"{a['method'] + ' ' + a['layer'] + ' ' + a['signal']:<32} {a['metrics']['auc']:>8.4f} {b['metrics']['auc']:>8.4f}"
        )
    m = cli["model"]
    mint = [r for r in cli["results"] if r["method"] == "passive-mint"]
    best = max(mint, key=lambda r: r["fit"]["val_auc"])
    top = max(mint, key=lambda r: r["metrics"]["auc"])
    loss = next(r for r in cli["results"] if r["method"] == "loss")
    print(
        f"\nreport: train accuracy {m['train_accuracy']:.4f}, task accuracy {m['task_accuracy']:.4f} (the script measured "
        f"{measured['train_accuracy']:.4f} / {measured['test_accuracy']:.4f}); default normalisation refused: {refused}"
    )
    print(
        f"best MINT by validation AUC: {best['layer']} {best['signal']} AUC {best['metrics']['auc']:.4f} {best['ci95']['auc']}"
        f" (highest held-out: {top['layer']} {top['signal']} {top['metrics']['auc']:.4f}); LOSS {loss['metrics']['auc']:.4f}"
    )
    print(
        f"largest CLI-API difference in AUC or accuracy: {diff:.5f}; bit-identical rows: "
        f"{sum(a['metrics'] == b['metrics'] for a, b in rows)} of {len(rows)}"
    )
    print(f"seconds: training {t_train:.0f}, CLI audit {t_cli:.0f}, API audit {t_api:.0f}")
    figures = {
        "task_accuracy": m["task_accuracy"],
        "loss_auc": loss["metrics"]["auc"],
        "best_mint_auc": best["metrics"]["auc"],
        "cli_equals_api": int(equal),
        "max_diff": diff,
        "default_refused": int(refused),
    }
    seconds = {"training": t_train, "cli_audit": t_cli, "api_audit": t_api}
    if args.reference:
        t3 = time.perf_counter()
        figures.update(_attacks(args, cli_dir))
        seconds["attacks"] = time.perf_counter() - t3
    emit_result(
        "own_model",
        figures,
        details={"seconds": seconds},
        digits={"max_diff": 5},
    )


def _attacks(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Step 4: the attacks with reference models on the CLI's work directory, and compare.py's comparison."""
    from compare import table_rows, white_box_figures

    from mintaudit.preprocess import Preprocess
    from mintaudit.workdir import prepare_data
    from mintaudit.workdir.choice import attack_config_of

    p = _run(
        [
            "-m",
            "mintaudit.cli",
            "attack",
            "--out",
            str(work),
            "--methods",
            args.methods,
            "--reference",
            str(args.reference),
            "--trainer",
            "recipe:fit",
            "--trainer-arg",
            f"epochs={args.epochs}",
            "--population",
            "unused",
            "--quiet",
        ]
    )
    if p.returncode:
        sys.exit(p.stderr)
    report = json.loads((work / "report.json").read_text())
    print("\n| method | accuracy | AUC | TPR@1% FPR | TPR@0.1% FPR | n (m/nm) | seconds |")
    print("|---|---|---|---|---|---|---|")
    keyed, mint_rows = table_rows(report["results"])
    seen, splits = prepare_data("fashion-mnist", work, preprocess=Preprocess(mean=(0.0,), std=(1.0,)))  # x / 255
    return white_box_figures(work, "unused", seen, splits, attack_config_of(report), keyed, mint_rows)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""The object-classification study's layer sweep, measured on Fashion-MNIST.

Trains ``objcls-cnn`` on the members (or reuses the model in --out), fits one passive MINT model
per tap L1..L7 (activations alone, and fused with the output signals), scores every one on
held-out members against non-member test samples (protocol ``heldout-members``), and prints
the per-layer table next to the LOSS baseline on the same sets.

    python benchmarks/passive_sweep.py                        # 5,000/5,000/5,000, 15 epochs
    python benchmarks/passive_sweep.py --members 1000 --epochs 5 --out runs/bench-small

Ends with one line: RESULT best_layer=<name> best_auc=<x> best_accuracy=<x> loss_auc=<x>
"""

from __future__ import annotations

import argparse
import time

import torch

from mintaudit.detectors import DetectorConfig
from mintaudit.passive import SweepConfig
from mintaudit.workdir import prepare_data, resolve_model, sweep, train_model
from mintaudit.report import format_table
from mintaudit.training import TrainConfig

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--members", type=int, default=5000)
    ap.add_argument("--external", type=int, default=5000)
    ap.add_argument("--test", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--fusion", choices=["none", "outputs", "both"], default="both")
    ap.add_argument("--detector", choices=["auto", "mlp", "cnn"], default="auto")
    ap.add_argument("--float16", action="store_true", help="store activations as float16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-passive")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ds, splits = prepare_data(
        args.dataset, args.out, members=args.members, external=args.external, test=args.test, seed=args.seed
    )
    try:
        resolve_model(args.out, ds)
        print(f"reusing the model in {args.out}/model")
    except Exception:
        train_model(
            args.out,
            ds,
            splits,
            model="objcls-cnn",
            config=TrainConfig(epochs=args.epochs, batch_size=64, seed=args.seed),
        )
    t_train = time.perf_counter() - t0
    cfg = SweepConfig(
        detector=DetectorConfig(kind=args.detector, seed=args.seed),
        fusion=args.fusion,
        dtype="float16" if args.float16 else "float32",
        seed=args.seed,
    )
    report = sweep(args.out, ds, splits, taps="published", config=cfg, command=["benchmarks/passive_sweep.py"])
    t_all = time.perf_counter() - t0

    m = report["model"]
    print(
        f"\n{args.dataset}: {len(splits.members)} members ({report['dataset']['known_members']} known to the auditor, "
        f"{report['dataset']['heldout_members']} held out), {len(splits.external)} external, {len(splits.test)} test; "
        f"objcls-cnn {m['epochs']} epochs: train accuracy {m['train_accuracy']:.3f}, test accuracy {m['task_accuracy']:.3f}"
    )
    print(f"torch threads {torch.get_num_threads()}; training {t_train:.0f} s, total {t_all:.0f} s\n")
    print(format_table(report))
    mint = [r for r in report["results"] if r["method"] == "passive-mint"]
    best = max(mint, key=lambda r: r["metrics"]["auc"])
    loss = next(r for r in report["results"] if r["method"] == "loss")
    name = best["label"] + (
        "+outputs" if best["signal"] == "activations+outputs" and best["label"] != "outputs" else ""
    )
    print(
        f"\nbest passive MINT: {name} ({best['layer']}, {best['signal']}) AUC {best['metrics']['auc']:.3f} "
        f"{best['ci95']['auc']}, precision {best['metrics']['precision']:.3f}; LOSS AUC {loss['metrics']['auc']:.3f} "
        f"{loss['ci95']['auc']}; published: 70-80% precision, best tap L7 with AUC 0.72"
    )
    emit_result(
        "passive_sweep",
        {
            "best_layer": name,
            "best_auc": best["metrics"]["auc"],
            "best_accuracy": best["metrics"]["accuracy"],
            "loss_auc": loss["metrics"]["auc"],
        },
        details={"best_ci95_auc": best["ci95"]["auc"], "loss_ci95_auc": loss["ci95"]["auc"]},
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""aMINT over data sets x backbones x setups, beside passive MINT on the plainly trained backbone.

For each (data set, backbone): one split, the plain backbone trained once for the aMINT
budget (same epochs, learning rate, batch), then one aMINT run per setup (Entry / Middle /
Output taps) with early stopping on validation AUC. Protocol ``training-members`` (members =
the training members, non-members = the official test split, balanced), as published.
Passive MINT reads the plain model at the setup's last tap fused with its output signals,
fitted on members vs external samples and scored on the same members (the same protocol),
and on held-out members (our honest protocol) for reference.

    python benchmarks/amint_grid.py --profile cpu      # Fashion-MNIST, objcls-cnn + MobileNet, 2 CPU cores
    python benchmarks/amint_grid.py --profile paper    # the published splits and backbones (a GPU's work)
    python benchmarks/amint_grid.py --profile cpu --mint-grad-scale 1 --out runs/bench-amint-coupled
                                                        # the published coupling on the cpu profile

Ends with: RESULT amint_accuracy=<x> amint_calibrated_accuracy=<x> amint_auc=<x> amint_tpr1=<x>
aud=<x> plain_aud=<x> passive_accuracy=<x> minutes=<x> (objcls-cnn, the setup with the best
validation AUC).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mintaudit._tensor import use_device
from mintaudit.active import ActiveConfig, HeadConfig
from mintaudit.active.workflow import ActiveRunConfig, active_train
from mintaudit.pipeline import prepare_data

# members / external / test / epochs / lr; the published splits for "paper" (methods.md, section 3)
PROFILES: dict[str, dict[str, Any]] = {
    # an external pool 10x the members: each external sample is drawn about once in 10 epochs, so
    # the head cannot memorise the negatives and learns "member or not" (see the README)
    # mint_grad_scale 0: the head learns membership, the backbone only the task. With the published
    # coupling (1) the task accuracy falls 1.6 points (Entry, Middle) to 9 (Output) below the plain
    # model's, for little gain in AUC on this data (README, "aMINT"); --mint-grad-scale 1 runs it.
    "cpu": {
        "runs": [("fashion-mnist", "objcls-cnn", {"dropout": 0.0}, None),
                 ("fashion-mnist", "mobilenet", {"width": 0.5}, 30)],  # (data, backbone, kwargs, max epochs)
        "sizes": {"fashion-mnist": (2000, 20000, 2000)},
        "epochs": 60, "lr": 1e-3, "patience": 10, "mint_grad_scale": 0.0,
    },
    "smoke": {  # seconds: checks that the script runs end to end, measures nothing
        "runs": [("digits", "objcls-cnn", {"dropout": 0.0}, None), ("digits", "mobilenet", {"width": 0.25}, None)],
        "sizes": {"digits": (300, 600, 300)},
        "epochs": 2, "lr": 1e-3, "patience": 10, "mint_grad_scale": 0.0,
    },
    "paper": {
        "runs": [(d, b, {}, None) for d in ("mnist", "cifar10", "gtsrb", "tiny-imagenet")
                 for b in ("mobilenet", "resnet50", "resnet101", "densenet121", "xception", "vit")],
        "sizes": {"mnist": (25000, 35000, 10000), "cifar10": (20000, 30000, 10000),
                  "gtsrb": (11000, 15640, 12630), "tiny-imagenet": (40000, 60000, 10000)},
        "epochs": 100, "lr": 1e-4, "patience": 15, "mint_grad_scale": 1.0,
    },
}
# published MINT accuracy (Entry / Middle / Output), methods.md section 3; Fashion-MNIST was not published
PUBLISHED = {
    ("mnist", "mobilenet"): (.86, .88, .82), ("mnist", "resnet50"): (.83, .82, .80), ("mnist", "resnet101"): (.83, .82, .77),
    ("mnist", "densenet121"): (.82, .83, .81), ("mnist", "xception"): (.85, .83, .80), ("mnist", "vit"): (.80, .81, .80),
    ("cifar10", "mobilenet"): (.86, .91, .85), ("cifar10", "resnet50"): (.86, .89, .85), ("cifar10", "resnet101"): (.87, .87, .85),
    ("cifar10", "densenet121"): (.86, .87, .82), ("cifar10", "xception"): (.86, .86, .87), ("cifar10", "vit"): (.86, .87, .88),
}
SETUPS = ("entry", "middle", "output")


def _f(row: dict[str, Any], key: str) -> str:
    v, (lo, hi) = row["metrics"][key], row["ci95"][key]
    return f"{v:.3f} [{lo:.3f}-{hi:.3f}]"


def _tpr1(row: dict[str, Any]) -> str:
    v, (lo, hi) = row["metrics"]["tpr_at_fpr"]["0.01"], row["ci95"]["tpr_at_fpr"]["0.01"]
    return f"{v:.3f} [{lo:.3f}-{hi:.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--out", default="runs/bench-amint")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--backbones", help="only these backbones of the profile (comma-separated)")
    ap.add_argument("--epochs", type=int, help="override the profile's max epochs")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--mint-grad-scale", type=float,
                    help="share of the membership gradient that reaches the backbone: 1 = published coupling, "
                         "0 = head only (default: the profile's)")
    ap.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    setups = [s for s in args.setups.split(",") if s]
    wanted = set(args.backbones.split(",")) if args.backbones else None
    scale = prof["mint_grad_scale"] if args.mint_grad_scale is None else args.mint_grad_scale
    with use_device(args.device):
        _grid(args, prof, setups, wanted, scale)


def _grid(args: argparse.Namespace, prof: dict[str, Any], setups: list[str], wanted: set[str] | None, scale: float) -> None:
    print(f"profile {args.profile}: mint_grad_scale {scale:g} (1 = published coupling, 0 = head only)", flush=True)
    t_start = time.perf_counter()
    table: list[tuple[str, str, str, dict[str, Any], dict[str, Any], dict[str, Any], float]] = []
    for dataset, backbone, kwargs, run_epochs in prof["runs"]:
        if wanted and backbone not in wanted:
            continue
        members, external, test = prof["sizes"][dataset]
        out = Path(args.out) / f"{dataset}-{backbone}"
        ds, splits = prepare_data(dataset, out, members=members, external=external, test=test, seed=args.seed)
        for setup in setups:
            t0 = time.perf_counter()
            cfg = ActiveRunConfig(
                backbone=backbone, backbone_kwargs=kwargs, setup=setup, head=HeadConfig(),  # type: ignore[arg-type]
                train=ActiveConfig(epochs=args.epochs or run_epochs or prof["epochs"], lr=prof["lr"], patience=prof["patience"],
                                   mint_grad_scale=scale, seed=args.seed),
                n_bootstrap=args.bootstrap,
            )

            def log(row: dict[str, float], tag: str = f"{dataset} {backbone} {setup}") -> None:
                print(f"  [{tag}] epoch {int(row['epoch'])}: task loss {row['task_loss']:.3f} mint loss "
                      f"{row['mint_loss']:.3f} val AUC {row['val_auc']:.3f} ({time.perf_counter() - t0:.0f} s)",
                      file=sys.stderr, flush=True)

            report = active_train(out, ds, splits, cfg, plain=True, command=["amint_grid.py"], on_epoch=log)
            rows = [r for r in report["results"] if r.get("setup") == setup]
            amint = next(r for r in rows if r["method"] == "amint")
            seen = next(r for r in rows if r.get("audited_model") == "plain" and r["protocol"] == "training-members")
            held = next(r for r in rows if r.get("audited_model") == "plain" and r["protocol"] == "heldout-members")
            table.append((dataset, backbone, setup, amint, seen, held, time.perf_counter() - t0))
            print(f"{dataset} {backbone} {setup}: AUC {amint['metrics']['auc']:.3f}, accuracy@0.5 "
                  f"{amint['metrics']['accuracy']:.3f}, calibrated {amint['calibrated_accuracy']:.3f}, Aud {amint['aud']:.3f} "
                  f"(plain {seen['aud']:.3f}), {time.perf_counter() - t0:.0f} s", flush=True)
    minutes = (time.perf_counter() - t_start) / 60
    print(f"\nprofile {args.profile}, mint_grad_scale {scale:g}: {minutes:.1f} min; protocol training-members (members = training members, "
          "non-members = official test split, balanced); 95% bootstrap intervals")
    print("| data | backbone | setup | aMINT acc@0.5 | aMINT calibrated acc | aMINT AUC | aMINT TPR@1% | Aud aMINT / plain "
          "| passive acc (training-members) | passive AUC (held-out) | epochs (best/run) | published acc | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset, backbone, setup, a, seen, held, sec in table:
        pub = PUBLISHED.get((dataset, backbone))
        pub_s = f"{pub[SETUPS.index(setup)]:.2f}" if pub else "-"
        ep = a["epochs"]
        lo, hi = a["calibrated_accuracy_ci95"]
        print(f"| {dataset} | {backbone} | {setup} | {_f(a, 'accuracy')} | {a['calibrated_accuracy']:.3f} [{lo:.3f}-{hi:.3f}] "
              f"| {_f(a, 'auc')} | {_tpr1(a)} "
              f"| {a['aud']:.3f} / {seen['aud']:.3f} | {_f(seen, 'accuracy')} | {_f(held, 'auc')} "
              f"| {ep['best']}/{ep['run']} | {pub_s} | {sec / 60:.1f} |")
    ours = [t for t in table if t[1] == "objcls-cnn"]
    if ours:
        _, _, _, a, seen, _, _ = max(ours, key=lambda t: t[3]["validation"]["best"])
        print(f"RESULT amint_accuracy={a['metrics']['accuracy']:.4f} amint_calibrated_accuracy={a['calibrated_accuracy']:.4f} "
              f"amint_auc={a['metrics']['auc']:.4f} amint_tpr1={a['metrics']['tpr_at_fpr']['0.01']:.4f} aud={a['aud']:.4f} "
              f"plain_aud={seen['aud']:.4f} passive_accuracy={seen['metrics']['accuracy']:.4f} minutes={minutes:.1f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""aMINT over data sets x backbones x setups, beside passive MINT on the plainly trained backbone.

For each (data set, backbone): one split, the plain backbone trained once for the aMINT
budget (same epochs, learning rate, batch), then one aMINT run per setup (Entry / Middle /
Output taps) with early stopping on validation AUC. Protocol ``training-members`` (members =
the training members, non-members = the official test split, balanced), as published.
Passive MINT reads the plain model at the setup's last tap fused with its output signals,
fitted on members vs external samples and scored on the same members (the same protocol),
and on held-out members (our honest protocol) for reference.

    python benchmarks/amint_grid.py --profile cpu      # Fashion-MNIST, objcls-cnn + the six aMINT backbones, 2 CPU cores
    python benchmarks/amint_grid.py --profile cpu --backbones resnet50,resnet101,densenet121,xception,vit
                                                        # the five reduced backbones alone (see `config` in the table)
    python benchmarks/amint_grid.py --profile cpu-lowfpr --setups entry
                                                        # objcls-cnn Entry at 1% / 0.1% FPR: 50,000 external, cosine lr
    python benchmarks/amint_grid.py --profile paper    # the published splits and backbones (a GPU's work)
    python benchmarks/amint_grid.py --profile cpu --mint-grad-scale 1 --out runs/bench-amint-coupled
                                                        # the published coupling on the cpu profile

Ends with: RESULT amint_accuracy=<x> amint_calibrated_accuracy=<x> amint_auc=<x> amint_tpr1=<x>
aud=<x> plain_aud=<x> passive_accuracy=<x> (objcls-cnn, the setup with the best validation AUC)
entry_tpr1=<x> entry_tpr01=<x> (objcls-cnn, Entry: TPR at 1% and 0.1% FPR) backbones=<n> (how
many ran) minutes=<x>; a key whose run was left out reads nan.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mintaudit._tensor import use_device
from mintaudit.active import ActiveConfig, HeadConfig
from mintaudit.workdir import ActiveRunConfig, active_train
from mintaudit.models import load_model
from mintaudit.workdir import prepare_data
from mintaudit.training import TrainConfig
from mintaudit.workdir.model import train_model

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs

# The five other backbones at what 2 CPU cores allow (issue 18, item 3). At one torch thread, with the other core
# busy, a plain step of 64 Fashion-MNIST images took 0.4-1.4 s with the small-input stem (28x28 maps into the first
# stage) even at base width 8: those nets are bound by their number of layers and the map size, not by width. The
# ImageNet stem (stride 4 before the first stage: 7x7 maps on 28 px) cuts that 2-4x, so they run with it, narrow,
# with a lighter head (64/128, hidden 128), on 500 members (5,000 external, 500 test) for 16 epochs: each member is
# seen 16 times, as often as in 16 epochs of the 2,000-member runs, for a quarter of the steps. Each row's `config`
# column says what it ran with.
_SMALL_HEAD = HeadConfig(widths=(64, 128), hidden=128)
_NEW_SIZES = (500, 5000, 500)
_NEW_BACKBONES = [
    ("fashion-mnist", "resnet50", {"base_width": 8, "stem": "imagenet"}, 16, _SMALL_HEAD, _NEW_SIZES),
    ("fashion-mnist", "resnet101", {"base_width": 8, "stem": "imagenet"}, 16, _SMALL_HEAD, _NEW_SIZES),
    ("fashion-mnist", "densenet121", {"growth_rate": 8, "stem": "imagenet"}, 16, _SMALL_HEAD, _NEW_SIZES),
    (
        "fashion-mnist",
        "xception",
        {"width": 0.125, "middle_blocks": 4, "stem": "imagenet"},
        16,
        _SMALL_HEAD,
        _NEW_SIZES,
    ),
    ("fashion-mnist", "vit", {"dim": 32, "depth": 6, "heads": 4}, 16, _SMALL_HEAD, _NEW_SIZES),
]

# runs: (data, backbone, backbone kwargs, max epochs or None = the profile's, head or None = default,
# (members, external, test) or None = the profile's sizes); epochs / lr; the published splits for "paper"
# (methods.md, section 3)
PROFILES: dict[str, dict[str, Any]] = {
    # an external pool 10x the members: each external sample is drawn about once in 10 epochs, so
    # the head cannot memorise the negatives and learns "member or not" (see the README)
    # mint_grad_scale 0: the head learns membership, the backbone only the task. With the published
    # coupling (1) the task accuracy falls 1.6 points (Entry, Middle) to 9 (Output) below the plain
    # model's, for little gain in AUC on this data (README, "aMINT"); --mint-grad-scale 1 runs it.
    "cpu": {
        "runs": [
            ("fashion-mnist", "objcls-cnn", {"dropout": 0.0}, None, None, None),
            ("fashion-mnist", "mobilenet", {"width": 0.5}, 30, None, None),
            *_NEW_BACKBONES,
        ],
        "sizes": {"fashion-mnist": (2000, 20000, 2000)},
        "epochs": 60,
        "lr": 1e-3,
        "patience": 10,
        "mint_grad_scale": 0.0,
    },
    # issue 18, item 4: objcls-cnn Entry at very low false-positive rates (README, "aMINT at 1% and 0.1% FPR")
    "cpu-lowfpr": {
        "runs": [("fashion-mnist", "objcls-cnn", {"dropout": 0.0}, None, None, None)],
        "sizes": {"fashion-mnist": (2000, 50000, 2000)},
        "epochs": 60,
        "lr": 1e-3,
        "patience": 0,
        "mint_grad_scale": 0.0,
        "lr_schedule": "cosine",
        # no passive rows: fitting passive MINT on 50,000 external samples would cost more than the aMINT run; the
        # plain model is still trained, for its task accuracy
        "passive": False,
    },
    "smoke": {  # seconds: checks that the script runs end to end, measures nothing
        "runs": [
            ("digits", "objcls-cnn", {"dropout": 0.0}, None, None, None),
            ("digits", "mobilenet", {"width": 0.25}, None, _SMALL_HEAD, (200, 600, 300)),
        ],
        "sizes": {"digits": (300, 600, 300)},
        "epochs": 2,
        "lr": 1e-3,
        "patience": 10,
        "mint_grad_scale": 0.0,
        "lr_schedule": "cosine",
    },
    "paper": {
        "runs": [
            (d, b, {}, None, None, None)
            for d in ("mnist", "cifar10", "gtsrb", "tiny-imagenet")
            for b in ("mobilenet", "resnet50", "resnet101", "densenet121", "xception", "vit")
        ],
        "sizes": {
            "mnist": (25000, 35000, 10000),
            "cifar10": (20000, 30000, 10000),
            "gtsrb": (11000, 15640, 12630),
            "tiny-imagenet": (40000, 60000, 10000),
        },
        "epochs": 100,
        "lr": 1e-4,
        "patience": 15,
        "mint_grad_scale": 1.0,
    },
}
# published MINT accuracy (Entry / Middle / Output), methods.md section 3; Fashion-MNIST was not published
PUBLISHED = {
    ("mnist", "mobilenet"): (0.86, 0.88, 0.82),
    ("mnist", "resnet50"): (0.83, 0.82, 0.80),
    ("mnist", "resnet101"): (0.83, 0.82, 0.77),
    ("mnist", "densenet121"): (0.82, 0.83, 0.81),
    ("mnist", "xception"): (0.85, 0.83, 0.80),
    ("mnist", "vit"): (0.80, 0.81, 0.80),
    ("cifar10", "mobilenet"): (0.86, 0.91, 0.85),
    ("cifar10", "resnet50"): (0.86, 0.89, 0.85),
    ("cifar10", "resnet101"): (0.87, 0.87, 0.85),
    ("cifar10", "densenet121"): (0.86, 0.87, 0.82),
    ("cifar10", "xception"): (0.86, 0.86, 0.87),
    ("cifar10", "vit"): (0.86, 0.87, 0.88),
}
SETUPS = ("entry", "middle", "output")


def _f(row: dict[str, Any], key: str) -> str:
    v, (lo, hi) = row["metrics"][key], row["ci95"][key]
    return f"{v:.3f} [{lo:.3f}-{hi:.3f}]"


def _tpr(row: dict[str, Any], fpr: str = "0.01") -> str:
    v = row["metrics"]["tpr_at_fpr"][fpr]
    ci = row.get("ci95", {}).get("tpr_at_fpr", {}).get(fpr)
    return f"{v:.3f} [{ci[0]:.3f}-{ci[1]:.3f}]" if ci else f"{v:.3f}"


def run_config(kwargs: dict[str, Any], epochs: int, head: HeadConfig | None, sizes: tuple[int, int, int]) -> str:
    """What a row was run with, for the table: backbone options, epochs, head widths, split sizes.

    Example:
        >>> run_config({"base_width": 8}, 12, HeadConfig(widths=(64, 128), hidden=128), (1000, 10000, 1000))
        'base_width=8; 12 ep; head 64/128/128; 1000/10000/1000'
    """
    h = head or HeadConfig()
    parts = [
        ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults",
        f"{epochs} ep",
        f"head {h.branch_widths[0]}/{h.branch_widths[1]}/{h.hidden}",
        "/".join(str(n) for n in sizes),
    ]
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--out", default="runs/bench-amint")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument(
        "--backbones",
        help="only these backbones of the profile (comma-separated), e.g. resnet50,resnet101,densenet121,xception,vit",
    )
    ap.add_argument("--epochs", type=int, help="override the profile's max epochs")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument(
        "--mint-grad-scale",
        type=float,
        help="share of the membership gradient that reaches the backbone: 1 = published coupling, "
        "0 = head only (default: the profile's)",
    )
    ap.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--resume",
        action="store_true",
        help="continue each aMINT run from its per-epoch checkpoint under --out (same options)",
    )
    args = ap.parse_args()
    prof = PROFILES[args.profile]
    setups = [s for s in args.setups.split(",") if s]
    bad = [s for s in setups if s not in SETUPS]
    if bad:
        ap.error(f"unknown setup {bad[0]!r}; choose from {', '.join(SETUPS)}")
    wanted = set(b for b in args.backbones.split(",") if b) if args.backbones else None
    known = {r[1] for r in prof["runs"]}
    if wanted and wanted - known:
        ap.error(
            f"profile {args.profile!r} has no backbone {sorted(wanted - known)[0]!r}; choose from {', '.join(sorted(known))}"
        )
    scale = prof["mint_grad_scale"] if args.mint_grad_scale is None else args.mint_grad_scale
    with use_device(args.device):
        _grid(args, prof, setups, wanted, scale)


def _grid(
    args: argparse.Namespace, prof: dict[str, Any], setups: list[str], wanted: set[str] | None, scale: float
) -> None:
    schedule = prof.get("lr_schedule", "constant")
    print(
        f"profile {args.profile}: mint_grad_scale {scale:g} (1 = published coupling, 0 = head only), "
        f"lr {prof['lr']:g} {schedule}",
        flush=True,
    )
    t_start = time.perf_counter()
    table: list[tuple[str, str, str, dict[str, Any], dict[str, Any], dict[str, Any], float, str]] = []
    for dataset, backbone, kwargs, run_epochs, head, run_sizes in prof["runs"]:
        if wanted and backbone not in wanted:
            continue
        members, external, test = run_sizes or prof["sizes"][dataset]
        epochs = args.epochs or run_epochs or prof["epochs"]
        config = run_config(kwargs, epochs, head, (members, external, test))
        out = Path(args.out) / f"{dataset}-{backbone}"
        ds, splits = prepare_data(dataset, out, members=members, external=external, test=test, seed=args.seed)
        for setup in setups:
            t0 = time.perf_counter()
            cfg = ActiveRunConfig(
                backbone=backbone,
                backbone_kwargs=kwargs,
                setup=setup,
                head=head or HeadConfig(),  # type: ignore[arg-type]
                train=ActiveConfig(
                    epochs=epochs,
                    lr=prof["lr"],
                    patience=prof["patience"],
                    lr_schedule=schedule,
                    mint_grad_scale=scale,
                    seed=args.seed,
                ),
                n_bootstrap=args.bootstrap,
            )

            def log(row: dict[str, float], tag: str = f"{dataset} {backbone} {setup}") -> None:
                print(
                    f"  [{tag}] epoch {int(row['epoch'])}: task loss {row['task_loss']:.3f} mint loss "
                    f"{row['mint_loss']:.3f} val AUC {row['val_auc']:.3f} ({time.perf_counter() - t0:.0f} s)",  # noqa: B023
                    file=sys.stderr,
                    flush=True,
                )

            passive = prof.get("passive", True)
            report = active_train(
                out, ds, splits, cfg, plain=passive, resume=args.resume, command=["amint_grid.py"], on_epoch=log
            )
            rows = [r for r in report["results"] if r.get("setup") == setup]
            amint = next(r for r in rows if r["method"] == "amint")
            if passive:
                seen = next(
                    r for r in rows if r.get("audited_model") == "plain" and r["protocol"] == "training-members"
                )
                held = next(r for r in rows if r.get("audited_model") == "plain" and r["protocol"] == "heldout-members")
            else:  # the plain model alone, for its task accuracy
                seen, held = {"aud": _plain_aud(out, ds, splits, backbone, kwargs, cfg.train)}, None
            table.append((dataset, backbone, setup, amint, seen, held, time.perf_counter() - t0, config))
            print(
                f"{dataset} {backbone} {setup}: AUC {amint['metrics']['auc']:.3f}, accuracy@0.5 "
                f"{amint['metrics']['accuracy']:.3f}, calibrated {amint['calibrated_accuracy']:.3f}, "
                f"TPR@1% {amint['metrics']['tpr_at_fpr']['0.01']:.3f}, TPR@0.1% {amint['metrics']['tpr_at_fpr']['0.001']:.3f}, "
                f"Aud {amint['aud']:.4f} (plain {seen['aud']:.4f}), {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    minutes = (time.perf_counter() - t_start) / 60
    print(
        f"\nprofile {args.profile}, mint_grad_scale {scale:g}, lr {prof['lr']:g} {schedule}: {minutes:.1f} min; protocol "
        "training-members (members = training members, non-members = official test split, balanced); 95% bootstrap intervals"
    )
    print(
        "| data | backbone | config | setup | aMINT acc@0.5 | aMINT calibrated acc | aMINT AUC | aMINT TPR@1% | aMINT TPR@0.1% "
        "| Aud aMINT / plain | passive acc (training-members) | passive AUC (held-out) | epochs (best/run) | published acc | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset, backbone, setup, a, seen, held, sec, config in table:
        pub = PUBLISHED.get((dataset, backbone))
        pub_s = f"{pub[SETUPS.index(setup)]:.2f}" if pub else "-"
        ep = a["epochs"]
        lo, hi = a["calibrated_accuracy_ci95"]
        print(
            f"| {dataset} | {backbone} | {config} | {setup} | {_f(a, 'accuracy')} | {a['calibrated_accuracy']:.3f} [{lo:.3f}-{hi:.3f}] "
            f"| {_f(a, 'auc')} | {_tpr(a)} | {_tpr(a, '0.001')} "
            f"| {a['aud']:.4f} / {seen['aud']:.4f} | {_f(seen, 'accuracy') if held else '-'} | {_f(held, 'auc') if held else '-'} "
            f"| {ep['best']}/{ep['run']} | {pub_s} | {sec / 60:.1f} |"
        )
    emit_result(f"amint_grid-{args.profile}", _result_figures(table, minutes), digits={"minutes": 1, "backbones": 0})


def _plain_aud(out: Path, ds: Any, splits: Any, backbone: str, kwargs: dict[str, Any], cfg: ActiveConfig) -> float:
    """Task accuracy of the plain model trained for the aMINT budget (reused from ``out/model`` when it was trained so)."""
    train_cfg = TrainConfig(
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        augment=cfg.augment,
    )
    if (out / "model" / "model.json").is_file():
        _, spec, info = load_model(out / "model")
        if (
            spec.name == backbone
            and spec.kwargs == dict(kwargs)
            and info.get("train") == train_cfg.to_dict()
            and info.get("splits_fingerprint") == splits.fingerprint()
        ):
            return float(info["task_accuracy"])
    _, info = train_model(out, ds, splits, model=backbone, model_kwargs=kwargs, config=train_cfg)
    return float(info["task_accuracy"])


def _result_figures(table: list[tuple[Any, ...]], minutes: float) -> dict[str, float]:
    """RESULT: objcls-cnn's setup with the best validation AUC (nan without objcls-cnn), its Entry TPRs, the backbone count."""
    nan = float("nan")
    ours = [t for t in table if t[1] == "objcls-cnn"]
    entry = next((t[3] for t in ours if t[2] == "entry"), None)
    keys: dict[str, float] = dict.fromkeys(
        (
            "amint_accuracy",
            "amint_calibrated_accuracy",
            "amint_auc",
            "amint_tpr1",
            "aud",
            "plain_aud",
            "passive_accuracy",
        ),
        nan,
    )
    if ours:
        _, _, _, a, seen, _, _, _ = max(ours, key=lambda t: t[3]["validation"]["best"])
        keys.update(
            amint_accuracy=a["metrics"]["accuracy"],
            amint_calibrated_accuracy=a["calibrated_accuracy"],
            amint_auc=a["metrics"]["auc"],
            amint_tpr1=a["metrics"]["tpr_at_fpr"]["0.01"],
            aud=a["aud"],
            plain_aud=seen["aud"],
            passive_accuracy=seen["metrics"]["accuracy"] if "metrics" in seen else nan,
        )
    keys["entry_tpr1"] = entry["metrics"]["tpr_at_fpr"]["0.01"] if entry else nan
    keys["entry_tpr01"] = entry["metrics"]["tpr_at_fpr"]["0.001"] if entry else nan
    return {**keys, "backbones": len({t[1] for t in table}), "minutes": minutes}


if __name__ == "__main__":
    main()

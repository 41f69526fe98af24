#!/usr/bin/env python
"""Every baseline attack beside passive MINT (and gMINT where present), on one Fashion-MNIST model.

Reuses the work directory of ``benchmarks/passive_sweep.py`` (model, splits, the MINT rows of its
report.json), runs the attacks on exactly the same held-out members and non-members, and prints
one table: accuracy, AUC, TPR at 1% and 0.1% FPR with 95% intervals, and the wall time of each.
Reference models have the audited model's architecture and training budget and are trained on
paired halves of the training images that no split uses (``--population unused``), so each sees
as many samples as the audited model did.

    python benchmarks/passive_sweep.py            # first: the model and the MINT rows
    python benchmarks/compare.py --reference 8

Calibrated MINT (``calibrated-mint``, our reconstruction: a MINT model on the output signals fused
with reference-calibrated ones) runs with the attacks, on the same reference models. The best MINT
row is chosen among ALL MINT rows (passive MINT on activations, activations + outputs, outputs, and
calibrated MINT) by the MINT model's validation AUC, never by the scored side.

Ends with one line: RESULT <method>_auc=<x> <method>_tpr1=<x> ... for every method it ran, then
best_mint_auc=<x> best_mint_tpr1=<x> (the best white-box row's scored AUC and TPR at 1% FPR: passive
MINT, gMINT, calibrated MINT or white-box LiRA, chosen by validation AUC), rmia_auc, rmia_tpr1, and
mint_minus_rmia_auc / mint_minus_rmia_lo: the mean and 2.5% quantile of the AUC difference over 1,000
paired bootstrap resamples of the same held-out members and non-members (for a best row whose
per-sample scores the attacks give: calibrated MINT, white-box LiRA); with white-box LiRA among the
methods, whitebox_seconds, rmia_seconds and whitebox_cost_ratio: white-box LiRA's scoring time against
RMIA's whole scoring time, the audited and reference models' forwards included (both measured afresh
in a temporary folder, in CPU seconds of this process), with the cost of each signal per sample and
model printed above the RESULT line.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mintaudit.attacks.options import parse_attack_options, split_legacy
from mintaudit.attacks.registry import attack_options, attack_spec
from mintaudit.attacks.run import AttackConfig, attack_scores
from mintaudit.evaluation import auc_score
from mintaudit.passive import passive_split
from mintaudit.workdir import attack, prepare_data, resolve_model
from mintaudit.workdir.audit import reference_population
from mintaudit.workdir.model import model_spec
from mintaudit.workdir.record import read_record
from mintaudit.training import TrainConfig

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs

OFFLINE = [
    "loss",
    "confidence",
    "entropy",
    "modified-entropy",
    "calibrated-loss",
    "shokri",
    "lira",
    "rmia",
    "informia",
    "bavaria",
    "bavaria-n",
    "calibrated-mint",
    "whitebox-lira",
]
REFERENCE_METHODS = tuple(m for m in OFFLINE if attack_spec(m).needs_references)
#: Rows that read the model's internals or fit a MINT model (the white-box side of the comparison).
WHITE_BOX_ATTACKS = ("calibrated-mint", "whitebox-lira")


def _row(name: str, r: dict, seconds: float | None) -> str:
    m, ci = r["metrics"], r["ci95"]

    def f(key: str, sub: str | None = None) -> str:
        v = m[key][sub] if sub else m[key]
        lo, hi = ci[key][sub] if sub else ci[key]
        return f"{v:.3f} [{lo:.3f}-{hi:.3f}]"

    t = "-" if seconds is None else f"{seconds:.0f}"
    return (
        f"| {name} | {f('accuracy')} | {f('auc')} | {f('tpr_at_fpr', '0.01')} | {f('tpr_at_fpr', '0.001')} | "
        f"{r['n_members']}/{r['n_nonmembers']} | {t} |"
    )


def _tpr_at(members: np.ndarray, nonmembers: np.ndarray, fpr: float = 0.01) -> float:
    return float((members > np.quantile(nonmembers, 1 - fpr)).mean())


def paired_difference(a: tuple, b: tuple, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean, 2.5% and 97.5% quantiles of AUC(a) - AUC(b) over ``n`` paired bootstrap resamples.

    ``a`` and ``b`` are (member scores, non-member scores) of the same samples, in the same order.
    """
    rng = np.random.default_rng(seed)
    nm, nn = len(a[0]), len(a[1])
    y = np.r_[np.ones(nm), np.zeros(nn)]
    d = np.empty(n)
    for k in range(n):
        i, j = rng.integers(0, nm, nm), rng.integers(0, nn, nn)
        d[k] = auc_score(y, np.r_[a[0][i], a[1][j]]) - auc_score(y, np.r_[b[0][i], b[1][j]])
    return float(d.mean()), float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975))


def _target(out: Path) -> dict[str, str | None]:
    """The audited model as ``resolve_model`` and ``model_spec`` take it: a user's model from the record, or none."""
    rec = read_record(out) or {}
    mdl = rec.get("model") or {}
    if mdl.get("trained_in_out", True):
        return {"model": None, "weights": None}
    return {"model": mdl.get("locator"), "weights": mdl.get("weights")}


def _scores(out: Path, population: str, ds, splits, cfg: AttackConfig, names: list[str]) -> dict:
    """Per-sample scores of ``names`` on the report's sets, from the cached reference models (none trained)."""
    net, _, _ = resolve_model(out, ds, splits=splits, **_target(out))
    split = passive_split(splits, known_fraction=0.5, seed=cfg.seed)
    pop = reference_population(ds, splits, population, cfg.seed)
    got = attack_scores(
        net,
        model_spec(out, ds, *_target(out).values()),
        ds,
        split,
        names,
        out / "cache" / "attacks",
        cfg,
        population=pop,
        signals_root=out / "cache",
        show_progress=False,
        train_references=False,
    )
    return {k: (v.members, v.nonmembers) for k, v in got.items()}


def _costs(out: Path, population: str, ds, splits, cfg: AttackConfig) -> tuple[dict[str, float], int, int]:
    """CPU seconds of RMIA's whole scoring and of white-box LiRA's, the rows scored and the models.

    Both run afresh in a temporary folder (the work directory's reference models are read, never
    written): RMIA first, the audited and reference models' forwards included; then white-box LiRA,
    whose reference logits RMIA has just cached, so its seconds are its own signals and fit. CPU time
    of this process (``time.process_time``), so that other jobs on a shared machine do not count.
    """
    import tempfile

    net, _, _ = resolve_model(out, ds, splits=splits, **_target(out))
    split = passive_split(splits, known_fraction=0.5, seed=cfg.seed)
    pop = reference_population(ds, splits, population, cfg.seed)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "reference").symlink_to((out / "cache" / "attacks" / "reference").resolve())
        for name in ("rmia", "whitebox-lira"):
            t0 = time.process_time()
            got = attack_scores(
                net,
                model_spec(out, ds, *_target(out).values()),
                ds,
                split,
                [name],
                root,
                cfg,
                population=pop,
                signals_root=root / "target",
                show_progress=False,
                train_references=False,
            )[name]
            seconds[name] = time.process_time() - t0
    rows = len(got.members) + len(got.nonmembers) + len(got.calibration_members) + len(got.calibration_nonmembers)
    return {**seconds, "by_signal": got.info["seconds_by_signal"]}, rows, int(got.info["n_reference"]) + 1


def _cost_table(costs: dict, rows: int, models: int) -> dict[str, float]:
    """Print white-box LiRA's cost per signal, per sample and model, beside RMIA's; return the figures."""
    per = 1000.0 / (rows * models)
    wall = sum(costs["by_signal"].values())
    print(f"\ncost per sample and model ({rows} rows x {models} models), CPU ms:")
    for name, sec in costs["by_signal"].items():  # the attack's wall clock, as a share of its CPU time
        print(f"  whitebox-lira {name}: {costs['whitebox-lira'] * sec / max(wall, 1e-9) * per:.3f}")
    print(f"  whitebox-lira, all: {costs['whitebox-lira'] * per:.3f} ({costs['whitebox-lira']:.0f} s)")
    print(f"  rmia, all (the models' forwards included): {costs['rmia'] * per:.3f} ({costs['rmia']:.0f} s)")
    ratio = costs["whitebox-lira"] / max(costs["rmia"], 1e-9)
    print(f"  white-box LiRA costs {ratio:.2f}x RMIA's scoring")
    return {
        "whitebox_seconds": round(costs["whitebox-lira"], 1),
        "rmia_seconds": round(costs["rmia"], 1),
        "whitebox_cost_ratio": round(ratio, 2),
    }


def table_rows(results: list[dict]) -> tuple[dict[str, dict], list[tuple[str, dict]]]:
    """Print the table's rows; return them keyed by method and every white-box row with its name."""
    keyed: dict[str, dict] = {}
    mint_rows: list[tuple[str, dict]] = []  # every MINT row, for the best one by validation AUC
    for kind, signal in (
        ("passive-mint", "activations"),
        ("passive-mint", "activations+outputs"),
        ("passive-mint", "outputs"),
        ("gmint", "gradients"),
    ):
        rows = [r for r in results if r["method"] == kind and r["signal"] == signal]
        if rows:
            # the tap is chosen by the MINT model's validation AUC, never by the scored (test) side
            best = max(rows, key=lambda r: r.get("fit", {}).get("val_auc") or float("-inf"))
            name = f"{kind} {signal} (best: {best.get('label')})"
            print(_row(name, best, best.get("fit", {}).get("seconds")))
            keyed[f"{kind}_{signal}".replace("-", "_").replace("+", "_")] = best
            if kind == "passive-mint":
                mint_rows += [(f"{kind} {signal} ({r.get('label')})", r) for r in rows]
            elif kind == "gmint":
                mint_rows += [(f"{kind} ({r.get('label')})", r) for r in rows]
    for r in results:
        if r.get("attack"):
            name = (
                f"{r['attack']} ({r['signal']}, {r['detector']})" if r["method"] == "calibrated-mint" else r["attack"]
            )
            print(_row(name, r, r["fit"].get("seconds")))
            keyed[r["attack"].replace("-", "_")] = r
            if r["attack"] in WHITE_BOX_ATTACKS:
                mint_rows.append((name, r))
    return keyed, mint_rows


def white_box_figures(
    out: Path, population: str, ds, splits, cfg: AttackConfig, keyed: dict[str, dict], mint_rows: list
) -> dict[str, float]:
    """The RESULT figures: every row's AUC and TPR@1%, the best white-box row (by validation AUC) against RMIA.

    Prints the paired difference and, when white-box LiRA ran, its cost beside RMIA's.
    """
    best_mint = None
    if mint_rows:  # chosen by the MINT model's validation AUC, never by the scored side
        best_name, best_mint = max(mint_rows, key=lambda nr: nr[1].get("fit", {}).get("val_auc") or float("-inf"))
        print(f"\nbest MINT row by validation AUC: {best_name}, val_auc {best_mint['fit']['val_auc']:.4f}")
        for n, r in sorted(mint_rows, key=lambda nr: -(nr[1].get("fit", {}).get("val_auc") or float("-inf")))[:5]:
            print(f"  val_auc {r['fit'].get('val_auc') or float('nan'):.4f}  scored AUC {r['metrics']['auc']:.4f}  {n}")
    figures: dict[str, float] = {}
    for k, r in keyed.items():
        figures[f"{k}_auc"] = r["metrics"]["auc"]
        figures[f"{k}_tpr1"] = r["metrics"]["tpr_at_fpr"]["0.01"]
    if best_mint is not None:
        figures["best_mint_auc"] = best_mint["metrics"]["auc"]
        figures["best_mint_tpr1"] = best_mint["metrics"]["tpr_at_fpr"]["0.01"]
        if "rmia" in keyed:
            figures["rmia_auc"] = keyed["rmia"]["metrics"]["auc"]
            figures["rmia_tpr1"] = keyed["rmia"]["metrics"]["tpr_at_fpr"]["0.01"]
        if best_mint.get("attack") in WHITE_BOX_ATTACKS and "rmia" in keyed:
            got = _scores(out, population, ds, splits, cfg, [best_mint["attack"], "rmia"])
            mean, lo, hi = paired_difference(got[best_mint["attack"]], got["rmia"])
            figures["mint_minus_rmia_auc"], figures["mint_minus_rmia_lo"] = round(mean, 4), round(lo, 4)
            ratio = _tpr_at(*got[best_mint["attack"]]) / max(_tpr_at(*got["rmia"]), 1e-12)
            print(
                f"\n{best_mint['attack']} - rmia, AUC over 1,000 paired resamples: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]; "
                f"TPR at 1% FPR {ratio:.2f}x RMIA's"
            )
        elif "rmia" in keyed:
            print("\nno paired difference: the best white-box row is a passive-MINT or gMINT row (scores not kept)")
    if "whitebox_lira" in keyed and "rmia" in keyed:
        figures.update(_cost_table(*_costs(out, population, ds, splits, cfg)))
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-passive")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--reference", type=int, default=8, help="reference models (paired halves)")
    ap.add_argument("--reference-epochs", type=int, default=15)
    ap.add_argument(
        "--methods",
        default=",".join(OFFLINE),
        help="default: the offline attacks; lira-online trains its own models on about twice the data",
    )
    ap.add_argument("--population", choices=["unused", "external"], default="unused")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attack-opt", action="append", default=[], help="NAME.KEY=VALUE, as mintaudit attack's")
    args = ap.parse_args()
    legacy, given = split_legacy(parse_attack_options(args.attack_opt, attack_options()), attack_options())

    ds, splits = prepare_data(args.dataset, args.out, seed=args.seed)
    resolve_model(args.out, ds)  # fails with the fix (run passive_sweep.py first) when there is no model
    cfg = AttackConfig(
        n_reference=args.reference,
        seed=args.seed,
        reference_train=TrainConfig(epochs=args.reference_epochs, batch_size=64, seed=args.seed),
        options=given,
        **legacy,
    )
    methods = [m for m in args.methods.split(",") if m]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    offline_refs = [m for m in methods if m in REFERENCE_METHODS]
    if offline_refs:  # train (or load) the reference models once, timed on their own
        attack(
            args.out,
            ds,
            splits,
            methods=[offline_refs[0]],
            config=cfg,
            population=args.population,
            command=["compare.py"],
        )
        timings["reference models (offline)"] = time.perf_counter() - t0
    if "lira-online" in methods:
        t1 = time.perf_counter()
        attack(
            args.out,
            ds,
            splits,
            methods=["lira-online"],
            config=cfg,
            population=args.population,
            command=["compare.py"],
        )
        timings["reference models (online) + lira-online"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    report = attack(
        args.out, ds, splits, methods=methods, config=cfg, population=args.population, command=["compare.py"]
    )
    timings["scoring all attacks (models cached)"] = time.perf_counter() - t1

    m = report["model"]
    print(
        f"\n{args.dataset}: objcls-cnn, train accuracy {m['train_accuracy']:.3f}, test accuracy {m['task_accuracy']:.3f}; "
        f"{report['dataset']['heldout_members']} held-out members vs non-member test samples (balanced); "
        f"{args.reference} reference models x {args.reference_epochs} epochs on population '{args.population}'"
    )
    for k, v in timings.items():
        print(f"  {k}: {v:.0f} s")
    print("\n| method | accuracy | AUC | TPR@1% FPR | TPR@0.1% FPR | n (m/nm) | seconds |")
    print("|---|---|---|---|---|---|---|")
    keyed, mint_rows = table_rows(report["results"])
    print(
        "\nseconds: MINT rows = fitting the MINT model; attacks = scoring with reference models already trained "
        "(their training time is listed above)"
    )
    figures = white_box_figures(Path(args.out), args.population, ds, splits, cfg, keyed, mint_rows)
    emit_result("compare", figures)


if __name__ == "__main__":
    main()

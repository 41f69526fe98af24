#!/usr/bin/env python
"""Power and false-positive rate of the dataset-level test, measured on Fashion-MNIST.

Reuses the audited model, splits and signal cache that ``benchmarks/passive_sweep.py`` made in
--out (objcls-cnn, 15 epochs; 5,000 members / 5,000 external / 5,000 non-member test samples),
and never writes there (run ``benchmarks/compare.py`` first for the attacks with reference models:
their rows and cached reference models are then candidates too). Scores are computed once:

- the default method of ``mintaudit test``: :func:`mintaudit.workdir.choice.choose_default` on
  the report, the same call and the same scores as ``mintaudit test`` without ``--method``: the
  MINT row or attack (whose reference models are cached, or that needs none) with the best
  *validation* AUC on the auditor's own data (known members against external samples), never on
  the test split; an attack's scores are ``attack_scores``' on the held-out members and the test split;
- passive MINT on the tap with the best validation AUC among the MINT rows, refitted here on the
  known members and external samples; also the outputs-only MINT model;
- the LOSS attack, and the best of the attacks that need no reference model (LOSS, confidence,
  entropy, modified entropy), chosen by its AUC on the calibration sets (known members against
  external samples, never the test split).

Then, in each repetition, the 5,000 non-member test samples are split at random into a null
reference (2,500) and a query pool (2,500); a query set of n samples mixes held-out members (the
2,500 members the MINT model never saw) and query-pool non-members in the given proportion; the
dataset-level test (alpha 0.05, Bonferroni of Mann-Whitney U and the exact binomial test) is run on
it, and per-sample flags under Benjamini-Hochberg (q 0.05) are counted. The deciding p-value is
Mann-Whitney U's (the default of ``mintaudit test``); the Bonferroni combination with the exact
binomial exceedance test, and that test alone, are measured on the same draws. The same draws serve every
method. Member fraction 0% measures the false-positive rate.

    python benchmarks/power.py                  # 1,000 repetitions per cell, 2-4 minutes on 2 cores
    python benchmarks/power.py --reps 200

Ends with one line (the method ``mintaudit test`` chooses by default, Mann-Whitney U):
RESULT null_reject_rate=<x> power_n100_full=<x> power_n100_half=<x> default_method=<name>
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mintaudit.detectors import DetectorConfig
from mintaudit.attacks import scores as attacks
from mintaudit.evaluation import auc_score, dataset_test, sample_decisions
from mintaudit.models import published_taps
from mintaudit.passive import SweepConfig, audit_tap, passive_split
from mintaudit.workdir import prepare_data, resolve_model
from mintaudit.signals import extract_signals, output_features
from mintaudit.workdir.choice import choose_default

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs

SIZES = (10, 30, 100, 300)
FRACTIONS = (0.0, 0.1, 0.5, 1.0)


def mint_scores(det, cache, layer, fuse, ids):  # noqa: ANN001, ANN201 - a script helper
    """P(member) of a fitted MINT model for pool ``ids`` (float64, in the order of ids)."""
    out = cache.outputs()
    feats = output_features(out["logits"], out["labels"])
    rows = cache.rows(ids)
    order = np.argsort(rows)
    X = cache.activations(layer) if layer is not None else feats
    logits = np.empty(len(rows))
    for start in range(0, len(rows), 1024):
        chunk = order[start : start + 1024]
        x = np.asarray(X[rows[chunk]], np.float32)
        extra = feats[rows[chunk]] if (fuse and layer is not None) else None
        logits[chunk] = det.decision_function(x, extra)
    return 1.0 / (1.0 + np.exp(-logits))


def best_by_validation(report_path: Path) -> tuple[str | None, bool, str]:
    """(layer or None, fuse outputs?, label) of the passive-MINT result with the best validation AUC."""
    results = json.loads(report_path.read_text())["results"]
    fitted = [r for r in results if r["method"] == "passive-mint" and (r.get("fit") or {}).get("val_auc") is not None]
    best = max(fitted, key=lambda r: r["fit"]["val_auc"])
    if best["layer"] == "outputs":
        return None, True, "outputs"
    fuse = best["signal"] == "activations+outputs"
    return best["layer"], fuse, f"{best.get('label', best['layer'])}{'+outputs' if fuse else ''} ({best['layer']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-passive", help="the passive sweep's work directory (read only)")
    ap.add_argument("--dataset", default="fashion-mnist", help="the sweep's data set (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=1000, help="repetitions per cell (default: %(default)s)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--fdr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = Path(args.out)

    ds, splits = prepare_data(args.dataset, out)
    net, name, _ = resolve_model(out, ds)
    split = passive_split(splits, known_fraction=0.5, seed=0)
    layers = [layer for _, layer in published_taps(name)]
    cache = extract_signals(net, ds, np.unique(split.all_indices()), layers, out / "cache")  # the sweep's cache
    print(f"signals: {cache.path} ({cache.manifest['n']} samples, reused when it exists)")

    members, test = split.heldout_members, splits.test
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    report = json.loads((out / "report.json").read_text())
    t = time.perf_counter()
    method, d_layer, why, attack_done = choose_default(out, net, ds, splits, split, report, show_progress=False)
    print(f"default method in {time.perf_counter() - t:.0f} s: {why['sentence']}")
    layer, fuse, label = best_by_validation(out / "report.json")
    cfg = SweepConfig(detector=DetectorConfig(seed=0), n_bootstrap=0)
    if method not in ("passive-mint", "loss"):  # a registry attack: its own scores, as mintaudit test reads them
        sc = attack_done[method]
        assert np.array_equal(split.test, test)
        scores[f"{method} (the default: best validation AUC {why['val_auc']:.3f})"] = (sc.members, sc.nonmembers)
    mint_rows = {f"passive MINT, {label}": (layer, fuse), "passive MINT, outputs only": (None, True)}
    if method == "passive-mint":
        d_fuse = d_layer is None or why["signal"] == "activations+outputs"
        mint_rows = {
            f"passive MINT, {d_layer or 'outputs'} (the default: best validation AUC "
            f"{why['val_auc'] if why['val_auc'] is None else round(why['val_auc'], 3)})": (d_layer, d_fuse),
            **{k: v for k, v in mint_rows.items() if v != (d_layer, d_fuse)},
        }
    for key, (lay, fu) in mint_rows.items():
        t = time.perf_counter()
        _, det = audit_tap(cache, split, lay, cfg, fuse_outputs=fu, show_progress=False)
        scores[key] = (mint_scores(det, cache, lay, fu, members), mint_scores(det, cache, lay, fu, test))
        print(f"fitted {key} in {time.perf_counter() - t:.0f} s (validation AUC {det.val_auc_:.3f})")
    outputs = cache.outputs()
    logits, labels = outputs["logits"].astype(np.float64), outputs["labels"]
    free = {
        "loss": attacks.loss_scores(logits, labels),
        "confidence": attacks.confidence_scores(logits),
        "entropy": attacks.entropy_scores(logits),
        "modified-entropy": attacks.modified_entropy_scores(logits, labels),
    }
    calib_y = np.r_[np.ones(len(split.known_members)), np.zeros(len(split.external))]
    calib_rows = cache.rows(np.concatenate([split.known_members, split.external]))
    calib_auc = {k: auc_score(calib_y, s[calib_rows]) for k, s in free.items()}
    print(
        "reference-free attacks, calibration AUC (known members vs external): "
        + ", ".join(f"{k} {v:.4f}" for k, v in calib_auc.items())
    )
    best = max(calib_auc, key=calib_auc.get)
    for name_ in dict.fromkeys(["loss", best] if method == "loss" else [best, "loss"]):
        key = "LOSS attack" if name_ == "loss" else f"{name_} attack (best by calibration AUC)"
        if name_ == best == "loss":
            key = "LOSS attack (best by calibration AUC)"
        if name_ == method == "loss":
            key += " (the default)"
        scores[key] = (free[name_][cache.rows(members)], free[name_][cache.rows(test)])
    if method == "loss":  # the default first
        first = next(k for k in scores if k.endswith("(the default)"))
        scores = {first: scores[first], **{k: v for k, v in scores.items() if k != first}}
    for key, (m, n) in scores.items():
        auc = auc_score(np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n])
        print(f"  {key}: AUC held-out members vs all test non-members {auc:.3f} ({len(m)} vs {len(n)})")

    rng = np.random.default_rng(args.seed)
    n_null = len(test) // 2
    keys = list(scores)
    # rejections[method][decision][(n, frac)] = count; bh[method][(n, frac)] = [flagged members, fdp sum, member frac est]
    rejections = {k: {d: {} for d in ("mann-whitney", "bonferroni", "binomial")} for k in keys}
    bh = {k: {} for k in keys}
    t_sim = time.perf_counter()
    sizes = tuple(n for n in SIZES if n <= min(len(members), len(test) - n_null))  # all of them on Fashion-MNIST
    for n in sizes:
        for frac in FRACTIONS:
            n_mem = int(round(frac * n))
            for k in keys:
                for d in rejections[k]:
                    rejections[k][d][(n, frac)] = 0
                bh[k][(n, frac)] = [0.0, 0.0, 0.0]
            for _ in range(args.reps):
                perm = rng.permutation(len(test))
                null_rows, pool_rows = perm[:n_null], perm[n_null:]
                q_mem = rng.choice(len(members), n_mem, replace=False)
                q_non = rng.choice(pool_rows, n - n_mem, replace=False)
                for k in keys:
                    m_scores, t_scores = scores[k]
                    query = np.r_[m_scores[q_mem], t_scores[q_non]]
                    null = t_scores[null_rows]
                    res = dataset_test(query, null, alpha=args.alpha, decision="bonferroni")
                    rejections[k]["bonferroni"][(n, frac)] += res.reject
                    rejections[k]["mann-whitney"][(n, frac)] += res.mann_whitney["p_value"] <= args.alpha
                    rejections[k]["binomial"][(n, frac)] += res.binomial["p_value"] <= args.alpha
                    flags = sample_decisions(query, null, fdr=args.fdr).flagged_bh
                    true_flags = int(flags[:n_mem].sum())
                    bh[k][(n, frac)][0] += true_flags / max(n_mem, 1)
                    bh[k][(n, frac)][1] += (flags.sum() - true_flags) / max(int(flags.sum()), 1)
                    bh[k][(n, frac)][2] += res.member_fraction["estimate"]
    sim_s = time.perf_counter() - t_sim

    R = args.reps
    print(
        f"\n{R} repetitions per cell; null reference {n_null} non-members redrawn each repetition; "
        f"alpha {args.alpha}, BH q {args.fdr}; simulation {sim_s:.0f} s\n"
    )
    titles = {
        "mann-whitney": "the dataset-level test, deciding by Mann-Whitney U (the default)",
        "bonferroni": "the Bonferroni combination of Mann-Whitney U and the exact binomial exceedance test",
        "binomial": "the exact binomial exceedance test alone",
    }
    for d, title in titles.items():
        print(f"Rejection rate of {title} (member fraction 0% = false-positive rate):\n")
        print("| method | query size | 0% (null) | 10% | 50% | 100% |")
        print("|---|---|---|---|---|---|")
        for k in keys:
            for n in sizes:
                cells = " | ".join(f"{rejections[k][d][(n, f)] / R:.3f}" for f in FRACTIONS)
                print(f"| {k} | {n} | {cells} |")
        print()
    print(
        f"Per-sample Benjamini-Hochberg at q = {args.fdr}: share of members flagged / mean false-discovery "
        "proportion / mean Storey estimate of the member fraction:\n"
    )
    print("| method | query size | " + " | ".join(f"{int(100 * f)}% members" for f in FRACTIONS) + " |")
    print("|---|---|" + "---|" * len(FRACTIONS))
    for k in keys:
        for n in sizes:
            cells = " | ".join(
                f"{bh[k][(n, f)][0] / R:.3f} / {bh[k][(n, f)][1] / R:.3f} / {bh[k][(n, f)][2] / R:.2f}"
                for f in FRACTIONS
            )
            print(f"| {k} | {n} | {cells} |")

    main_key = keys[0]
    null_rate = sum(rejections[main_key]["mann-whitney"][(n, 0.0)] for n in sizes) / (R * len(sizes))
    null_all = {k: sum(rejections[k]["mann-whitney"][(n, 0.0)] for n in sizes) / (R * len(sizes)) for k in keys}
    print(
        f"\nfalse-positive rate of the default test over {R * len(sizes)} null query sets per method (all sizes): "
        + ", ".join(f"{k} {v:.4f}" for k, v in null_all.items())
    )
    print(f"torch threads {torch.get_num_threads()}; total {time.perf_counter() - t0:.0f} s")
    emit_result(
        "power",
        {
            "null_reject_rate": null_rate,
            "power_n100_full": rejections[main_key]["mann-whitney"][(100, 1.0)] / R,
            "power_n100_half": rejections[main_key]["mann-whitney"][(100, 0.5)] / R,
            "default_method": method,
        },
        details={"null_reject_rate_by_method": null_all, "repetitions": R, "sizes": list(sizes)},
    )


if __name__ == "__main__":
    main()

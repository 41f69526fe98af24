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

Two more questions, asked of the same scores (``mintaudit test`` reports both in its verdict):

- the usage share's coverage (:func:`mintaudit.evaluation.usage_share`, DUCI-style debiasing with
  the TPR and FPR measured on held-out members and the null): for each true share in (0, 0.1,
  0.5, 1), ``--share-reps`` (200) synthetic query sets of ``--share-query`` samples are drawn
  without replacement from the default method's held-out members' and non-members' scores, with
  a disjoint calibration set (held-out members, null) drawn beside them from the same pools; the
  share of sets whose 95% interval covers the set's true share (members / size) is counted, with
  Storey's estimate of the member fraction beside it;
- samples needed (:func:`mintaudit.evaluation.samples_needed`): per method, the suspect samples
  (all members) the dataset-level test needs for p < 0.01 with 90% power, against a null
  reference of half the test split, from its measured per-sample scores resampled; RMIA's too
  when its reference models are cached in the work directory.

Without a work directory (no ``--out/report.json``), the coverage part runs alone on the scores of
a small real run made here in a minute or two: objcls-cnn without dropout trained on 900 of the
embedded digits (30 epochs), the LOSS attack's scores of those members and of the other 897
digits (LOSS fits nothing, so every member is a held-out member for it); RMIA needs reference
models, which only a work directory (``mintaudit demo`` or ``benchmarks/compare.py``) holds.

    python benchmarks/power.py                  # 1,000 repetitions per cell, 2-4 minutes on 2 cores
    python benchmarks/power.py --reps 200
    python benchmarks/power.py --out runs/demo --dataset digits   # the demo's work directory
    python benchmarks/power.py --out none       # the coverage part alone, on the small digits run

Ends with one line (the method ``mintaudit test`` chooses by default, Mann-Whitney U):
RESULT null_reject_rate=<x> power_n100_full=<x> power_n100_half=<x> default_method=<name> share_coverage=<x>
samples_needed_default=<n> samples_needed_rmia=<n or none>
(without a work directory: RESULT share_coverage=<x> samples_needed_loss=<n> score_source=digits-loss)
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mintaudit.detectors import DetectorConfig
from mintaudit.attacks import scores as attacks
from mintaudit.evaluation import auc_score, dataset_test, sample_decisions, samples_needed, usage_share
from mintaudit.models import published_taps
from mintaudit.passive import SweepConfig, audit_tap, passive_split
from mintaudit.workdir import prepare_data, resolve_model
from mintaudit.signals import extract_signals, output_features
from mintaudit.workdir.choice import choose_default

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs

SIZES = (10, 30, 100, 300)
FRACTIONS = (0.0, 0.1, 0.5, 1.0)
SHARES = (0.0, 0.1, 0.5, 1.0)


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


def best_by_validation(report_path: Path) -> tuple[str | None, bool, str] | None:
    """(layer or None, fuse outputs?, label) of the passive-MINT result with the best validation AUC.

    None when the report has no fitted passive-MINT row (a work directory of attacks alone).
    """
    results = json.loads(report_path.read_text())["results"]
    fitted = [r for r in results if r["method"] == "passive-mint" and (r.get("fit") or {}).get("val_auc") is not None]
    if not fitted:
        return None
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
    ap.add_argument("--share-reps", type=int, default=200, help="query sets per true share (default: %(default)s)")
    ap.add_argument("--share-query", type=int, default=100, help="samples per query set (default: %(default)s)")
    ap.add_argument("--share-calibration", type=int, default=1000, help="held-out members and null, at most")
    ap.add_argument("--quick", action="store_true", help="100 repetitions per cell, 50 query sets per share; no JSON")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.share_reps = min(args.reps, 100), min(args.share_reps, 50)
    t0 = time.perf_counter()
    if (Path(args.out) / "report.json").is_file():
        figures, details, scores, n_null = workdir_part(args)
        default_key = next(iter(scores))
        rmia_key = next((k for k in scores if k.startswith("rmia")), None)
        source = "work directory"
    else:
        print(f"no work directory at {args.out!r} (no report.json): the coverage part alone, on a small digits run")
        figures, details = {}, {}
        members, nonmembers = small_digits_run(args.seed)
        default_key, rmia_key, source = "LOSS attack (digits, objcls-cnn, 900 members)", None, "digits-loss"
        scores = {default_key: (members, nonmembers)}
        n_null = len(nonmembers) // 2
    m_scores, n_scores = scores[default_key]
    cov = share_coverage(
        m_scores, n_scores, reps=args.share_reps, n_query=args.share_query, n_cal=args.share_calibration, seed=args.seed
    )
    needed = {k: samples_needed(m, n, n_null=n_null, seed=args.seed) for k, (m, n) in scores.items()}
    print("\nSamples needed (all members) for p < 0.01 with 90% power, from the measured scores resampled:\n")
    print("| method | AUC members vs null | samples needed | power there |")
    print("|---|---|---|---|")
    for k, sn in needed.items():
        n_txt = f"{sn.n:,}" if sn.n is not None else f"> {sn.max_n:,}"
        print(f"| {k} | {sn.auc:.3f} | {n_txt} | {sn.power_at_n:.2f} |")
    if rmia_key is None:
        print("RMIA: not measured (its reference models are cached only in a work directory with an rmia row)")
    figures["share_coverage"] = cov["overall"]
    if source == "digits-loss":
        figures["samples_needed_loss"] = needed[default_key].n
        figures["score_source"] = source
    else:
        figures["samples_needed_default"] = needed[default_key].n
        rmia_n = needed[rmia_key].n if rmia_key else None
        figures["samples_needed_rmia"] = rmia_n if rmia_n is not None else ("over_max_n" if rmia_key else "none")
    details.update(
        share_coverage={str(s): row for s, row in cov["by_share"].items()},
        share_reps=args.share_reps,
        share_query=args.share_query,
        samples_needed={k: sn.to_dict() for k, sn in needed.items()},
        score_source=source,
    )
    print(f"torch threads {torch.get_num_threads()}; total {time.perf_counter() - t0:.0f} s")
    # results/power.json holds the Fashion-MNIST sweep's figures; another work directory or the small run: their own file
    name = "power" if source == "work directory" and args.dataset == "fashion-mnist" else f"power-{args.dataset}"
    emit_result(
        name if source == "work directory" else "power-digits-loss", figures, details=details, write=not args.quick
    )


def share_coverage(
    members: np.ndarray, nonmembers: np.ndarray, *, reps: int, n_query: int, n_cal: int, seed: int
) -> dict:
    """Coverage of usage_share's 95% interval over synthetic query sets with known shares (see the docstring)."""
    n_query = min(n_query, len(members) // 2, len(nonmembers) // 2)
    n_cal = min(n_cal, len(members) - n_query, len(nonmembers) - n_query)
    rng = np.random.default_rng([seed, 7])
    by_share: dict[float, dict] = {}
    t = time.perf_counter()
    for s in SHARES:
        nm = int(round(s * n_query))
        hits, widths, estimates, storey, misses = 0, [], [], [], {"below": 0, "above": 0}
        for rep in range(reps):
            pm, pn = rng.permutation(len(members)), rng.permutation(len(nonmembers))
            query = np.r_[members[pm[:nm]], nonmembers[pn[: n_query - nm]]]
            cal = members[pm[n_query : n_query + n_cal]]  # disjoint from the query whatever its share
            null = nonmembers[pn[n_query : n_query + n_cal]]
            u = usage_share(query, cal, null, seed=rep)
            lo, hi = u.ci95
            truth = nm / n_query
            hits += lo <= truth <= hi
            misses["below" if truth < lo else "above"] += not lo <= truth <= hi
            widths.append(hi - lo)
            estimates.append(np.nan if u.estimate is None else u.estimate)
            storey.append(dataset_test(query, null).member_fraction["estimate"])
        by_share[s] = {
            "coverage": hits / reps,
            "mean_width": float(np.mean(widths)),
            "mean_estimate": float(np.nanmean(estimates)),
            "mean_storey": float(np.mean(storey)),
            "truth_below_interval": misses["below"],
            "truth_above_interval": misses["above"],
        }
    overall = float(np.mean([row["coverage"] for row in by_share.values()]))
    print(
        f"\nUsage share (DUCI-style, 95% interval) over {reps} synthetic query sets per true share, {n_query} samples "
        f"each, calibration {n_cal} held-out members + {n_cal} null, drawn without replacement "
        f"({len(members)} member and {len(nonmembers)} non-member scores; {time.perf_counter() - t:.0f} s):\n"
    )
    print("| true share | coverage | mean width | mean estimate | mean Storey estimate | truth below / above |")
    print("|---|---|---|---|---|---|")
    for s, row in by_share.items():
        print(
            f"| {s:g} | {row['coverage']:.3f} | {row['mean_width']:.3f} | {row['mean_estimate']:.3f} | "
            f"{row['mean_storey']:.3f} | {row['truth_below_interval']} / {row['truth_above_interval']} |"
        )
    print(f"share_coverage (all {len(SHARES) * reps} sets): {overall:.3f} (target >= 0.93)")
    return {"overall": overall, "by_share": by_share, "n_query": n_query, "n_cal": n_cal}


def small_digits_run(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """LOSS scores of (members, non-members) of objcls-cnn (no dropout) trained 30 epochs on 900 digits."""
    from mintaudit._tensor import to_tensor
    from mintaudit.attacks.scores import loss_scores
    from mintaudit.data import load_dataset
    from mintaudit.models import ModelSpec, build_model
    from mintaudit.training import TrainConfig, train_classifier

    t = time.perf_counter()
    ds = load_dataset("digits")
    perm = np.random.default_rng([seed, 5]).permutation(len(ds))
    mem, non = np.sort(perm[:900]), np.sort(perm[900:])
    h, w, c = ds.images.shape[1:]
    torch.manual_seed(seed)
    net = build_model(ModelSpec("objcls-cnn", c, ds.num_classes, (h, w), {"dropout": 0.0}))
    train_classifier(net, ds, mem, TrainConfig(epochs=30, batch_size=32, seed=seed), show_progress=False)
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(to_tensor(ds.images[i : i + 512])) for i in range(0, len(ds), 512)]).double().numpy()
    s = loss_scores(logits, ds.labels)
    auc = auc_score(np.r_[np.ones(len(mem)), np.zeros(len(non))], np.r_[s[mem], s[non]])
    print(f"small run: {len(mem)} members, {len(non)} non-members, LOSS AUC {auc:.3f}, {time.perf_counter() - t:.0f} s")
    return s[mem], s[non]


def workdir_part(args: argparse.Namespace) -> tuple[dict, dict, dict, int]:
    """The power and false-positive tables on the work directory: (figures, details, scores, null size)."""
    out = Path(args.out)

    ds, splits = prepare_data(args.dataset, out)
    net, name, _ = resolve_model(out, ds)
    split = passive_split(splits, known_fraction=0.5, seed=0)
    layers = [layer for _, layer in published_taps(name)]
    members, test = split.heldout_members, splits.test
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    report = json.loads((out / "report.json").read_text())
    t = time.perf_counter()
    method, d_layer, why, attack_done = choose_default(out, net, ds, splits, split, report, show_progress=False)
    print(f"default method in {time.perf_counter() - t:.0f} s: {why['sentence']}")
    best_mint = best_by_validation(out / "report.json")
    if best_mint is None:  # no sweep in this work directory: no passive-MINT rows to refit
        print("no passive-MINT row in the report: the passive-MINT rows are left out")
        layers = []
    layer, fuse, label = best_mint or (None, True, "outputs")
    extra = [lay for lay in (d_layer, layer) if lay is not None and lay not in layers]
    # the sweep's cache; a tap it lacks (a row of another audit, e.g. the demo's aMINT taps): a private cache
    root = out / "cache" if not extra else Path(tempfile.mkdtemp(prefix="power-cache-"))
    if extra:  # removed at exit: this script made it
        atexit.register(shutil.rmtree, root, True)
    cache = extract_signals(net, ds, np.unique(split.all_indices()), layers + list(dict.fromkeys(extra)), root)
    print(f"signals: {cache.path} ({cache.manifest['n']} samples, reused when it exists)")
    cfg = SweepConfig(detector=DetectorConfig(seed=0), n_bootstrap=0)
    if method not in ("passive-mint", "loss"):  # a registry attack: its own scores, as mintaudit test reads them
        sc = attack_done[method]
        assert np.array_equal(split.test, test)
        scores[f"{method} (the default: best validation AUC {why['val_auc']:.3f})"] = (sc.members, sc.nonmembers)
    mint_rows = {f"passive MINT, {label}": (layer, fuse), "passive MINT, outputs only": (None, True)}
    if best_mint is None:
        mint_rows = {}
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
    if method != "rmia" and "rmia" in attack_done:  # its reference models are cached: RMIA beside the default
        scores["rmia (reference models cached)"] = (attack_done["rmia"].members, attack_done["rmia"].nonmembers)
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
    figures = {
        "null_reject_rate": null_rate,
        "power_n100_full": rejections[main_key]["mann-whitney"][(100, 1.0)] / R if 100 in sizes else float("nan"),
        "power_n100_half": rejections[main_key]["mann-whitney"][(100, 0.5)] / R if 100 in sizes else float("nan"),
        "default_method": method,
    }
    details = {"null_reject_rate_by_method": null_all, "repetitions": R, "sizes": list(sizes)}
    return figures, details, scores, n_null


if __name__ == "__main__":
    main()

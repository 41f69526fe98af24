#!/usr/bin/env python
"""DP-SGD targets audited three ways: LOSS, passive MINT, and the one-run canary audit (issue 16).

On Fashion-MNIST, objcls-cnn is trained three times on the same training set: without DP, and
with DP-SGD (Opacus, BatchNorm -> GroupNorm, PRV accountant) at epsilon 8 and 1 (delta 1e-5).
The training set is the members plus each of ``--canaries`` canaries with probability 1/2 (the
canaries are drawn from training-part samples no split uses), so one training run per setting
serves every audit:

* LOSS and passive MINT (one tap, ``--tap``) through ``mintaudit.workdir.sweep`` on the members / external /
  test split: AUC, TPR at 1% FPR and the epsilon lower bound of every result (Clopper-Pearson,
  threshold chosen on a separate half);
* the one-run audit (Steinke, Nasr, Jagielski 2023) on the canaries scored by LOSS: the best of the
  guess grid, Bonferroni-corrected, at 95% confidence and delta 1e-5.

Every bound under DP must stay at or below the accountant's epsilon; the non-private model's
must be above 0.

    python benchmarks/dp_audit.py                      # ~20 min on 2 CPU cores
    python benchmarks/dp_audit.py --members 500 --canaries 200 --epochs 2 --dp-epochs 1 --out runs/bench-dp-small

Last line: RESULT eps_inf_lb=<x> eps8_lb=<x> eps1_lb=<x> eps8_acc=<x> eps1_acc=<x> onerun_inf_lb=<x>
(``epsK_lb``: the largest lower bound of any of the three audits of that model).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mintaudit.attacks.scores import loss_scores
from mintaudit.canary import draw_canaries, one_run_bound
from mintaudit.data import Splits, load_dataset, make_splits
from mintaudit.detectors import DetectorConfig
from mintaudit.dp import DPConfig
from mintaudit.passive import SweepConfig
from mintaudit.workdir import sweep, train_model
from mintaudit.training import TrainConfig

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs

DELTA = 1e-5


@torch.no_grad()
def _logits(net: torch.nn.Module, ds, idx: np.ndarray) -> np.ndarray:
    net.eval()
    return np.concatenate([net(ds.batch(idx[s : s + 512])).double().numpy() for s in range(0, len(idx), 512)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--members", type=int, default=3000)
    ap.add_argument("--external", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--canaries", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the non-private model")
    ap.add_argument("--dp-epochs", type=int, default=4, help="epochs of the DP-SGD models")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dp-lr", type=float, default=2e-3)
    ap.add_argument("--tap", default="fc_relu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench-dp")
    args = ap.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()

    ds = load_dataset(args.dataset)
    base = make_splits(ds, members=args.members, external=args.external, test=args.test, seed=args.seed)
    taken = np.zeros(len(ds), dtype=bool)
    taken[np.concatenate([base.members, base.external, base.test])] = True
    if ds.official_test is not None:
        taken |= ds.official_test
    canaries, included = draw_canaries(np.flatnonzero(~taken), args.canaries, seed=args.seed)
    splits = Splits(
        base.dataset,
        base.data_fingerprint,
        base.seed,
        members=np.concatenate([base.members, canaries[included]]),
        external=base.external,
        test=base.test,
    )
    print(
        f"{ds.name}: {len(base.members)} members + {int(included.sum())} of {len(canaries)} canaries trained on; "
        f"{len(base.external)} external, {len(base.test)} test",
        flush=True,
    )

    settings = [
        ("inf", None, args.epochs, args.lr),
        ("8", DPConfig(8.0, DELTA), args.dp_epochs, args.dp_lr),
        ("1", DPConfig(1.0, DELTA), args.dp_epochs, args.dp_lr),
    ]
    rows = []
    for name, dp, epochs, lr in settings:
        t = time.perf_counter()
        work = out / f"eps-{name}"
        splits.save(work / "splits.json")
        cfg = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=lr, seed=args.seed)
        net, info = train_model(work, ds, splits, model="objcls-cnn", config=cfg, dp=dp, show_progress=False)
        t_train = time.perf_counter() - t
        sweep_cfg = SweepConfig(detector=DetectorConfig(epochs=15, seed=args.seed), n_bootstrap=200, seed=args.seed)
        report = sweep(work, ds, splits, taps=args.tap, config=sweep_cfg, show_progress=False, allow_weak_model=True)
        by = {r["method"]: r for r in report["results"]}
        scores = loss_scores(_logits(net, ds, canaries), ds.labels[canaries])
        onerun = one_run_bound(scores, included, delta=DELTA, confidence=0.95, seed=args.seed)
        claim = info.get("dp") or {}
        row = {
            "setting": name,
            "accountant_eps": claim.get("epsilon_spent"),
            "task_accuracy": info["task_accuracy"],
            "train_accuracy": info["train_accuracy"],
            "seconds_train": round(t_train, 1),
            "seconds": round(time.perf_counter() - t, 1),
            "onerun": onerun.to_dict(),
        }
        for key, method in (("loss", "loss"), ("mint", "passive-mint")):
            r = by[method]
            row[key] = {
                "auc": r["metrics"]["auc"],
                "tpr_at_1pct": r["metrics"]["tpr_at_fpr"]["0.01"],
                "eps_lb": r["epsilon_lower_bound"]["epsilon"],
            }
        rows.append(row)
        print(
            f"  eps {name}: trained in {t_train:.0f} s, accuracy {row['task_accuracy']:.3f}, accountant eps "
            f"{row['accountant_eps'] if claim else 'none'}; one-run {onerun.epsilon:.3f} ({onerun.correct}/"
            f"{onerun.guesses} right)",
            flush=True,
        )

    (out / "dp_audit.json").write_text(json.dumps(rows, indent=2))
    head = (
        f"{'model':<8} {'acct eps':>8} {'task acc':>8} | {'LOSS auc':>8} {'tpr@1%':>7} {'eps LB':>6} | "
        f"{'MINT auc':>8} {'tpr@1%':>7} {'eps LB':>6} | {'1-run LB':>8} {'right/guesses':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        acct = f"{r['accountant_eps']:.3f}" if r["accountant_eps"] is not None else "inf"
        print(
            f"{'eps ' + r['setting']:<8} {acct:>8} {r['task_accuracy']:>8.3f} | {r['loss']['auc']:>8.3f} "
            f"{r['loss']['tpr_at_1pct']:>7.3f} {r['loss']['eps_lb']:>6.2f} | {r['mint']['auc']:>8.3f} "
            f"{r['mint']['tpr_at_1pct']:>7.3f} {r['mint']['eps_lb']:>6.2f} | {r['onerun']['epsilon']:>8.3f} "
            f"{str(r['onerun']['correct']) + '/' + str(r['onerun']['guesses']):>13}"
        )
    lb = {r["setting"]: max(r["loss"]["eps_lb"], r["mint"]["eps_lb"], r["onerun"]["epsilon"]) for r in rows}
    acc = {r["setting"]: r["task_accuracy"] for r in rows}
    ok = all(lb[r["setting"]] <= r["accountant_eps"] for r in rows if r["accountant_eps"] is not None) and lb["inf"] > 0
    print(
        f"every DP bound <= the accountant's epsilon and the non-private bound > 0: {'yes' if ok else 'NO'}; "
        f"total {time.perf_counter() - t0:.0f} s"
    )
    emit_result(
        "dp_audit",
        {
            "eps_inf_lb": lb["inf"],
            "eps8_lb": lb["8"],
            "eps1_lb": lb["1"],
            "eps8_acc": acc["8"],
            "eps1_acc": acc["1"],
            "onerun_inf_lb": rows[0]["onerun"]["epsilon"],
        },
        details={"rows": rows, "bounds_hold": ok},
        digits=3,
    )


if __name__ == "__main__":
    main()

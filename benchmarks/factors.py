#!/usr/bin/env python
"""What makes a model auditable: the factors study, measured.

Trains ``objcls-cnn`` under a grid of one factor at a time around a fixed, seeded base
(epochs, members per class, dropout, weight decay, augmentation, label smoothing), audits each
point with passive MINT at its best tap (chosen on validation AUC) and the LOSS attack on the
same held-out members and non-members, prints the table and each factor's effect, and writes
OUT/factors.json and OUT/factors.html (the same function as ``mintaudit factors``). Trained
models are cached in OUT/factors/models: a rerun trains only what changed.

    python benchmarks/factors.py --profile cpu                    # Fashion-MNIST, 2 cores: 12 minutes (measured, 703 s)
    python benchmarks/factors.py --profile tiny --out runs/bench-factors-tiny   # seconds
    python benchmarks/factors.py --profile cpu --amint             # + aMINT where it applies (~20 minutes more)

Ends with one line: RESULT <factor>_delta_auc=<x> ... for each factor: passive-MINT AUC at its
highest setting minus at its lowest.
"""

from __future__ import annotations

import argparse
import time

import torch

from mintaudit.studies.factors import PROFILES, factors_config, format_factors_table, run_factors

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=PROFILES, default="cpu")
    ap.add_argument("--factors", help="comma-separated subset of the profile's factors")
    ap.add_argument(
        "--grid", action="append", default=[], metavar="FACTOR=V1,V2,...", help="values instead of the profile's"
    )
    ap.add_argument("--dataset", help="another data set than the profile's")
    ap.add_argument("--data-root")
    ap.add_argument("--amint", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--bootstrap", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster for tiny on a busy machine)"
    )
    ap.add_argument("--out", help="work directory (default: runs/bench-factors-<profile>)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    config = factors_config(
        args.profile,
        factors=args.factors,
        grid=args.grid,
        dataset=args.dataset,
        amint=args.amint,
        n_bootstrap=args.bootstrap,
        seed=args.seed,
    )
    out = args.out or f"runs/bench-factors-{args.profile}"
    t0 = time.perf_counter()
    doc = run_factors(
        out, config, data_root=args.data_root, command=["benchmarks/factors.py", f"--profile={args.profile}"]
    )
    seconds = time.perf_counter() - t0

    d, runs = doc["dataset"], doc["runs"]
    print(
        f"\n{d['name']}: member pool {d['member_pool']} ({d['members_per_class_max']} per class), {d['external']} "
        f"external, {d['test']} test; {doc['model']}, base {doc['base']}"
    )
    print(
        f"torch threads {torch.get_num_threads()}; {runs['models']} distinct models ({len(runs['trained'])} trained now, "
        f"{runs['member_epochs']} member-epochs in all); {seconds:.0f} s\n"
    )
    print(format_factors_table(doc))
    print(f"\nwrote {out}/factors.json and {out}/factors.html")
    emit_result(
        f"factors-{args.profile}",
        {f"{e['factor']}_delta_auc": e["passive_delta_auc"] for e in doc["effects"]},
        details={"effects": doc["effects"], "seconds": seconds},
    )


if __name__ == "__main__":
    main()

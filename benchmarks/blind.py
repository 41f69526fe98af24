#!/usr/bin/env python
"""The blind baseline's false alarms and its power against distribution shifts, on Fashion-MNIST.

The null reference is 1,000 images drawn (seeded) from Fashion-MNIST's official test split; the
other 9,000 test images are the query pool. Then:

- ``--iid`` (200) query sets of 200 images drawn from the query pool, i.e. IID with the null: the
  blind test (:func:`mintaudit.evaluation.blind_test`: 8x8 area averages, mean, standard deviation
  and a 16-bin histogram; logistic regression; 5-fold cross-validated AUC; 200 permutations at
  alpha 0.01) should flag at most 5% of them (target 1%);
- ``--shifted`` (50) query sets of 200 pool images for each of two shifts, brightness x1.2 (clipped
  to 255) and flipped upside down: it should flag at least 90%.

Each set has its own seed (the set's number) for folds and permutations. An IID set usually stops
after 10 permutations (the decision is then settled; see the module :mod:`mintaudit.evaluation.blind`).

    python benchmarks/blind.py                 # about 5 minutes on one core
    python benchmarks/blind.py --iid 50 --shifted 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import emit_result  # noqa: E402

from mintaudit.data import load_dataset  # noqa: E402
from mintaudit.evaluation.blind import blind_test  # noqa: E402

SHIFTS = {
    "brightness x1.2": lambda x: np.clip(x.astype(np.float64) * 1.2, 0, 255).astype(np.uint8),
    "upside down": lambda x: x[:, ::-1].copy(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iid", type=int, default=200, help="IID query sets (200)")
    parser.add_argument("--shifted", type=int, default=50, help="query sets per shift (50)")
    parser.add_argument("--size", type=int, default=200, help="images per query set (200)")
    parser.add_argument("--null", type=int, default=1000, help="images in the null reference (1000)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    ds = load_dataset("fashion-mnist")
    test = np.flatnonzero(np.asarray(ds.official_test))
    order = np.random.default_rng(0).permutation(test)
    images = np.asarray(ds.images)
    null, pool = images[np.sort(order[: args.null])], order[args.null :]
    rng = np.random.default_rng(1)
    iid = [
        blind_test(images[np.sort(rng.choice(pool, args.size, replace=False))], null, seed=i) for i in range(args.iid)
    ]
    shifted: dict[str, list] = {}
    for name, shift in SHIFTS.items():
        shifted[name] = [
            blind_test(shift(images[np.sort(rng.choice(pool, args.size, replace=False))]), null, seed=i)
            for i in range(args.shifted)
        ]
    flagged = {name: float(np.mean([t.rejects for t in ts])) for name, ts in shifted.items()}
    for name, ts in shifted.items():
        print(f"{name}: flagged {flagged[name]:.3f}, mean blind AUC {np.mean([t.auc for t in ts]):.3f}")
    print(
        f"IID: false alarms {np.mean([t.rejects for t in iid]):.3f}, mean blind AUC {np.mean([t.auc for t in iid]):.3f}"
        f", mean permutations {np.mean([t.n_permutations for t in iid]):.1f}"
    )
    every = [t for ts in shifted.values() for t in ts]
    emit_result(
        "blind",
        {
            "false_alarm_rate": float(np.mean([t.rejects for t in iid])),
            "shift_flagged": min(flagged.values()),
            "shift_flagged_brightness": flagged["brightness x1.2"],
            "shift_flagged_flip": flagged["upside down"],
            "blind_auc_iid": float(np.mean([t.auc for t in iid])),
            "blind_auc_shift": float(np.mean([t.auc for t in every])),
            "iid_sets": args.iid,
            "shifted_sets_per_shift": args.shifted,
            "set_size": args.size,
            "null_size": args.null,
            "wall_s": time.perf_counter() - start,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

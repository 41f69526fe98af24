#!/usr/bin/env python
"""Peak memory of ``mintaudit.audit`` on DataLoaders: flat in the number of samples (issue 27).

A small CNN on 3 x 64 x 64 inputs is audited on three DataLoaders (members, external, test) over a
map-style Dataset that makes each sample on demand (seeded random images: no file I/O, nothing held),
at N and 4N samples per role (default 2,000 and 8,000): the output signals plus one pooled tap.
Each size runs in a fresh process, which reports ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (its
peak resident memory, imports included). Target: the ratio of the two peaks at most 1.3. A pool
held in memory as float32 would need 3 x 4N x 48 KiB = 1.1 GiB more at 4N, twice that while the
batches are concatenated. Measured on 2 shared CPU cores: before the sets were streamed (commit e603932,
every set concatenated into one float32 pool) 883 MiB and 2,840 MiB, ratio 3.22; streamed, 537 MiB and
628 MiB, ratio 1.17 (``results/memory.json``).

    python benchmarks/memory.py                # 2,000 and 8,000 per role, 1 thread: a few minutes
    python benchmarks/memory.py --n 500        # 500 and 2,000

Ends with: RESULT peak_mib_2000=<x> peak_mib_8000=<x> memory_ratio=<x> (the keys name the sizes run).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

import torch
from torch import nn

from _bench import emit_result, run_child  # benchmarks/ is on sys.path when a script runs

SHAPE = (3, 64, 64)
CLASSES = 10
ROLE_SEEDS = {"members": 1, "external": 2, "test": 3}


class Synthetic(torch.utils.data.Dataset):
    """``n`` seeded random images (3, 64, 64), made when read: sample i of a role is always the same."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 10_000_000 + int(i))
        return torch.randn(SHAPE, generator=g), int(i) % CLASSES


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, CLASSES),
    )


def _child(n: int, batch: int) -> None:
    import mintaudit
    from mintaudit.detectors import DetectorConfig

    torch.set_num_threads(1)
    loaders = {
        role: torch.utils.data.DataLoader(Synthetic(n, seed), batch_size=batch) for role, seed in ROLE_SEEDS.items()
    }
    start = time.perf_counter()
    result = mintaudit.audit(
        _model(),
        **loaders,
        taps=["2"],  # the second convolution's output, stored pooled (per-channel mean and max)
        tap_mode="pooled",
        fusion="outputs",
        detector=DetectorConfig(epochs=2, seed=0),
        n_bootstrap=50,
        allow_weak_model=True,  # untrained: memory does not depend on the weights
        show_progress=False,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"n": n, "peak_mib": peak, "seconds": seconds, "rows": len(result.rows)}))


def _run(n: int, batch: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", str(n), "--batch", str(batch)]
    return run_child(cmd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="samples per role of the small run (the large: 4x)")
    ap.add_argument("--batch", type=int, default=256, help="the DataLoaders' batch size")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child, args.batch)
        return
    small, large = _run(args.n, args.batch), _run(4 * args.n, args.batch)
    for run in (small, large):
        print(f"{run['n']:>6} per role: peak {run['peak_mib']:8.1f} MiB, {run['seconds']:6.1f} s")
    ratio = large["peak_mib"] / small["peak_mib"]
    print(f"ratio {ratio:.3f} (target <= 1.3)")
    emit_result(
        "memory",
        {
            f"peak_mib_{small['n']}": small["peak_mib"],
            f"peak_mib_{large['n']}": large["peak_mib"],
            "memory_ratio": ratio,
        },
        details={"runs": [small, large], "shape": list(SHAPE), "taps": ["2 (pooled)"], "batch": args.batch},
        digits={"memory_ratio": 3, f"peak_mib_{small['n']}": 1, f"peak_mib_{large['n']}": 1},
        write=args.n == 2000,
    )


if __name__ == "__main__":
    main()

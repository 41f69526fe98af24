#!/usr/bin/env python
"""The cost of aMINT training: one aMINT step against one plain step on the same 128 images.

aMINT step: 64 members + 64 external samples in one forward through backbone and MINT head,
task cross-entropy on the members, membership BCE on all 128, backward, Adam step. Plain step:
the same 128 images, cross-entropy, backward, Adam step, same backbone. Both are timed on the
same inputs, interleaved, after warm-up; the median of the repeats is reported. Also prints the
head's parameter count against the backbone's, for the default and the ``paper`` head.

    python benchmarks/amint_overhead.py                     # objcls-cnn, middle taps, 28 px
    python benchmarks/amint_overhead.py --backbone mobilenet --setup entry
    python benchmarks/amint_overhead.py --threads 1 --clock cpu   # on a shared, loaded machine
    python benchmarks/amint_overhead.py --head-widths 64,256      # a lighter head (half the convolution work)

``--clock cpu`` times each step by the process's CPU time (``time.process_time``) instead of the wall
clock: on a machine shared with other jobs, waiting for a core then does not count, so the ratio
stays about the work done; with one thread it is that thread's time.

Ends with: RESULT step_ratio=<x> head_params=<n> backbone_params=<n> paper_head_params=<n>
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from mintaudit.active import ActiveModel, HeadConfig
from mintaudit.models import ModelSpec, active_taps, build_model

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="objcls-cnn")
    ap.add_argument("--setup", default="middle", choices=["entry", "middle", "output"])
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="wall clock or process CPU time")
    ap.add_argument("--head-widths", help="the default head's two branch widths, e.g. 128,256 (default: the preset's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = ModelSpec(args.backbone, args.channels, 10, (args.image_size, args.image_size))
    torch.manual_seed(0)
    x = torch.randn(128, args.channels, args.image_size, args.image_size)
    y = torch.randint(0, 10, (128,))
    target = torch.cat([torch.ones(64), torch.zeros(64)])

    plain = build_model(spec).train()
    taps = active_taps(args.backbone, args.setup, plain)
    widths = tuple(int(w) for w in args.head_widths.split(",")) if args.head_widths else None
    active = ActiveModel(build_model(spec), taps, example=x[:2], head=HeadConfig(widths=widths)).train()
    active.backbone.load_state_dict(plain.state_dict())
    paper = ActiveModel(build_model(spec), taps, example=x[:2], head=HeadConfig(preset="paper"))
    opt_p = torch.optim.Adam(plain.parameters(), lr=1e-4)
    opt_a = torch.optim.Adam(active.parameters(), lr=1e-4)
    ce, bce = nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss()

    def plain_step() -> None:
        opt_p.zero_grad(set_to_none=True)
        ce(plain(x), y).backward()
        opt_p.step()

    def active_step() -> None:
        opt_a.zero_grad(set_to_none=True)
        logits, mint = active(x)
        (ce(logits[:64], y[:64]) + bce(mint, target)).backward()
        opt_a.step()

    for _ in range(5):
        plain_step()
        active_step()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    t_plain, t_active = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        t0 = clock()
        plain_step()
        t_plain.append(clock() - t0)
        t0 = clock()
        active_step()
        t_active.append(clock() - t0)
    mp, ma = statistics.median(t_plain), statistics.median(t_active)
    head, backbone, paper_head = _params(active.head), _params(active.backbone), _params(paper.head)
    print(
        f"{args.backbone}, {args.setup} taps {', '.join(taps)}, {args.channels}x{args.image_size}x{args.image_size}, "
        f"head {'/'.join(map(str, active.head_config.branch_widths))}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats} steps of 128 images ({args.clock} clock)"
    )
    print("| step | ms | images/s |")
    print("|---|---|---|")
    print(f"| plain (128 images) | {1000 * mp:.1f} | {128 / mp:.0f} |")
    print(f"| aMINT (64 members + 64 external) | {1000 * ma:.1f} | {128 / ma:.0f} |")
    print(f"step ratio aMINT / plain: {ma / mp:.2f}")
    print(
        f"parameters: backbone {backbone:,}; default head {head:,} ({head / backbone:.2f}x); "
        f"paper head {paper_head:,} ({paper_head / backbone:.2f}x)"
    )
    emit_result(
        "amint_overhead",
        {"step_ratio": ma / mp, "head_params": head, "backbone_params": backbone, "paper_head_params": paper_head},
        details={
            "plain_step_ms": 1000 * mp,
            "amint_step_ms": 1000 * ma,
            "clock": args.clock,
            "head_widths": list(active.head_config.branch_widths),
        },
        digits=3,
    )


if __name__ == "__main__":
    main()

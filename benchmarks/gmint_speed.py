#!/usr/bin/env python
"""Per-sample-gradient throughput of gMINT: batched (torch.func) against the plain loop and the floor.

For one batch of the same samples, three ways to get what gMINT needs, timed best-of-N:

- batched: ``mintaudit.signals.gradient_vectors`` (``vmap`` over ``grad`` of a functional
  call, then the per-filter ``mean`` reduction): what ``extract_gradients`` runs per batch;
- loop: plain autograd, one sample at a time (forward, ``torch.autograd.grad`` w.r.t. the same
  weights, the same reduction);
- backward: ONE batched forward + backward of the summed loss w.r.t. the same weights. It gives
  only the batch's total gradient, not per-sample ones: the physical floor of any method.

The batched and loop vectors are checked to agree to 1e-5 before anything is timed.

    python benchmarks/gmint_speed.py                      # objcls-cnn, 28x28x1, combined setup, batch 128
    python benchmarks/gmint_speed.py --setup entry --batch-size 256
    python benchmarks/gmint_speed.py --device cuda        # on a GPU

Prints a table for objcls-cnn per setup (the RESULT comes from --setup), and the same for the
tiny test CNN on 8x8 inputs, where per-call overhead rather than arithmetic dominates the loop.
Ends with: RESULT speedup_vs_loop=<x> ratio_vs_backward=<x>
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mintaudit._tensor import resolve_device
from mintaudit.models.zoo import ObjClsCNN, TinyCNN
from mintaudit.signals import SETUPS, gradient_layers, gradient_vectors, reduce_per_filter

from _bench import emit_result  # benchmarks/ is on sys.path when a script runs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up (and, on a GPU, kernel selection)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times)


def _measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layers: list[str], repeats: int) -> dict[str, float]:
    params = dict(model.named_parameters())
    weights = [params[f"{layer}.weight"] for layer in layers]

    def batched() -> list[torch.Tensor]:
        vectors, _ = gradient_vectors(model, x, y, layers, ["mean"])
        return [vectors[layer] for layer in layers]

    def loop() -> list[torch.Tensor]:
        rows: list[list[torch.Tensor]] = [[] for _ in layers]
        for i in range(len(x)):
            loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
            for j, g in enumerate(torch.autograd.grad(loss, weights)):
                rows[j].append(reduce_per_filter(g[None], ["mean"]))
        return [torch.cat(r) for r in rows]

    def backward() -> tuple[torch.Tensor, ...]:
        loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
        return torch.autograd.grad(loss, weights)

    for a, b in zip(batched(), loop()):
        err = float((a - b).abs().max())
        if err > 1e-5:
            raise SystemExit(f"batched and loop gradients differ by {err:.2e} (> 1e-5): not timing a wrong result")
    t = {
        name: _best(fn, repeats, x.device)
        for name, fn in (("batched", batched), ("loop", loop), ("backward", backward))
    }
    n = len(x)
    return {**t, "n": n, "speedup": t["loop"] / t["batched"], "ratio": t["batched"] / t["backward"]}


def _table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'setup':<10} {'layers':<36} {'loop':>11} {'batched':>11} {'backward':>11} {'speedup':>8} {'/backward':>9}")
    print(f"{'':<10} {'':<36} {'(sample/s)':>11} {'(sample/s)':>11} {'(floor)':>11} {'vs loop':>8} {'ratio':>9}")
    for setup, r in rows.items():
        n = r["n"]
        print(
            f"{setup:<10} {r['layers']:<36} {n / r['loop']:>11.0f} {n / r['batched']:>11.0f} {n / r['backward']:>11.0f} "
            f"{r['speedup']:>7.2f}x {r['ratio']:>8.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--setup", choices=SETUPS, default="combined", help="the setup the RESULT line reports (default: %(default)s)"
    )
    ap.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="samples per batch, as extract_gradients uses (default: %(default)s)",
    )
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats, best kept (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    if device.type == "cuda":  # full float32 everywhere: TF32 convolutions would miss the 1e-5 agreement check
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    b, s = args.batch_size, args.image_size
    print(
        f"per-sample gradients of the loss on the true label, eval mode, batch {b}, reduction mean; "
        f"torch {torch.__version__}, "
        + (
            f"{torch.cuda.get_device_name(device)}, float32 (TF32 off)"
            if device.type == "cuda"
            else f"{torch.get_num_threads()} threads, CPU"
        )
    )

    model = ObjClsCNN(1, 10, s).eval().to(device)
    x = torch.from_numpy(rng.uniform(-1, 1, (b, 1, s, s)).astype(np.float32)).to(device)
    y = torch.from_numpy(rng.integers(0, 10, b)).to(device)
    rows = {}
    for setup in SETUPS:
        layers = gradient_layers(model, setup)
        rows[setup] = {**_measure(model, x, y, layers, args.repeats), "layers": "+".join(layers)}
    _table(f"objcls-cnn, {s}x{s}x1 inputs, 10 classes", rows)

    tiny = TinyCNN(1, 10).eval().to(device)
    xt = torch.from_numpy(rng.uniform(-1, 1, (b, 1, 8, 8)).astype(np.float32)).to(device)
    layers = gradient_layers(tiny, "combined")
    _table(
        "tiny-cnn (the tests' CNN), 8x8x1 inputs: the loop is dominated by per-call overhead",
        {"combined": {**_measure(tiny, xt, y, layers, args.repeats), "layers": "+".join(layers)}},
    )

    main_row = rows[args.setup]
    print(
        f"\nobjcls-cnn {args.setup}: batched {1e3 * main_row['batched'] / b:.2f} ms/sample, loop "
        f"{1e3 * main_row['loop'] / b:.2f} ms/sample, one batched backward {1e3 * main_row['backward'] / b:.2f} ms/sample; "
        f"the floor is {main_row['loop'] / main_row['backward']:.2f}x faster than the loop on this device"
    )
    emit_result(
        f"gmint_speed-{device.type}",
        {"speedup_vs_loop": main_row["speedup"], "ratio_vs_backward": main_row["ratio"]},
        details={"setup": args.setup, "batch_size": b, "rows": rows},
        digits=2,
    )


if __name__ == "__main__":
    main()

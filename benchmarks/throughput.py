#!/usr/bin/env python
"""One-machine throughput of the audit: extraction, its memory, and the aMINT step, each against its floor.

Three measurements, all in the same run and on the same data (Fashion-MNIST when installed,
else the embedded digits):

- extraction: ``mintaudit.signals.extract_signals`` of the 7 published taps of ``objcls-cnn``
  (hooks, checks, outputs, cache written to disk) against a bare forward pass of the same model
  over the same N samples in the same batches; interleaved repeats, the best of each. Twice:
  full maps (the default budget keeps them full; target: ratio at most 1.10), and the same taps
  with ``tap_mode="pooled"`` (per-channel mean and max, reduced inside the hook; target: at
  most 1.2).
- memory: peak resident memory of the same extraction over N and 4N samples, each in a fresh
  subprocess (``ru_maxrss``); also the growth over what the process held before extracting.
  Target: ratio at most 1.2 (the cache streams to disk, nothing grows with N).
- aMINT step: 64 members + 64 external samples in one forward through
  ``mintaudit.active.ActiveModel`` with the ``middle`` taps, task cross-entropy + membership BCE,
  backward, Adam step, against a plain step (cross-entropy, backward, Adam) on the same 128
  images, as ``benchmarks/amint_overhead.py`` measures it (interleaved, median of the repeats).

    python benchmarks/throughput.py                 # N = 2000, CPU, torch's default threads
    python benchmarks/throughput.py --n 10000 --threads 8
    python benchmarks/throughput.py --device cuda   # bfloat16 autocast, channels-last
    python benchmarks/throughput.py --cache-root /mnt/nvme/tmp   # where the caches are written

Ends with: RESULT extract_ratio=<x> memory_ratio=<x> amint_step_ratio=<x> extract_per_s=<x> extract_ratio_pooled=<x>
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mintaudit._tensor import autocast, iter_batches, resolve_device, to_device, to_tensor
from mintaudit.active import ActiveModel
from mintaudit.data import ImageDataset, load_dataset
from mintaudit.errors import DataNotFoundError
from mintaudit.models import ModelSpec, active_taps, build_model, published_taps
from mintaudit.signals import extract_signals

from _bench import emit_result, run_child  # benchmarks/ is on sys.path when a script runs

MODEL = "objcls-cnn"
BATCH = 256


def _data() -> ImageDataset:
    try:
        return load_dataset("fashion-mnist")
    except DataNotFoundError:
        return load_dataset("digits")


def _model(ds: ImageDataset) -> nn.Module:
    c, h, w = ds.image_shape
    torch.manual_seed(0)
    return build_model(ModelSpec(MODEL, c, ds.num_classes, (h, w))).eval()


def _indices(ds: ImageDataset, n: int) -> np.ndarray:
    if n > len(ds):
        raise SystemExit(f"--n {n} (x4 for the memory test) is more than the {len(ds)} samples of {ds.name}")
    return np.arange(n, dtype=np.int64)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _bare_forward(model: nn.Module, ds: ImageDataset, idx: np.ndarray, device: torch.device) -> float:
    """Seconds for one forward pass over ``idx`` in batches, nothing recorded or written."""
    t0 = time.perf_counter()
    with torch.no_grad(), autocast(device):
        for x, _, _ in iter_batches(ds, idx, BATCH, device=device):
            model(to_device(x, device))
    _sync(device)
    return time.perf_counter() - t0


def _extraction(
    model: nn.Module,
    ds: ImageDataset,
    idx: np.ndarray,
    layers: list[str],
    root: Path,
    device: torch.device,
    tap_mode: str | None = None,
) -> float:
    """Seconds for ``extract_signals`` of ``layers`` (stored as ``tap_mode``; None: the default budget's pick)
    into a fresh cache under ``root`` (then deleted)."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fc_relu, a vector, is stored full whatever the mode
            t0 = time.perf_counter()
            cache = extract_signals(
                model, ds, idx, layers, root, batch_size=BATCH, show_progress=False, device=device, tap_mode=tap_mode
            )
            seconds = time.perf_counter() - t0
        assert int(cache.manifest["n"]) == len(idx)
        assert set(cache.tap_modes.values()) <= {tap_mode or "full", "full"}  # fc_relu, a vector, stays full
        return seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _cache_bytes(model: nn.Module, ds: ImageDataset, layers: list[str], tap_mode: str = "full") -> int:
    """Bytes of the cache per sample (all taps as float32 in ``tap_mode``, logits, loss)."""
    from mintaudit.signals import resolve_tap_modes, stored_shape
    from mintaudit.signals.reduce import probe_shapes

    c, h, w = ds.image_shape
    shapes = probe_shapes(model, torch.zeros(1, c, h, w), layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fc_relu, a vector, is stored full
        modes = resolve_tap_modes(shapes, tap_mode)
    with torch.no_grad():
        logits = model(torch.zeros(1, c, h, w))
    values = sum(math.prod(stored_shape(shapes[layer], modes[layer])) for layer in layers)
    return 4 * (values + logits.numel() + 1)


def _child_memory(n: int, cache_dir: str, device: str) -> dict[str, Any]:
    """In a fresh process: peak resident memory before and after extracting ``n`` samples."""
    ds = _data()
    ds.fingerprint()
    dev = resolve_device(device)
    model = _model(ds)
    layers = [name for _, name in published_taps(MODEL) or []]
    idx = _indices(ds, n)
    with torch.no_grad():  # warm up the allocator and kernels on one batch, as any extraction would
        model(to_tensor(ds.images[:BATCH]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = _extraction(model, ds, idx, layers, Path(cache_dir), dev)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"n": n, "peak_bytes": after * scale, "before_bytes": before * scale, "seconds": seconds}


def _memory_in_subprocess(n: int, device: str, threads: int, root: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mintaudit-throughput-", dir=root) as tmp:
        cmd = [
            sys.executable,
            __file__,
            "--child-memory",
            str(n),
            "--cache-dir",
            str(Path(tmp) / "cache"),
            "--device",
            device,
            "--threads",
            str(threads),
        ]
        return run_child(cmd)


def _amint_steps(ds: ImageDataset, device: torch.device, repeats: int) -> tuple[float, float]:
    """Median seconds of (plain step, aMINT step) on the same 128 images, interleaved after warm-up."""
    c, h, w = ds.image_shape
    spec = ModelSpec(MODEL, c, ds.num_classes, (h, w))
    rng = np.random.default_rng(0)
    pick = rng.choice(len(ds), size=128, replace=False)
    x = to_device(to_tensor(ds.images[pick]).to(device), device)
    y = torch.from_numpy(ds.labels[pick]).to(device)
    target = torch.cat([torch.ones(64), torch.zeros(64)]).to(device)
    torch.manual_seed(0)
    plain = build_model(spec).to(device).train()
    taps = active_taps(MODEL, "middle", plain)
    active = ActiveModel(build_model(spec), taps, example=to_tensor(ds.images[pick[:2]])).to(device).train()
    active.backbone.load_state_dict(plain.state_dict())
    if device.type == "cuda":
        plain.to(memory_format=torch.channels_last)
        active.to(memory_format=torch.channels_last)
    opt_p = torch.optim.Adam(plain.parameters(), lr=1e-4)
    opt_a = torch.optim.Adam(active.parameters(), lr=1e-4)
    ce, bce = nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss()

    def plain_step() -> None:
        opt_p.zero_grad(set_to_none=True)
        with autocast(device):
            loss = ce(plain(x), y)
        loss.backward()
        opt_p.step()

    def active_step() -> None:
        opt_a.zero_grad(set_to_none=True)
        with autocast(device):
            logits, mint = active(x)
            loss = ce(logits[:64], y[:64]) + bce(mint, target)
        loss.backward()
        opt_a.step()

    def timed(step: Any) -> float:
        t0 = time.perf_counter()
        step()
        _sync(device)
        return time.perf_counter() - t0

    for _ in range(5):
        plain_step()
        active_step()
    t_plain, t_active = [], []
    for _ in range(repeats):  # interleaved, so drifts in machine load hit both alike
        t_plain.append(timed(plain_step))
        t_active.append(timed(active_step))
    return statistics.median(t_plain), statistics.median(t_active)


def _machine(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"{cpu} ({os.cpu_count()} logical CPUs){gpu}; {torch.get_num_threads()} torch threads; "
        f"torch {torch.__version__}; Python {platform.python_version()}; {platform.system()} {platform.release()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="samples N of the extraction (memory: N and 4N)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats of extraction and bare forward")
    ap.add_argument("--step-repeats", type=int, default=30, help="repeats of the plain and aMINT steps")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--cache-root", help="folder the caches are written under (default: the system's temporary folder)")
    ap.add_argument("--child-memory", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_memory is not None:
        print(json.dumps(_child_memory(args.child_memory, args.cache_dir, args.device)))
        return

    device = resolve_device(args.device)
    ds = _data()
    ds.fingerprint()  # hashed once per data set and reused by every cache key
    model = _model(ds).to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    layers = [name for _, name in published_taps(MODEL) or []]
    idx = _indices(ds, args.n)
    _indices(ds, 4 * args.n)
    per_sample = _cache_bytes(_model(ds), ds, layers)
    per_sample_pooled = _cache_bytes(_model(ds), ds, layers, "pooled")
    print(f"machine: {_machine(device)}")
    print(
        f"data: {ds.name} {'x'.join(map(str, ds.image_shape))}, N = {args.n}; model {MODEL}, taps "
        f"{', '.join(layers)}; batch {BATCH}; cache {per_sample / 1024:.0f} KiB per sample "
        f"({per_sample * args.n / 2**20:.0f} MiB at N; pooled {per_sample_pooled / 1024:.1f} KiB) under "
        f"{args.cache_root or tempfile.gettempdir()}"
    )

    with tempfile.TemporaryDirectory(prefix="mintaudit-throughput-", dir=args.cache_root) as tmp:
        _bare_forward(model, ds, idx[: 2 * BATCH], device)  # warm-up
        _extraction(model, ds, idx[: 2 * BATCH], layers, Path(tmp) / "warm", device)
        _extraction(model, ds, idx[: 2 * BATCH], layers, Path(tmp) / "warm-pooled", device, "pooled")
        t_bare, t_extract, t_pooled = [], [], []
        for r in range(args.repeats):  # interleaved, so drifts in machine load hit all alike
            t_bare.append(_bare_forward(model, ds, idx, device))
            t_extract.append(_extraction(model, ds, idx, layers, Path(tmp) / f"run{r}", device))
            t_pooled.append(_extraction(model, ds, idx, layers, Path(tmp) / f"pooled{r}", device, "pooled"))
    bare, extract, pooled = min(t_bare), min(t_extract), min(t_pooled)

    mem = [_memory_in_subprocess(n, args.device, args.threads, args.cache_root) for n in (args.n, 4 * args.n)]
    plain_s, active_s = _amint_steps(ds, device, args.step_repeats)

    mib = 2**20
    print()
    print("| measurement | time | samples/s | ratio |")
    print("|---|---|---|---|")
    print(f"| bare forward, {args.n} samples | {bare:.2f} s | {args.n / bare:,.0f} | 1 |")
    print(
        f"| extraction of {len(layers)} taps + outputs to disk, {args.n} samples | {extract:.2f} s | "
        f"{args.n / extract:,.0f} | {extract / bare:.2f} (target <= 1.10) |"
    )
    print(
        f"| extraction, the same taps pooled (2C values each; fc_relu full) + outputs, {args.n} samples | "
        f"{pooled:.2f} s | {args.n / pooled:,.0f} | {pooled / bare:.2f} (target <= 1.2) |"
    )
    print(f"| plain step, 128 images | {1000 * plain_s:.1f} ms | {128 / plain_s:,.0f} | 1 |")
    print(
        f"| aMINT step, 64 members + 64 external | {1000 * active_s:.1f} ms | {128 / active_s:,.0f} | "
        f"{active_s / plain_s:.2f} |"
    )
    print()
    print("| extraction in a fresh process | peak resident | before extracting | growth | cache written |")
    print("|---|---|---|---|---|")
    for m in mem:
        print(
            f"| N = {m['n']} | {m['peak_bytes'] / mib:.0f} MiB | {m['before_bytes'] / mib:.0f} MiB | "
            f"{(m['peak_bytes'] - m['before_bytes']) / mib:.0f} MiB | {per_sample * m['n'] / mib:.0f} MiB |"
        )
    memory_ratio = mem[1]["peak_bytes"] / mem[0]["peak_bytes"]
    print(f"peak memory ratio 4N / N: {memory_ratio:.2f} (target <= 1.2)")
    print(f"extraction ratios: full maps {extract / bare:.2f}, pooled {pooled / bare:.2f}")
    emit_result(
        f"throughput-{device.type}",
        {
            "extract_ratio": extract / bare,
            "memory_ratio": memory_ratio,
            "amint_step_ratio": active_s / plain_s,
            "extract_per_s": args.n / extract,
            "extract_ratio_pooled": pooled / bare,
        },
        details={"n": args.n, "seconds": {"bare": bare, "extract": extract, "pooled": pooled}},
        digits={
            "extract_per_s": 1,
            "extract_ratio": 3,
            "memory_ratio": 3,
            "amint_step_ratio": 3,
            "extract_ratio_pooled": 3,
        },
    )


if __name__ == "__main__":
    main()

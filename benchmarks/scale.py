#!/usr/bin/env python
"""A real-size model on one machine: ResNet-50 at 224 px on an image folder of N and 4N JPEG files.

What it measures (issue 17), all on CPU unless ``--device cuda``:

- **bytes per sample per tap** under the default ``--tap-budget`` (``layer2`` and ``layer3``,
  the published aMINT taps of ResNet-50): the storage mode the budget picks and the bytes the
  cache holds per sample, against the full map's;
- **peak resident memory** (``ru_maxrss``) of a fresh process that opens the folder through its
  pool store (decoding it first, with the store's progress bar; so the decoding is included),
  then extracts both taps and the output signals of every image into the signal cache: at N
  and at 4N images. Target: ratio at most 1.2;
- **extraction against a bare forward** on the same batches, in the N process (interleaved, best
  of ``--repeats``): the bare forward reads the same batches from the same store and runs the
  model; the extraction adds the hooks, the on-device reduction, the checks and the cache writes.
  Target: ratio at most 1.2.

The images are synthetic but real JPEG files (smooth random colour fields with noise, 224 x 224,
quality 90, 10 class folders), written once under ``--root`` and reused. The model is the
``resnet50`` backbone (ImageNet stem at 224 px, full width), seeded and untrained: extraction
cost does not depend on the weights.

    python benchmarks/scale.py                 # N = 200 (and 800), 2 CPU cores: about 5 minutes
    python benchmarks/scale.py --n 500 --threads 8
    python benchmarks/scale.py --device cuda

Ends with: RESULT bytes_per_sample=<x> memory_ratio=<x> extract_ratio=<x> pool_rss_mib=<x>
(bytes_per_sample: the largest of the two taps'; pool_rss_mib: the 4N process's peak after opening
or building its pool store, before any model ran).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _bench import emit_result, run_child  # benchmarks/ is on sys.path when a script runs

TAPS = ["layer2", "layer3"]
SIZE = 224
CLASSES = 10


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _write_folder(root: Path, n: int, seed: int) -> None:
    """``n`` JPEG files of 224 x 224 RGB in 10 class folders (skipped when already complete)."""
    from PIL import Image

    done = root / ".complete"
    if done.is_file() and done.read_text() == str(n):
        return
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    for i in range(n):
        cls = i % CLASSES
        low = rng.integers(0, 256, size=(7, 7, 3)).astype(np.float32)
        img = np.asarray(Image.fromarray(low.astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR), np.float32)
        img = np.clip(img + rng.normal(0, 12, size=img.shape), 0, 255).astype(np.uint8)
        folder = root / f"class{cls}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"img{i:06d}.jpg", quality=90)
    done.write_text(str(n))


def _child(args: argparse.Namespace) -> None:
    """One fresh process: open (or build) the pool store, extract every image, time a bare forward too."""
    torch.set_num_threads(args.threads)
    from mintaudit._tensor import iter_batches, resolve_device, to_device
    from mintaudit.data import read_image_folder
    from mintaudit.models.backbones import resnet50
    from mintaudit.signals import extract_signals, plan_tap_modes

    t0 = time.perf_counter()
    ds = read_image_folder(args.child, store=Path(args.work) / "pool")
    pool_seconds = time.perf_counter() - t0
    pool_rss = _rss_mib()
    torch.manual_seed(args.seed)
    model = resnet50(3, CLASSES, SIZE).eval()
    dev = resolve_device(args.device, model)
    model.to(dev)
    idx = np.arange(len(ds), dtype=np.int64)
    modes = plan_tap_modes(model, ds, idx, TAPS, device=dev)
    out: dict[str, Any] = {"n": len(ds), "pool_seconds": pool_seconds, "pool_rss_mib": pool_rss, "modes": modes}

    def bare() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            for x, _, _ in iter_batches(ds, idx, args.batch):
                model(to_device(x, dev))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t

    def extract(i: int) -> tuple[float, Any]:
        root = Path(args.work) / f"cache{i}"
        t = time.perf_counter()
        cache = extract_signals(model, ds, idx, TAPS, root, batch_size=args.batch, show_progress=False, device=dev)
        seconds = time.perf_counter() - t
        return seconds, cache

    bare_s, extract_s = [], []
    cache = None
    for i in range(args.repeats if args.time else 1):
        if args.time:
            bare_s.append(bare())
        seconds, cache = extract(i)
        extract_s.append(seconds)
        if i < (args.repeats if args.time else 1) - 1:
            shutil.rmtree(cache.path)
    assert cache is not None
    out["rss_mib"] = _rss_mib()
    out["extract_s"] = min(extract_s)
    out["bare_s"] = min(bare_s) if bare_s else None
    out["bytes_per_sample"] = {layer: int(cache.activations(layer)[0].nbytes) for layer in TAPS}
    out["full_bytes_per_sample"] = {}
    x = to_device(ds.batch(idx[:1]), dev)
    from mintaudit.taps import Recorder

    with Recorder(model, TAPS) as rec, torch.no_grad():
        model(x)
        acts = rec.pop()
    out["full_bytes_per_sample"] = {k: int(v[0].numel() * 4) for k, v in acts.items()}
    out["tap_modes"] = cache.tap_modes
    print(json.dumps(out))


def _run_child(args: argparse.Namespace, root: Path, work: Path, *, time_it: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(root),
        "--work",
        str(work),
        "--threads",
        str(args.threads),
        "--batch",
        str(args.batch),
        "--repeats",
        str(args.repeats),
        "--seed",
        str(args.seed),
    ]
    if args.device:
        cmd += ["--device", args.device]
    if time_it:
        cmd.append("--time")
    return run_child(cmd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images in the small folder (the large one has 4N)")
    ap.add_argument("--root", default="runs/bench-scale", help="where the JPEG folders, pool stores and caches go")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved timing repeats in the N process (best of)")
    ap.add_argument("--device", help="cpu (default) or cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--time", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    base = Path(args.root)
    t_start = time.perf_counter()
    rows = {}
    for n in (args.n, 4 * args.n):
        folder = base / f"jpeg-{n}"
        t = time.perf_counter()
        _write_folder(folder, n, args.seed)
        print(f"{n} JPEG files in {folder} ({time.perf_counter() - t:.0f} s)", flush=True)
        work = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=base))
        try:
            rows[n] = _run_child(args, folder, work, time_it=(n == args.n))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        r = rows[n]
        print(
            f"N={n}: pool store built in {r['pool_seconds']:.1f} s, peak RSS after the pool {r['pool_rss_mib']:.0f} MiB, "
            f"after extraction {r['rss_mib']:.0f} MiB; extraction {r['extract_s']:.1f} s",
            flush=True,
        )
    small, large = rows[args.n], rows[4 * args.n]
    ratio = small["extract_s"] / small["bare_s"]
    mem = large["rss_mib"] / small["rss_mib"]
    print(
        f"\nresnet50 at {SIZE} px, 3 channels, {args.threads} torch threads, batch {args.batch}, "
        f"device {args.device or 'cpu'}; default tap budget"
    )
    print("| tap | mode | bytes per sample stored | full map | share |")
    print("|---|---|---|---|---|")
    for layer in TAPS:
        b, f = small["bytes_per_sample"][layer], small["full_bytes_per_sample"][layer]
        print(f"| {layer} | {small['modes'][layer]} | {b:,} | {f:,} | {b / f:.3f} |")
    print("\n| measurement | N | 4N | ratio |")
    print("|---|---|---|---|")
    print(f"| images | {args.n} | {4 * args.n} | 4 |")
    print(
        f"| peak RSS after opening/building the pool store (MiB) | {small['pool_rss_mib']:.0f} | "
        f"{large['pool_rss_mib']:.0f} | {large['pool_rss_mib'] / small['pool_rss_mib']:.2f} |"
    )
    print(f"| peak RSS of the whole run (MiB) | {small['rss_mib']:.0f} | {large['rss_mib']:.0f} | {mem:.2f} |")
    print(f"| bare forward, N images (s) | {small['bare_s']:.2f} | | |")
    print(
        f"| extraction of {len(TAPS)} taps + outputs, N images (s) | {small['extract_s']:.2f} | "
        f"{large['extract_s']:.2f} | {ratio:.2f} x forward |"
    )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    emit_result(
        "scale",
        {
            "bytes_per_sample": max(small["bytes_per_sample"].values()),
            "memory_ratio": mem,
            "extract_ratio": ratio,
            "pool_rss_mib": large["pool_rss_mib"],
        },
        details={"small": small, "large": large},
        digits={"memory_ratio": 3, "extract_ratio": 3, "pool_rss_mib": 0},
    )


if __name__ == "__main__":
    main()

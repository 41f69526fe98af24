"""The preprocessing probe: is the audited model read through the preprocessing it was trained on?

A model fed other inputs than its training ones (x / 255 read as ``(x/255 - 0.5) / 0.5``, BGR read as
RGB) often still beats chance, passes the sanity gate, and is audited silently weaker. So before an
audit the model's accuracy on up to 2,000 of its members is measured under the declared preprocessing
and under the usual alternatives: x / 255 (mean 0, std 1), mean/std 0.5, ImageNet's mean/std, the data
set's own per-channel mean/std, and RGB<->BGR for colour images. When one of them beats the declared one
by at least 0.05 and the paired bootstrap 95% interval of the difference excludes 0, the audit is refused,
naming the candidate and the flags that give it, unless the caller accepts the declared preprocessing
(``--accept-preprocessing`` / ``accept_preprocessing=True``), which the report then states.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from torch import nn

from mintaudit.data import ImageDataset
from mintaudit.errors import ConfigError
from mintaudit.preprocess import Preprocess
from mintaudit.training import correct_per_sample

__all__ = ["probe_preprocessing", "candidates", "MARGIN", "MAX_SAMPLES"]

#: How much better a candidate must classify the members to refuse the declared preprocessing.
MARGIN = 0.05
#: At most this many members are classified per candidate.
MAX_SAMPLES = 2000
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _flags(p: Preprocess) -> str:
    f = f"--mean {','.join(f'{v:.4g}' for v in p.mean)} --std {','.join(f'{v:.4g}' for v in p.std)}"
    return f + (" (channels in BGR order)" if p.channel_order == "bgr" else "")


def _python(d: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in d.items() if k != "grey_to_rgb")
    return f"preprocess=Preprocess({args.replace('(0.0,)', '0').replace('(1.0,)', '1')})"


def candidates(ds: ImageDataset, members: np.ndarray, declared: Preprocess) -> list[tuple[str, Preprocess]]:
    """(name, preprocessing) of the alternatives to try; each keeps the declared size, crop and grey-to-RGB."""
    c = ds.image_shape[0]
    base = replace(declared, rescale=1.0 / 255.0, channel_order="rgb")
    pixels = np.asarray(ds.images[np.sort(members)], dtype=np.float64) / 255.0  # (N, H, W, C)
    own_mean = pixels.mean(axis=(0, 1, 2))
    own_std = np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3)
    if declared.grey_to_rgb and len(own_mean) == 1 and c == 3:
        own_mean, own_std = np.repeat(own_mean, 3), np.repeat(own_std, 3)
    out = [
        ("x / 255", replace(base, mean=(0.0,), std=(1.0,))),
        ("mean/std 0.5", replace(base, mean=(0.5,), std=(0.5,))),
        ("the data set's own mean/std", replace(base, mean=tuple(own_mean.round(4)), std=tuple(own_std.round(4)))),
    ]
    if c == 3:
        out.append(("ImageNet's mean/std", replace(base, mean=_IMAGENET[0], std=_IMAGENET[1])))
        flipped = "bgr" if declared.channel_order == "rgb" else "rgb"
        out.append((f"channels in {flipped.upper()} order", replace(declared, channel_order=flipped)))
    return [(name, p) for name, p in out if not p.same_transform(declared)]


def _paired_ci(diff: np.ndarray, seed: int, n_boot: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng([seed, 22])
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def probe_preprocessing(
    model: nn.Module,
    ds: ImageDataset,
    members: np.ndarray,
    *,
    accept: bool = False,
    seed: int = 0,
    max_samples: int = MAX_SAMPLES,
    declared_by: str = "--mean/--std",
) -> dict[str, Any]:
    """Measure ``model``'s accuracy on members under ``ds.preprocess`` and the candidates; refuse a clearly worse one.

    Args:
        model: the audited classifier (its train/eval mode is restored).
        ds: the pool, read through the declared preprocessing (``ds.preprocess``).
        members: int pool indices (N,) of the model's training samples; a seeded draw of at most
            ``max_samples`` of them is classified.
        accept: go on with the declared preprocessing whatever the candidates score (recorded).
        seed: the draw of members and the bootstrap.
        declared_by: where the declared preprocessing came from, for the message.

    Returns:
        The record for the report's ``model.probe``: the declared accuracy, every candidate's accuracy,
        difference and 95% interval, the best candidate, and whether the declared one was accepted.

    Raises:
        ConfigError: a candidate beats the declared preprocessing by >= 0.05 (interval above 0), and not ``accept``.
    """
    members = np.asarray(members, dtype=np.int64)
    if len(members) > max_samples:
        members = np.sort(np.random.default_rng([seed, 21]).choice(members, max_samples, replace=False))
    declared = ds.preprocess
    base = correct_per_sample(model, ds, members).astype(np.float64)
    rows = []
    for name, p in candidates(ds, members, declared):
        hit = correct_per_sample(model, ds.with_preprocess(p), members).astype(np.float64)
        diff = hit - base
        lo, hi = _paired_ci(diff, seed)
        rows.append(
            {
                "candidate": name,
                "flags": _flags(p),
                "preprocess": p.to_dict(),
                "accuracy": float(hit.mean()),
                "difference": float(diff.mean()),
                "ci95": [lo, hi],
            }
        )
    better = [r for r in rows if r["difference"] >= MARGIN and r["ci95"][0] > 0]
    best = max(better, key=lambda r: r["difference"], default=None)
    record = {
        "n_members": int(len(members)),
        "declared": declared.to_dict(),
        "declared_accuracy": float(base.mean()),
        "candidates": rows,
        "better": best["candidate"] if best else None,
        "accepted": bool(accept and best is not None),
    }
    if best is not None and not accept:
        python = declared_by == "preprocess="
        fix = _python(best["preprocess"]) if python else best["flags"]
        override = "accept_preprocessing=True" if python else "--accept-preprocessing"
        raise ConfigError(
            f"the audited model classifies its members at {base.mean():.3f} with the declared preprocessing "
            f"({declared_by}: {_flags(declared)}) but at {best['accuracy']:.3f} with {best['candidate']} "
            f"(difference {best['difference']:+.3f}, 95% CI {best['ci95'][0]:+.3f} to {best['ci95'][1]:+.3f}): "
            f"it was likely trained with that one; give {fix}, or {override} to audit with the declared one"
        )
    return record

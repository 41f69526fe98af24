"""How pixels become the tensor the audited model was trained on: the one place this is done.

The audited model is a module, its weights **and** its preprocessing. A :class:`Preprocess`
turns a uint8 batch ``(N, H, W, C)`` into a float batch ``(N, C, H, W)``: pixels scaled to
[0, 1], grey replicated to RGB when asked, then ``(x - mean) / std`` per channel. The zoo
models use mean 0.5 / std 0.5 (``x / 127.5 - 1``), the default. It travels with the data set
view the model reads (:meth:`mintaudit.data.ImageDataset.with_preprocess`), into the signal
cache key, the report (``model.preprocess``), ``model.json`` and the aMINT export.

Example:
    >>> p = Preprocess.parse(mean="0", std="1")      # a model trained on x / 255
    >>> p.to_dict()
    {'mean': [0.0], 'std': [1.0], 'grey_to_rgb': False}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mintaudit.errors import ConfigError

__all__ = ["Preprocess", "DEFAULT_PREPROCESS", "RESAMPLE_MODES"]

#: Resampling filters a resize may use (the names ``torch.nn.functional.interpolate`` knows).
RESAMPLE_MODES = ("nearest", "bilinear", "bicubic")


def _size(value: Any, name: str, lengths: tuple[int, ...]) -> tuple[int, ...] | None:
    """None, or a tuple of ``lengths`` positive ints (a resize or crop size)."""
    if value is None:
        return None
    vals = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(vals, (tuple, list))
        or len(vals) not in lengths
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in vals)
    ):
        raise ConfigError(f"{name} takes {' or '.join(map(str, lengths))} positive whole number(s), got {value!r}")
    return tuple(int(v) for v in vals)


def _values(value: Any, name: str) -> tuple[float, ...]:
    """'0.5' / '0.485,0.456,0.406' / 0.5 / [0.5, 0.5, 0.5] -> a tuple of 1 or 3 finite floats."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        try:
            floats = [float(p) for p in parts]
        except ValueError:
            raise ConfigError(f"--{name} takes one number or one per channel (M or M,M,M), got {value!r}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        floats = [float(value)]
    elif isinstance(value, Sequence) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        floats = [float(v) for v in value]
    else:
        raise ConfigError(f"--{name} takes one number or one per channel (M or M,M,M), got {value!r}")
    if len(floats) not in (1, 3):
        raise ConfigError(f"--{name} takes one value or three (one per RGB channel), got {len(floats)}: {value!r}")
    if not all(math.isfinite(v) for v in floats):
        raise ConfigError(f"--{name} must be finite numbers, got {value!r}")
    return tuple(floats)


@dataclass(frozen=True)
class Preprocess:
    """The audited model's input transform, applied to pixels scaled to [0, 1].

    Attributes:
        mean: one value, or one per channel, subtracted after scaling to [0, 1].
        std: one value, or one per channel (> 0), divided by after the mean.
        grey_to_rgb: replicate a grey channel to three (a grey pool for an RGB model).
        resize: None (keep the size), ``(H, W)``, or ``(S,)``: the shorter side to S, the aspect kept.
        crop: None, or ``(H, W)``: a centre crop after the resize.
        resample: the resize filter, one of :data:`RESAMPLE_MODES` (antialiased when shrinking).
        channel_order: ``"rgb"`` or ``"bgr"`` (the colour channels reversed before the mean/std).
        rescale: the factor pixels are multiplied by before the mean/std (1/255 maps them to [0, 1]).

    Resize and crop run on the pixel values (0-255, as floats), then the rescale and ``(x - mean) / std``,
    the order of a Hugging Face image processor. Only the fields that differ from the defaults are written
    by :meth:`to_dict` and :meth:`key`, so records of the first four fields keep their bytes.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    grey_to_rgb: bool = False
    resize: tuple[int, ...] | None = None
    crop: tuple[int, ...] | None = None
    resample: str = "bilinear"
    channel_order: str = "rgb"
    rescale: float = 1.0 / 255.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _values(self.mean, "mean"))
        object.__setattr__(self, "std", _values(self.std, "std"))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"--std must be > 0 for every channel, got {list(self.std)}; a std of 0 divides by zero")
        if not isinstance(self.grey_to_rgb, bool):
            raise ConfigError(f"grey_to_rgb must be true or false, got {self.grey_to_rgb!r}")
        object.__setattr__(self, "resize", _size(self.resize, "resize", (1, 2)))
        object.__setattr__(self, "crop", _size(self.crop, "crop", (2,)))
        if self.resample not in RESAMPLE_MODES:
            raise ConfigError(f"resample must be one of {', '.join(RESAMPLE_MODES)}, got {self.resample!r}")
        if self.channel_order not in ("rgb", "bgr"):
            raise ConfigError(f"channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}")
        r = self.rescale
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
            raise ConfigError(f"rescale must be a finite number > 0, got {r!r}")
        object.__setattr__(self, "rescale", float(r))

    @classmethod
    def parse(cls, mean: Any = None, std: Any = None, grey_to_rgb: bool = False) -> Preprocess:
        """From command-line or YAML values; a missing mean or std keeps the default 0.5."""
        return cls(
            mean=(0.5,) if mean is None else mean, std=(0.5,) if std is None else std, grey_to_rgb=bool(grey_to_rgb)
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Preprocess:
        """Inverse of :meth:`to_dict`; None (an older file with no record) gives the default."""
        if d is None:
            return DEFAULT_PREPROCESS
        if not isinstance(d, dict):
            raise ConfigError(f"a preprocessing record must be a mapping of mean, std, grey_to_rgb; got {d!r}")
        extra = {k: d[k] for k in _EXTRA if k in d}
        for k in ("resize", "crop"):
            if isinstance(extra.get(k), list):
                extra[k] = tuple(extra[k])
        return cls(
            mean=d.get("mean", (0.5,)), std=d.get("std", (0.5,)), grey_to_rgb=bool(d.get("grey_to_rgb", False)), **extra
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std), "grey_to_rgb": self.grey_to_rgb}
        for k, default in _EXTRA.items():
            v = getattr(self, k)
            if v != default:
                d[k] = list(v) if isinstance(v, tuple) else v
        return d

    def same_transform(self, other: Preprocess) -> bool:
        """Whether ``other`` makes the same tensor (mean/std compared per channel, 1e-6 apart)."""
        a, b = self.to_dict(), other.to_dict()
        for k in ("mean", "std"):
            x, y = a.pop(k), b.pop(k)
            n = max(len(x), len(y))
            if len(x) not in (1, n) or len(y) not in (1, n):
                return False
            if any(abs(x[i % len(x)] - y[i % len(y)]) > 1e-6 for i in range(n)):
                return False
        return a == b

    def describe(self) -> str:
        """The flags that give this preprocessing, e.g. ``--mean 0 --std 1`` (plus resize/crop/order when set)."""
        parts = [f"--mean {','.join(f'{v:g}' for v in self.mean)} --std {','.join(f'{v:g}' for v in self.std)}"]
        parts += [f"{k} {v}" for k, v in self.to_dict().items() if k not in ("mean", "std", "grey_to_rgb")]
        return " ".join(parts) + (" --grey-to-rgb" if self.grey_to_rgb else "")

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_PREPROCESS

    def key(self) -> str:
        """A short stable string for cache keys."""
        base = f"mean={','.join(map(repr, self.mean))};std={','.join(map(repr, self.std))};rgb={int(self.grey_to_rgb)}"
        extra = "".join(f";{k}={v!r}" for k, v in self.to_dict().items() if k in _EXTRA)
        return base + extra

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) of the model's input for pool images of ``h`` x ``w``."""
        if self.resize is not None:
            if len(self.resize) == 2:
                h, w = self.resize
            else:
                s = self.resize[0]
                h, w = (s, max(1, int(s * w / h))) if h <= w else (max(1, int(s * h / w)), s)
        if self.crop is not None:
            h, w = self.crop
        return h, w

    def channels(self, pool_channels: int) -> int:
        """Channels the model sees for a pool of ``pool_channels``."""
        return 3 if self.grey_to_rgb and pool_channels == 1 else pool_channels

    def check(self, pool_channels: int) -> None:
        """Refuse a mean/std whose length fits neither one value nor the model's channels."""
        c = self.channels(pool_channels)
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) not in (1, c):
                raise ConfigError(
                    f"--{name} has {len(v)} values but the model sees {c} channel(s); give one value or {c}"
                    + ("" if c == 3 else " (or --grey-to-rgb for an RGB model)")
                )

    def __call__(self, images: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
        """uint8 (N, H, W, C) -> float32 (N, C', H, W): ``(x / 255 - mean) / std``, grey to RGB when asked.

        Computed as ``x / (255 std) - mean / std``, which for the default is exactly today's
        ``x / 127.5 - 1``. With a CUDA ``device`` the uint8 pixels are copied there first (a
        quarter of the bytes of floats) and transformed on the GPU.
        """
        x = torch.from_numpy(np.ascontiguousarray(images))
        if device is not None and device.type != "cpu":
            x = x.to(device, non_blocking=True)
        # one memory layout whatever the source: plain NCHW strides. A grey batch permuted from NHWC keeps a
        # channel stride of 1, which sends CPU convolutions down another kernel (results differ by ~1e-6), so
        # the same samples would score differently from a DataLoader's tensors.
        x = x.permute(0, 3, 1, 2).to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.resize is not None or self.crop is not None:
            x = self._geometry(x)
        if self.grey_to_rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1).contiguous()
        if self.channel_order == "bgr" and x.shape[1] == 3:
            x = x.flip(1).contiguous()
        c = x.shape[1]
        if self.rescale != _EXTRA["rescale"]:
            x = x.mul_(self.rescale * 255.0)  # the general case below divides by 255 again
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            self.check(c)
        if len(self.mean) == 1 and len(self.std) == 1:
            return x.div_(255.0 * self.std[0]).sub_(self.mean[0] / self.std[0])
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).expand(c).view(1, c, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).expand(c).view(1, c, 1, 1)
        return x.div_(255.0 * std).sub_(mean / std)

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (``resample``, antialiased when shrinking) and centre crop a float (N, C, H, W) batch of 0-255 values."""
        h, w = x.shape[-2:]
        if self.resize is not None:
            rh, rw = Preprocess(resize=self.resize).output_size(h, w)
            if (rh, rw) != (h, w):
                mode = self.resample
                aa = mode != "nearest" and (rh < h or rw < w)
                kw = {} if mode == "nearest" else {"align_corners": False, "antialias": aa}
                x = torch.nn.functional.interpolate(x, size=(rh, rw), mode=mode, **kw)
                if mode == "bicubic":
                    x = x.clamp_(0.0, 255.0)
                h, w = rh, rw
        if self.crop is not None:
            ch, cw = self.crop
            if ch > h or cw > w:
                raise ConfigError(f"the centre crop {ch}x{cw} is larger than the image {h}x{w}; check the crop size")
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, :, top : top + ch, left : left + cw].contiguous()
        return x


#: The fields added after the first release and their defaults (left out of records when default).
_EXTRA: dict[str, Any] = {
    "resize": None,
    "crop": None,
    "resample": "bilinear",
    "channel_order": "rgb",
    "rescale": 1.0 / 255.0,
}

#: The zoo models' preprocessing: mean 0.5 / std 0.5, i.e. ``x / 127.5 - 1``.
DEFAULT_PREPROCESS = Preprocess()

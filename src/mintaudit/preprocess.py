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

__all__ = ["Preprocess", "DEFAULT_PREPROCESS"]


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
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    grey_to_rgb: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _values(self.mean, "mean"))
        object.__setattr__(self, "std", _values(self.std, "std"))
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"--std must be > 0 for every channel, got {list(self.std)}; a std of 0 divides by zero")
        if not isinstance(self.grey_to_rgb, bool):
            raise ConfigError(f"grey_to_rgb must be true or false, got {self.grey_to_rgb!r}")

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
        return cls(mean=d.get("mean", (0.5,)), std=d.get("std", (0.5,)), grey_to_rgb=bool(d.get("grey_to_rgb", False)))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "grey_to_rgb": self.grey_to_rgb}

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_PREPROCESS

    def key(self) -> str:
        """A short stable string for cache keys."""
        return f"mean={','.join(map(repr, self.mean))};std={','.join(map(repr, self.std))};rgb={int(self.grey_to_rgb)}"

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
        if self.grey_to_rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1).contiguous()
        c = x.shape[1]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            self.check(c)
        if len(self.mean) == 1 and len(self.std) == 1:
            return x.div_(255.0 * self.std[0]).sub_(self.mean[0] / self.std[0])
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).expand(c).view(1, c, 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).expand(c).view(1, c, 1, 1)
        return x.div_(255.0 * std).sub_(mean / std)


#: The zoo models' preprocessing: mean 0.5 / std 0.5, i.e. ``x / 127.5 - 1``.
DEFAULT_PREPROCESS = Preprocess()

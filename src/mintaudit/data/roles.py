"""The three sets a Python caller hands :func:`mintaudit.audit`, read and checked before anything runs.

``members``, ``external`` and ``test`` are read with :func:`~mintaudit.data.tensors.collect_samples`,
then refused in one line when they cannot give a meaningful audit:

* **roles that overlap**: the same object passed twice, or identical inputs (rows compared by a
  hash of their bytes) in two roles; an audit of members against themselves measures leaked
  labels, not membership (the command line refuses overlapping splits the same way);
* **inputs that are not what the model takes**: without ``preprocess=`` the samples must be the
  model's already-transformed float inputs, so integer tensors (raw 0-255 pixels), values that
  look like raw pixels (>= 0 and above 20), values beyond ``|x| > 1e3`` and one role spread far
  wider than another are refused with the likely cause; with ``preprocess=`` they must be raw
  pixels (whole numbers 0-255, uint8 or float, NCHW or NHWC), scaled and normalised here;
* **too few samples**: fewer than :data:`MIN_SIDE` on a side of an AUC row (known or held-out
  members, external, test), where an AUC of 0 or 1 says nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mintaudit.data._base import ImageDataset
from mintaudit.data.tensors import TensorPool, collect_samples
from mintaudit.errors import ConfigError, DataError, SplitError
from mintaudit.preprocess import Preprocess

__all__ = ["MIN_SIDE", "ROLES", "RoleData", "read_roles", "check_role_sizes"]

#: The fewest samples on either side of an AUC row (the command line's rule too).
MIN_SIDE = 20
ROLES = ("members", "external", "test")
#: Already-transformed inputs beyond this magnitude were scaled twice or not at all.
MAX_ABS = 1e3
#: Non-negative transformed inputs above this look like raw 0-255 pixels.
RAW_LOOKING = 20.0
#: A role whose values spread this many times wider than another's was transformed otherwise.
MAX_SPREAD_RATIO = 5.0


@dataclass(frozen=True)
class RoleData:
    """The three roles, concatenated in the order members, external, test.

    Attributes:
        x: float32 (N, C, H, W) model inputs, or uint8 (N, H, W, C) raw pixels when ``preprocess`` is set.
        y: int64 (N,) labels.
        sizes: samples per role.
        preprocess: how raw pixels become the model's input, or None (already transformed).
    """

    x: np.ndarray
    y: np.ndarray
    sizes: tuple[int, int, int]
    preprocess: Preprocess | None = None

    def example(self) -> torch.Tensor:
        """The first two samples as the model takes them, float (2, C, H, W)."""
        if self.preprocess is None:
            return torch.from_numpy(self.x[:2])
        return self.preprocess(self.x[:2])

    def pool(self, name: str, num_classes: int) -> ImageDataset:
        """The pool every stage reads: a :class:`TensorPool`, or raw pixels read through the preprocessing."""
        if self.preprocess is None:
            return TensorPool(name, self.x, self.y, int(num_classes))
        return ImageDataset(name, self.x, self.y, int(num_classes), preprocess=self.preprocess)

    def ranges(self) -> list[np.ndarray]:
        """Pool indices of each role."""
        cuts = np.cumsum([0, *self.sizes])
        return [np.arange(cuts[i], cuts[i + 1]) for i in range(3)]


def read_roles(members: Any, external: Any, test: Any, *, preprocess: Preprocess | None = None) -> RoleData:
    """Read and check the three sets (see the module docstring).

    Raises:
        SplitError: two roles are the same object or share identical inputs.
        DataError: a set that cannot be read, or inputs outside what the model takes.
        ConfigError: ``preprocess`` that is not a :class:`mintaudit.Preprocess`.
    """
    given = dict(zip(ROLES, (members, external, test)))
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1 :]:
            if given[a] is given[b]:
                raise SplitError(
                    f"{b} is the same object as {a}: the roles must hold different samples (an audit whose roles "
                    "overlap measures leaked labels, not membership); give disjoint sets"
                )
    if preprocess is not None and not isinstance(preprocess, Preprocess):
        raise ConfigError(
            f"preprocess must be a mintaudit.Preprocess (e.g. Preprocess(mean=0.5, std=0.5)), "
            f"got {type(preprocess).__name__}"
        )
    raw = preprocess is not None
    parts = [collect_samples(given[r], r, raw=raw) for r in ROLES]
    if raw:  # each role's layout (NCHW or NHWC) read on its own, then compared
        parts = [(_nhwc(_raw_pixels(x, role), role), y) for (x, y), role in zip(parts, ROLES)]
    shapes = {tuple(p[0].shape[1:]) for p in parts}
    if len(shapes) != 1:
        raise DataError(
            f"members, external and test hold inputs of different shapes {sorted(shapes)}; transform them alike"
        )
    if raw:
        _check_channels(preprocess, int(parts[0][0].shape[-1]))  # type: ignore[arg-type]
        x = np.ascontiguousarray(torch.cat([p[0] for p in parts]).numpy())
    else:
        for (t, _), role in zip(parts, ROLES):
            _check_transformed(t, role)
        _check_alike([p[0] for p in parts])
        x = np.ascontiguousarray(torch.cat([p[0].float() for p in parts]).numpy())
    sizes = tuple(len(p[0]) for p in parts)
    y = torch.cat([p[1] for p in parts]).numpy()
    data = RoleData(x, y, sizes, preprocess)  # type: ignore[arg-type]
    _check_disjoint(data)
    return data


def check_role_sizes(sizes: tuple[int, int, int], known_fraction: float) -> None:
    """Refuse fewer than :data:`MIN_SIDE` samples on a side of an AUC row (the members split as the sweep does)."""
    n_members, n_external, n_test = sizes
    known = int(round(known_fraction * n_members))
    sides = {
        "known members (members x known_fraction)": known,
        "held-out members (members x (1 - known_fraction))": n_members - known,
        "external": n_external,
        "test": n_test,
    }
    for side, n in sides.items():
        if n < MIN_SIDE:
            need = int(np.ceil(MIN_SIDE / min(known_fraction, 1 - known_fraction)))
            raise DataError(
                f"{side}: {n} samples; an AUC on fewer than {MIN_SIDE} per side is 0 or 1 by chance: give at least "
                f"{MIN_SIDE} external and test samples, and at least {need} members with known_fraction={known_fraction:g}"
            )


def _check_transformed(x: torch.Tensor, role: str) -> None:
    """Already-transformed inputs: floats, finite, not raw pixels, not scaled out of any sane range."""
    if not x.is_floating_point():
        hi = int(x.max())
        raise DataError(
            f"{role}: inputs are {str(x.dtype).removeprefix('torch.')} (raw pixels 0-{hi}?), but without "
            "preprocess= audit() takes the model's already-transformed float inputs: convert them as in training "
            "(e.g. x.float() / 255, then your normalisation), or pass preprocess=mintaudit.Preprocess(mean=..., "
            "std=...) to have audit() do it"
        )
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise DataError(f"{role}: inputs hold NaN or infinite values; check the transform")
    lo, hi = float(x.min()), float(x.max())
    if max(abs(lo), abs(hi)) > MAX_ABS:
        raise DataError(
            f"{role}: inputs reach |x| = {max(abs(lo), abs(hi)):.3g}; transformed inputs lie within a few units of 0, "
            f"so this set was likely scaled twice or not transformed: transform every role as in training"
        )
    if lo >= 0 and hi > RAW_LOOKING:
        raise DataError(
            f"{role}: inputs lie in [{lo:g}, {hi:g}], which looks like raw 0-255 pixels, not the model's "
            "transformed inputs: apply the training transform (e.g. x / 255, then your normalisation), or pass "
            "preprocess=mintaudit.Preprocess(mean=..., std=...) with the raw pixels (a model trained on 0-255 values "
            "as they are: preprocess=mintaudit.Preprocess(mean=0, std=1 / 255))"
        )


def _check_alike(xs: list[torch.Tensor]) -> None:
    """Refuse a role whose values spread far wider than another's (one role transformed otherwise)."""
    spread = [float(t.float().std()) if t.numel() > 1 else 0.0 for t in xs]
    if min(spread) <= 0:
        return
    wide, narrow = int(np.argmax(spread)), int(np.argmin(spread))
    if spread[wide] / spread[narrow] > MAX_SPREAD_RATIO:
        raise DataError(
            f"{ROLES[wide]}'s inputs spread {spread[wide] / spread[narrow]:.1f}x wider than {ROLES[narrow]}'s "
            f"(std {spread[wide]:.3g} vs {spread[narrow]:.3g}): the roles look transformed differently; "
            "transform every role as in training"
        )


def _raw_pixels(x: torch.Tensor, role: str) -> torch.Tensor:
    """Raw pixels (with ``preprocess=``) as uint8: whole numbers 0-255, uint8 or integral floats."""
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise DataError(f"{role}: pixels hold NaN or infinite values")
        if float(x.max()) <= 1.0:
            raise DataError(
                f"{role}: pixels lie in [{float(x.min()):g}, {float(x.max()):g}], already scaled; with preprocess= "
                "give raw pixels 0-255 (uint8), or drop preprocess= and give the model's transformed inputs"
            )
        if not bool((x == x.round()).all()):
            raise DataError(
                f"{role}: with preprocess= the pixels must be whole numbers 0-255, got fractions; give uint8 "
                "pixels, or drop preprocess= and give the model's transformed inputs"
            )
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise DataError(f"{role}: with preprocess= the pixels must lie in 0-255, got [{lo:g}, {hi:g}]")
    return x.to(torch.uint8)


def _check_channels(preprocess: Preprocess, channels: int) -> None:
    """A mean/std of one value or one per channel the model sees (the Python words for Preprocess.check)."""
    c = preprocess.channels(channels)
    for name, v in (("mean", preprocess.mean), ("std", preprocess.std)):
        if len(v) not in (1, c):
            raise ConfigError(
                f"preprocess {name} has {len(v)} values but the model sees {c} channel(s); give one value or {c}"
                + ("" if c == 3 else " (or grey_to_rgb=True for an RGB model)")
            )


def _nhwc(x: torch.Tensor, role: str) -> torch.Tensor:
    """uint8 (N, C, H, W) or (N, H, W, C), C in {1, 3}, as a contiguous (N, H, W, C)."""
    _, a, _, c = x.shape
    if a in (1, 3):
        x = x.permute(0, 2, 3, 1)
    elif c not in (1, 3):
        raise DataError(
            f"{role}: raw pixels of shape {tuple(x.shape[1:])} have no channel axis of 1 or 3; give (N, C, H, W) or (N, H, W, C)"
        )
    return x.contiguous()


def _check_disjoint(data: RoleData) -> None:
    """Refuse identical inputs in two roles (rows compared by a BLAKE2 hash of their bytes)."""
    owner: dict[bytes, str] = {}
    for role, idx in zip(ROLES, data.ranges()):
        hashes = [_hash(data.x[i]) for i in idx]
        for other in ROLES[: ROLES.index(role)]:
            shared = [k for k, h in enumerate(hashes) if owner.get(h) == other]
            if shared:
                raise SplitError(
                    f"{other} and {role} share {len(shared)} identical input(s) (e.g. {role} sample {shared[0]}): an "
                    "audit whose roles overlap measures leaked labels, not membership; give disjoint sets"
                )
        for h in hashes:
            owner.setdefault(h, role)


def _hash(row: np.ndarray) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()

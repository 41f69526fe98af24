"""The three sets a Python caller hands :func:`mintaudit.audit`, read and checked before anything runs.

Transformed inputs are streamed, never held whole: each set becomes a source
(:func:`~mintaudit.data.source.open_source`: a DataLoader or map-style Dataset is read batch by batch, a
pair of tensors is used as it is) and is checked in one pass (:func:`~mintaudit.data.source.scan`: labels,
value range, spread and a 16-byte hash per row). Raw pixels (``preprocess=``) are read into memory as uint8
(N, H, W, C), a quarter of float32. Sets are refused in one line when they cannot give a meaningful audit:

* **roles that overlap**: the same object passed twice, or identical inputs (rows compared by a
  hash of their bytes) in two roles; an audit of members against themselves measures leaked
  labels, not membership (the command line refuses overlapping splits the same way);
* **inputs that are not what the model takes**: without ``preprocess=`` the samples must be the
  model's already-transformed float inputs, so integer tensors (raw 0-255 pixels), values that
  look like raw pixels (>= 0 and above 20), values beyond ``|x| > 1e3`` and one role spread far
  wider than another are refused with the likely cause; with ``preprocess=`` they must be raw
  pixels (whole numbers 0-255, uint8 or float, NCHW or NHWC), scaled and normalised here;
* **random transforms**: a loader whose samples differ between two reads (augmentation);
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
from mintaudit.data.source import SetStats, open_source, scan
from mintaudit.data.sourcepool import SourcePool, pool_of
from mintaudit.data.tensors import collect_samples
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
    """The three roles, in the order members, external, test.

    Attributes:
        y: int64 (N,) labels.
        sizes: samples per role.
        preprocess: how raw pixels become the model's input, or None (already transformed).
        parts: the sources of the transformed inputs (members, external, test), read batch by batch.
        x: uint8 (N, H, W, C) raw pixels when ``preprocess`` is set, else None.
    """

    y: np.ndarray
    sizes: tuple[int, int, int]
    preprocess: Preprocess | None = None
    parts: tuple[Any, ...] = ()
    x: np.ndarray | None = None

    def example(self) -> torch.Tensor:
        """The first two samples as the model takes them, float (2, C, H, W)."""
        if self.x is not None and self.preprocess is not None:
            return self.preprocess(self.x[:2])
        x, _ = self.parts[0].fetch(np.arange(min(2, self.sizes[0])))
        return x.float()

    def pool(self, name: str, num_classes: int) -> ImageDataset | SourcePool:
        """The pool every stage reads: a :class:`SourcePool` over the sources, or raw pixels through the preprocessing."""
        if self.x is None:
            return pool_of(name, self.parts, self.y, int(num_classes))
        return ImageDataset(name, self.x, self.y, int(num_classes), preprocess=self.preprocess)

    def ranges(self) -> list[np.ndarray]:
        """Pool indices of each role."""
        cuts = np.cumsum([0, *self.sizes])
        return [np.arange(cuts[i], cuts[i + 1]) for i in range(3)]


def read_roles(
    members: Any, external: Any, test: Any, *, preprocess: Preprocess | None = None, batch_size: int = 256
) -> RoleData:
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
    if preprocess is not None:
        return _read_raw(given, preprocess)
    parts = [open_source(given[r], r, batch_size=batch_size) for r in ROLES]
    stats = [scan(src, given[r], r) for src, r in zip(parts, ROLES)]
    shapes = {st.shape for st in stats}
    if len(shapes) != 1:
        raise DataError(
            f"members, external and test hold inputs of different shapes {sorted(shapes)}; transform them alike"
        )
    for st, role in zip(stats, ROLES):
        _check_transformed(st, role)
    _check_alike(stats)
    _check_disjoint([st.hashes for st in stats])
    sizes = tuple(st.n for st in stats)
    return RoleData(np.concatenate([st.labels for st in stats]), sizes, None, tuple(parts))  # type: ignore[arg-type]


def _read_raw(given: dict[str, Any], preprocess: Preprocess) -> RoleData:
    """Raw pixels: every role read into memory as uint8 (N, H, W, C), each role's layout read on its own."""
    parts = [collect_samples(given[r], r, raw=True) for r in ROLES]
    parts = [(_nhwc(_raw_pixels(x, role), role), y) for (x, y), role in zip(parts, ROLES)]
    shapes = {tuple(p[0].shape[1:]) for p in parts}
    if len(shapes) != 1:
        raise DataError(
            f"members, external and test hold inputs of different shapes {sorted(shapes)}; transform them alike"
        )
    _check_channels(preprocess, int(parts[0][0].shape[-1]))
    x = np.ascontiguousarray(torch.cat([p[0] for p in parts]).numpy())
    sizes = tuple(len(p[0]) for p in parts)
    y = torch.cat([p[1] for p in parts]).numpy()
    cuts = np.cumsum([0, *sizes])
    _check_disjoint([[_hash(x[i]) for i in range(cuts[k], cuts[k + 1])] for k in range(3)])
    return RoleData(y, sizes, preprocess, x=x)  # type: ignore[arg-type]


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


def _check_transformed(st: SetStats, role: str) -> None:
    """Already-transformed inputs: floats, finite, not raw pixels, not scaled out of any sane range."""
    if not st.dtype.is_floating_point:
        hi = int(st.hi)
        raise DataError(
            f"{role}: inputs are {str(st.dtype).removeprefix('torch.')} (raw pixels 0-{hi}?), but without "
            "preprocess= audit() takes the model's already-transformed float inputs: convert them as in training "
            "(e.g. x.float() / 255, then your normalisation), or pass preprocess=mintaudit.Preprocess(mean=..., "
            "std=...) to have audit() do it"
        )
    if not st.finite:
        raise DataError(f"{role}: inputs hold NaN or infinite values; check the transform")
    lo, hi = st.lo, st.hi
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


def _check_alike(stats: list[SetStats]) -> None:
    """Refuse a role whose values spread far wider than another's (one role transformed otherwise)."""
    spread = [st.std for st in stats]
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


def _check_disjoint(hashes: list[list[bytes]]) -> None:
    """Refuse identical inputs in two roles (rows compared by a BLAKE2 hash of their bytes)."""
    owner: dict[bytes, str] = {}
    for role, role_hashes in zip(ROLES, hashes):
        for other in ROLES[: ROLES.index(role)]:
            shared = [k for k, h in enumerate(role_hashes) if owner.get(h) == other]
            if shared:
                raise SplitError(
                    f"{other} and {role} share {len(shared)} identical input(s) (e.g. {role} sample {shared[0]}): an "
                    "audit whose roles overlap measures leaked labels, not membership; give disjoint sets"
                )
        for h in role_hashes:
            owner.setdefault(h, role)


def _hash(row: np.ndarray) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()

"""Which preprocessing an audit uses: the one the model declares, the one given by flags, or both when they agree."""

from __future__ import annotations

import json
from pathlib import Path

from mintaudit.errors import ConfigError
from mintaudit.preprocess import Preprocess
from mintaudit.targets.base import split_scheme
from mintaudit.targets.hf import hf_preprocess

__all__ = ["declared_preprocess", "resolve_preprocess"]


def declared_preprocess(locator: str | None) -> Preprocess | None:
    """The preprocessing a model's own files declare (``hf:DIR``: its preprocessor_config.json), else None.

    Read without loading the model, so the data can be prepared before it is opened.
    """
    if not isinstance(locator, str):
        return None
    scheme, path = split_scheme(locator)
    if scheme != "hf" or not (Path(path) / "config.json").is_file():
        return None  # a missing folder is reported when the model is opened
    try:
        channels = int(json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("num_channels", 3))
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return hf_preprocess(path, channels=channels)


def _effective(p: Preprocess) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on pixels scaled to [0, 1] that make the same tensor as ``p``'s rescale and mean/std."""
    k = p.rescale * 255.0
    return tuple(m / k for m in p.mean), tuple(s / k for s in p.std)


def resolve_preprocess(
    declared: Preprocess | None, given: Preprocess | None, *, source: str = "the model"
) -> Preprocess | None:
    """The preprocessing to audit with: ``declared`` (by the model's files) unless only ``given`` (flags) exists.

    Args:
        declared: what the model declares (None: it declares nothing).
        given: what --mean/--std/--grey-to-rgb (or a Python argument) say, None when not given.
        source: how to name the declared one in an error (e.g. ``hf:runs/vit/preprocessor_config.json``).

    Raises:
        ConfigError: both exist and give other values (the message names both).
    """
    if declared is None or given is None:
        return declared if given is None else given
    dm, ds = _effective(declared)
    same = Preprocess(mean=dm, std=ds).same_transform(Preprocess(mean=given.mean, std=given.std))
    if not same or (given.grey_to_rgb and not declared.grey_to_rgb):
        raise ConfigError(
            f"--mean/--std give {given.describe()} but {source} declares {Preprocess(mean=dm, std=ds).describe()}; "
            "drop --mean/--std/--grey-to-rgb (the model's own preprocessing is used)"
        )
    return declared

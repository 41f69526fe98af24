"""The aMINT tap presets of the backbones (:data:`ACTIVE_TAPS`, :func:`active_taps`) and their registrations."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from typing import Literal

from torch import nn

from mintaudit.errors import ConfigError, LayerNotFoundError
from mintaudit.models.backbones.densenet import densenet121
from mintaudit.models.backbones.mobilenet import MobileNetV1
from mintaudit.models.backbones.resnet import resnet50, resnet101
from mintaudit.models.backbones.vit import ViT
from mintaudit.models.backbones.xception import Xception
from mintaudit.models.catalog import MODEL_NAMES, SETUPS, model_entry, register_model

__all__ = ["ACTIVE_TAPS", "Setup", "active_taps"]


Setup = Literal["entry", "middle", "output"]


class _Presets(Mapping[str, dict[str, list[str]]]):
    """A live, read-only view of the registered aMINT presets: name -> setup -> layers (copies)."""

    def _names(self) -> list[str]:
        return [n for n in MODEL_NAMES if (e := model_entry(n)) is not None and e.active]

    def __getitem__(self, name: str) -> dict[str, list[str]]:
        entry = model_entry(name)
        if entry is None or not entry.active:
            raise KeyError(name)
        return {setup: list(entry.active[setup]) for setup in SETUPS}

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return repr(dict(self))


ACTIVE_TAPS: Mapping[str, dict[str, list[str]]] = _Presets()
"""Zoo model name -> setup (entry / middle / output) -> layer names to tap (read from :func:`register_model`).

Middle holds the published aMINT taps; Entry and Output are our reconstruction (see the module
docstring). The ViT entry is for its default depth of 12; :func:`active_taps` rescales it to
a built model's depth.
"""


def _vit_taps(depth: int) -> dict[str, list[str]]:
    """ViT taps after block ceil(f x depth) (1-based): entry f = 1/6, 1/3; middle 2/3; output 1 + norm."""

    def after(fraction: float) -> str:
        return f"blocks.{max(1, math.ceil(fraction * depth - 1e-9)) - 1}"

    entry = list(dict.fromkeys([after(1 / 6), after(1 / 3)]))
    return {"entry": entry, "middle": [after(2 / 3)], "output": [after(1.0), "norm"]}


def _vit_scaled(model: nn.Module) -> dict[str, list[str]]:
    """The ViT presets of a built model, from its number of blocks."""
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        raise ConfigError(
            f"the 'vit' tap preset needs a model with a non-empty 'blocks' list, got {type(model).__name__}"
        )
    return _vit_taps(len(blocks))


def active_taps(name: str, setup: Setup, model: nn.Module | None = None) -> list[str]:
    """The layer names aMINT taps for a zoo model in one setup.

    For the ViT the block indices scale with depth: the taps follow the blocks ending at
    fractions 1/6 and 1/3 of the depth (Entry), 2/3 (Middle, the published block 8 of 12) and
    the last block plus the final ``norm`` (Output). Without ``model`` the 12-block default
    is assumed; with it, ``len(model.blocks)`` is used.

    Args:
        name: a zoo model name registered with aMINT taps (a key of :data:`ACTIVE_TAPS`).
        setup: ``entry`` (early stages), ``middle`` (the published taps) or ``output`` (last
            stage and pre-logit embedding).
        model: the built model, optional; when given, the taps are checked to exist in it.

    Returns:
        A new list of qualified module names, in forward order.

    Raises:
        ConfigError: unknown name or setup (the message lists the valid ones), or a ViT
            without ``blocks``.
        LayerNotFoundError: ``model`` lacks one of the preset's layers.

    Example:
        >>> active_taps("vit", "middle")
        ['blocks.7']
        >>> active_taps("densenet121", "entry")
        ['stem', 'transition1']
    """
    entry = model_entry(name)
    if entry is None or not entry.active:
        close = difflib.get_close_matches(name, list(ACTIVE_TAPS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"no aMINT tap preset for model {name!r}; choose one of {', '.join(ACTIVE_TAPS)}.{hint}")
    if setup not in SETUPS:
        raise ConfigError(f"unknown tap setup {setup!r} for {name!r}; choose one of {', '.join(SETUPS)}")
    if entry.scale_taps is not None and model is not None:
        taps = list(entry.scale_taps(model)[setup])
    else:
        taps = list(entry.active[setup])
    if model is not None:
        names = {n for n, _ in model.named_modules() if n}
        missing = [t for t in taps if t not in names]
        if missing:
            close = difflib.get_close_matches(missing[0], sorted(names), n=5, cutoff=0.4)
            hint = f" Closest: {', '.join(close)}." if close else ""
            raise LayerNotFoundError(
                f"the {name!r} {setup} preset taps {missing[0]!r}, which {type(model).__name__} lacks; "
                f"is it a {name!r} model?{hint}"
            )
    return taps


_RESNET_TAPS = {"entry": ["stem", "layer1"], "middle": ["layer2", "layer3"], "output": ["layer4", "pool"]}
register_model(
    "mobilenet",
    MobileNetV1,
    taps={"entry": ["stem", "conv1"], "middle": ["conv2", "conv3"], "output": ["conv4", "pool"]},
)
register_model("resnet50", resnet50, taps=_RESNET_TAPS)
register_model("resnet101", resnet101, taps=_RESNET_TAPS)
register_model(
    "densenet121",
    densenet121,
    taps={"entry": ["stem", "transition1"], "middle": ["transition2", "transition3"], "output": ["dense4", "pool"]},
)
register_model(
    "xception",
    Xception,
    taps={"entry": ["entry.block1", "entry.block2"], "middle": ["middle"], "output": ["exit", "pool"]},
)
register_model(
    "vit",
    ViT,
    taps={"entry": ["blocks.1", "blocks.3"], "middle": ["blocks.7"], "output": ["blocks.11", "norm"]},
    scale_taps=_vit_scaled,
)

"""aMINT in the user's own training loop, the way Opacus wraps a model: three calls around a loop that stays yours.

1. :func:`make_auditable` turns the user's ``nn.Module`` plus chosen taps into the auditable
   model (an :class:`~mintaudit.active.ActiveModel`: the module's ``forward`` untouched, a MINT
   head on the taps);
2. :func:`paired_batches` pairs each batch of members with a batch of external samples, and
   :class:`~mintaudit.active.AmintLoss` combines the task and membership terms with the published
   normalisation;
3. :func:`export_auditable` delivers it (safetensors + JSON, with its preprocessing) without a
   zoo ``ModelSpec``: a ``package.module:factory`` that rebuilds the module, or the module itself
   (then :func:`~mintaudit.active.load_active` takes a fresh instance as ``backbone=``).

Example:
    >>> auditable = make_auditable(net, ["layer1", "layer2"], example=x[:2])          # doctest: +SKIP
    >>> loss_fn = AmintLoss()                                                         # doctest: +SKIP
    >>> opt = torch.optim.Adam(auditable.parameters(), 1e-3)                          # doctest: +SKIP
    >>> for epoch in range(2):                                                        # doctest: +SKIP
    ...     for xm, ym, xe in paired_batches(member_loader, external_loader):
    ...         logits, membership = auditable(torch.cat([xm, xe]))
    ...         loss = loss_fn(logits[: len(ym)], ym, membership, len(ym))
    ...         opt.zero_grad(); loss.backward(); opt.step()
    >>> export_auditable(auditable, "delivered/", preprocess=Preprocess(mean=0, std=1))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mintaudit.active.checks import check_example, example_failure
from mintaudit.active.export import MODULE_BACKBONE, export_active
from mintaudit.active.head import HeadConfig
from mintaudit.active.model import ActiveModel
from mintaudit.errors import ConfigError, DataError, MintauditError
from mintaudit.models.registry import ModelSpec
from mintaudit.preprocess import Preprocess

__all__ = ["make_auditable", "paired_batches", "export_auditable"]


def make_auditable(
    model: nn.Module, taps: str | int | Sequence[str | int], *, example: torch.Tensor, head: HeadConfig | None = None
) -> ActiveModel:
    """The user's classifier with a MINT head on ``taps``: ``auditable(x) -> (class logits, membership logits)``.

    Args:
        model: the classifier, float (B, C, H, W) -> logits (B, K); it is wrapped, not edited.
        taps: layer names, indices or a glob (``mintaudit layers`` lists them).
        example: an input batch as the model takes it (after the user's transform), to size the head.
        head: the head's widths and preset (default: the light head).
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"make_auditable takes an nn.Module, got {type(model).__name__}")
    check_example(example)
    try:
        return ActiveModel(model, taps, example=example, head=head)
    except MintauditError:
        raise
    except Exception as e:  # noqa: BLE001 - the model's own error on the example, in one line
        raise example_failure(example, e) from e


def _xy(item: Any, what: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(item, (tuple, list)):
        return item[0], (item[1] if len(item) > 1 else None)
    if isinstance(item, torch.Tensor):
        return item, None
    raise DataError(f"{what} must yield x or (x, y) batches, got {type(item).__name__}")


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """The loader's batches again and again (a shuffling DataLoader reshuffles each pass)."""
    while True:
        empty = True
        for item in loader:
            empty = False
            yield item
        if empty:
            raise DataError("the external loader yields no batches; give external samples")


def paired_batches(
    members: Iterable[Any], external: Iterable[Any]
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One pass over the member batches, each paired with a batch of as many external samples.

    The external loader is cycled (restarted when it runs out, so a shuffling loader reshuffles)
    and its batches are cut or joined to the member batch's size, as the published step takes
    64 members with 64 external samples.

    Yields:
        ``(x_members, y_members, x_external)``.
    """
    ext = _cycle(external)
    pending: list[torch.Tensor] = []
    have = 0
    for n, item in enumerate(members):
        xm, ym = _xy(item, "members")
        if ym is None:
            raise DataError("members must yield (x, y) batches: the task loss needs their labels")
        if len(xm) == 0 or len(ym) != len(xm):
            raise DataError(
                f"members batch {n} holds {len(xm)} inputs and {len(ym)} labels; give non-empty batches with one "
                "label per input"
            )
        while have < len(xm):
            xe, _ = _xy(next(ext), "external")
            if len(xe) == 0:
                raise DataError("the external loader yields empty batches")
            pending.append(xe)
            have += len(xe)
        joined = torch.cat(pending) if len(pending) > 1 else pending[0]
        xe_batch, rest = joined[: len(xm)], joined[len(xm) :]
        pending, have = ([rest] if len(rest) else []), len(rest)
        yield xm, ym, xe_batch


def export_auditable(
    model: ActiveModel,
    out_dir: str | Path,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    preprocess: Preprocess | None = None,
    threshold: float = 0.5,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Deliver an auditable model trained in the user's loop: ``model.safetensors`` + ``amint.json``.

    Args:
        model: from :func:`make_auditable`, trained.
        out_dir: the folder to write (replaced as a whole, atomically).
        input_shape: (C, H, W) the model takes.
        num_classes: K.
        factory: ``package.module:function`` that rebuilds the classifier (called with ``factory_kwargs``
            and those of in_channels, num_classes, image_size it accepts); None: the folder records no
            factory and :func:`~mintaudit.active.load_active` needs ``backbone=`` a fresh instance.
        preprocess: how pixels in [0, 1] become the model's input (recorded; ``mintaudit active query``
            applies it); default mean 0.5 / std 0.5.
        threshold: the membership decision threshold on the probability.
        class_names: optional, one per class.
    """
    c, h, w = (int(v) for v in input_shape)
    spec = ModelSpec(factory or MODULE_BACKBONE, c, int(num_classes), (h, w), dict(factory_kwargs or {}))
    names = list(class_names) if class_names is not None else None
    return export_active(model, spec, out_dir, threshold=threshold, class_names=names, preprocess=preprocess)

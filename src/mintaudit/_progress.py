"""Progress bars on a terminal, silence elsewhere."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

__all__ = ["progress"]


def progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool | None = None, unit: str = "it"
) -> Iterator[T] | tqdm:
    """Wrap ``iterable`` in a progress bar (batches, ETA) when stderr is a terminal.

    Args:
        enabled: force on (True) or off (False); None shows it only on a terminal.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(iterable, total=total, desc=desc, disable=not show, leave=False, unit=unit, dynamic_ncols=True)

"""How many samples a membership number needs before it means something.

An AUC, an accuracy or a TPR measured on a handful of samples reads like certainty (AUC 1.000
[1.000-1.000] on one member and one non-member) and means nothing. Two limits:

- below :data:`MIN_SIDE` (20) samples on either side of a result row, or on either side the MINT
  model is fitted on, the audit is refused (:func:`check_sides`);
- below :data:`SMALL_SIDE` (100), the row carries a warning in words (:func:`size_warning`), shown
  in ``report.json`` (the row's ``warnings``), the terminal table and the HTML report.
"""

from __future__ import annotations

from mintaudit.errors import SplitError

__all__ = ["MIN_SIDE", "SMALL_SIDE", "check_sides", "check_split", "size_warning"]

MIN_SIDE = 20
"""Fewest samples on a side of a result row (members, non-members) or of a fitted MINT model."""

SMALL_SIDE = 100
"""Below this many on a side, a row's numbers are flagged as imprecise."""


def check_sides(sides: dict[str, int], fix: str) -> None:
    """Refuse an audit with fewer than :data:`MIN_SIDE` samples in any of ``sides`` (name -> count).

    Raises:
        SplitError: one line naming the side, its count, the minimum, and ``fix``.
    """
    for name, n in sides.items():
        if int(n) < MIN_SIDE:
            raise SplitError(
                f"{int(n)} {name}: a membership measurement needs at least {MIN_SIDE} samples on each side "
                f"(AUC and intervals on fewer read like certainty and mean nothing); {fix}"
            )


def size_warning(n_members: int, n_nonmembers: int) -> str | None:
    """A sentence when a row has fewer than :data:`SMALL_SIDE` samples on a side, else None."""
    n = min(int(n_members), int(n_nonmembers))
    if n >= SMALL_SIDE:
        return None
    return (
        f"small sample: {int(n_members)} members / {int(n_nonmembers)} non-members (under {SMALL_SIDE} a side): "
        "the numbers are imprecise, read the interval"
    )


def check_split(split: object, fix: str = "give more samples: larger --members, --external or --test") -> None:
    """:func:`check_sides` on a passive split (:func:`mintaudit.passive.passive_split`): the two sides the MINT
    model is fitted on (known members, external samples) and the two a row is measured on (held-out members,
    test non-members)."""
    check_sides(
        {
            "known members (the MINT model's members)": len(split.known_members),  # type: ignore[attr-defined]
            "external samples (the MINT model's non-members)": len(split.external),  # type: ignore[attr-defined]
            "held-out members (a row's members)": len(split.heldout_members),  # type: ignore[attr-defined]
            "test samples (a row's non-members)": len(split.test),  # type: ignore[attr-defined]
        },
        fix,
    )

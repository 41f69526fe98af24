"""mintaudit: Membership Inference Test (MINT) audits for PyTorch classifiers.

The public entry points for a model trained elsewhere:

- :func:`audit` (``mintaudit.audit(model, members=..., external=..., test=...)``): passive MINT and
  the LOSS baseline on the user's own DataLoaders, Datasets or tensors;
- :class:`Preprocess`: the audited model's input transform, for the pools mintaudit reads;
- :mod:`mintaudit.active` (``make_auditable``, ``AmintLoss``, ``paired_batches``,
  ``export_auditable``): aMINT in one's own training loop.

Nothing is imported until used (``import mintaudit`` stays cheap).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["audit", "AuditResult", "Preprocess", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("audit", "AuditResult"):
        from mintaudit import api

        return getattr(api, name)
    if name == "Preprocess":
        from mintaudit.preprocess import Preprocess

        return Preprocess
    raise AttributeError(f"module 'mintaudit' has no attribute {name!r}")

"""The sanity gate before any audit: does the audited model see its inputs at all?

A model fed inputs it was not trained on (another normalisation, another label order, another
class count) classifies its own members at chance; every membership score read from it is then
noise, and an audit of it would say "no evidence" with confidence. So before an audit the
model's accuracy on the members and on the non-member test samples is measured, both go into
the report, and a members' accuracy not clearly above chance (at most ``1/K + 0.1``) refuses
the audit, unless the auditor says to go on (``allow_weak_model``), which the report then states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from mintaudit.data import ImageDataset
from mintaudit.errors import WeakModelError
from mintaudit.training import accuracy

__all__ = ["ModelCheck", "check_model_accuracy", "WEAK_MARGIN"]

#: How far above chance (1/K) the members' accuracy must be.
WEAK_MARGIN = 0.1


@dataclass(frozen=True)
class ModelCheck:
    """What the gate measured: accuracies on the members and the test non-members, and chance."""

    members_accuracy: float
    test_accuracy: float
    chance: float
    weak_model_allowed: bool = False

    @property
    def weak(self) -> bool:
        return self.members_accuracy <= self.chance + WEAK_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {
            "members_accuracy": self.members_accuracy,
            "test_accuracy": self.test_accuracy,
            "chance": self.chance,
            "weak_model_allowed": self.weak_model_allowed,
        }


def check_model_accuracy(
    model: nn.Module, dataset: ImageDataset, members: np.ndarray, test: np.ndarray, *, allow_weak_model: bool = False
) -> ModelCheck:
    """Measure ``model``'s accuracy on ``members`` and ``test`` (through ``dataset``'s preprocessing); refuse a blind model.

    Args:
        model: the audited classifier (its train/eval mode is restored).
        dataset: the pool, read through the model's preprocessing (``dataset.preprocess``).
        members, test: int pool indices (N,) of the members and the non-member test samples.
        allow_weak_model: go on with a model at chance; the returned check says so.

    Raises:
        WeakModelError: the members' accuracy is at most ``1/K + 0.1``, and ``allow_weak_model`` is False.
    """
    chance = 1.0 / dataset.num_classes
    check = ModelCheck(
        accuracy(model, dataset, members),
        accuracy(model, dataset, test),
        chance,
        weak_model_allowed=bool(allow_weak_model),
    )
    if check.weak and not allow_weak_model:
        p = dataset.preprocess
        raise WeakModelError(
            f"the audited model classifies its own members at accuracy {check.members_accuracy:.3f}, chance is "
            f"{chance:.3f} ({dataset.num_classes} classes): it cannot see its inputs, so an audit would be noise; "
            f"likely causes: the preprocessing (now mean {list(p.mean)} std {list(p.std)} on pixels in [0, 1]), the "
            "label order, or the class count; give the model's own --mean/--std (e.g. --mean 0 --std 1 for x / 255), "
            "or --allow-weak-model to audit it anyway"
        )
    return check

"""Checks of what a Python caller hands the public functions, before any work: the model object and the numbers.

The numbers reuse the command line's ranges (:data:`mintaudit._validate.RANGES`), so ``n_bootstrap=-1`` is
refused as ``--bootstrap -1`` is, but the message names the Python argument.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from torch import nn

from mintaudit._validate import RANGES
from mintaudit.errors import ConfigError, ModelError

__all__ = ["check_module", "check_arguments"]


def check_module(model: Any, function: str = "audit") -> None:
    """Refuse a model that is not an ``nn.Module``, or one whose weights are on the meta device (no values).

    Raises:
        ModelError: in one line, naming the cause and the fix.
    """
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{function}() takes the model as a torch.nn.Module, got {type(model).__name__}: a plain callable cannot "
            "be tapped, put in eval mode or fingerprinted; wrap it in an nn.Module whose forward calls it"
        )
    meta = next((n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta), None)
    if meta is not None:
        raise ModelError(
            f"the model's weights are on the meta device (e.g. {meta!r}): they hold no values; load real weights "
            "first (e.g. model.to_empty(device='cpu') then model.load_state_dict(...))"
        )


def check_arguments(function: str, values: Mapping[str, tuple[str, Any]]) -> None:
    """Refuse a numeric argument outside the range of the command-line option it mirrors.

    Args:
        function: the public function, named in the error (``"audit"``).
        values: Python argument name -> (the option's dest in :data:`RANGES`, the value given).

    Raises:
        ConfigError: ``audit(): n_bootstrap must be a whole number >= 0, got -1; e.g. n_bootstrap=1000``.
    """
    for arg, (dest, v) in values.items():
        rule = RANGES[dest]
        ok = isinstance(v, numbers.Real) and not isinstance(v, bool)
        ok = ok and (rule.number == "float" or isinstance(v, numbers.Integral)) and rule.holds(float(v))
        if not ok:
            example = rule.example.split(" ")[0]
            raise ConfigError(f"{function}(): {arg} must be {rule.describe()}, got {v!r}; e.g. {arg}={example}")

"""The one rule for reading class logits off what an audited model's ``forward`` returns.

Every place the engine calls the audited model (the sanity gate, ``check_model``, the output
signals, per-sample gradients, reference-model training, the aMINT wrapper) passes the output
through :func:`logits_of`, so a model is accepted wherever it returns:

* the logits tensor itself, float (B, K);
* a mapping with a ``"logits"`` entry (a ``transformers`` ``ModelOutput`` such as
  ``ImageClassifierOutput`` is one, and so is a plain ``dict``), or an object with a tensor
  attribute ``logits``;
* a tuple or list whose first item is the logits tensor (``(logits, features)``; aMINT's
  ``(logits, membership)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mintaudit.errors import ModelError

__all__ = ["logits_of", "LOGITS_RULE"]

#: The rule, in words, for error messages.
LOGITS_RULE = (
    "the logits tensor (B, K), a ModelOutput or dict with a 'logits' entry, or a tuple whose first item is the logits"
)
_give = f"its forward must return {LOGITS_RULE}"


def logits_of(out: Any) -> torch.Tensor:
    """The class logits in a model's output (see the module docstring for the rule).

    Raises:
        ModelError: the output holds no tensor where the rule looks for the logits.
    """
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        found = out.get("logits")
        if isinstance(found, torch.Tensor):
            return found
        keys = ", ".join(map(repr, list(out.keys())[:6]))
        raise ModelError(f"the model returned a {type(out).__name__} without a 'logits' tensor (keys: {keys}); {_give}")
    found = getattr(out, "logits", None)
    if isinstance(found, torch.Tensor):
        return found
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise ModelError(f"the model returned {_what(out)}; {_give}")


def _what(out: Any) -> str:
    if isinstance(out, (tuple, list)):
        first = type(out[0]).__name__ if out else "nothing"
        return f"a {type(out).__name__} of {len(out)} whose first item is {first}, not a tensor"
    return f"a {type(out).__name__}"

"""What a model opened from a saved graph (``onnx:FILE``, ``export:FILE.pt2``) cannot give, and the checks that say so.

A saved graph holds the computation and its weights, not the code that builds the model: there is
no fresh untrained copy, so reference models (LiRA, RMIA, Shokri...) cannot be trained like it. An
ONNX graph also runs in onnxruntime, outside autograd: no gradients (gMINT), no joint training
(aMINT). The methods that need either call :func:`require_gradients` or :func:`require_fresh_copy`
first and refuse in one line, naming why and what to use instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mintaudit.errors import ModelError
from mintaudit.targets.base import ModuleTarget

__all__ = ["FileTarget", "file_digest", "read_model_file", "require_fresh_copy", "require_gradients"]

_NO_FRESH = (
    "a fresh untrained copy of the audited model, and a saved graph (ONNX, torch.export) holds no code to build one; "
    "give the model as 'package.module:factory' (or a zoo name) with --weights, or use the attacks without "
    "reference models (loss, confidence, entropy) and passive MINT"
)


@dataclass
class FileTarget(ModuleTarget):
    """A :class:`ModuleTarget` opened from one file: fingerprinted by the file's bytes, never rebuilt."""

    digest: str = ""

    def fingerprint(self) -> str:
        return self.digest

    def fresh(self) -> nn.Module | None:
        return None


def file_digest(data: bytes) -> str:
    """SHA-256 (16 hex digits) of a model file's bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def require_gradients(model: nn.Module, method: str) -> None:
    """Refuse ``method`` (gMINT, aMINT) on a model run outside autograd (an ONNX graph), in one line.

    A module says so with a class attribute ``no_gradients`` holding the reason (e.g.
    :class:`mintaudit.targets.onnx.OnnxModule`); any other module passes.
    """
    why = getattr(type(model), "no_gradients", None)
    if why:
        raise ModelError(
            f"{method} needs gradients through the audited model, and {why}; audit it with passive MINT or the "
            "output attacks, or open the PyTorch model itself (or its torch.export file, export:FILE.pt2)"
        )


def require_fresh_copy(model: nn.Module, spec: Any, methods: Sequence[str]) -> None:
    """Refuse attacks that train reference models when the audited model cannot be rebuilt (``spec`` is None)."""
    if methods and (spec is None or getattr(type(model), "no_fresh_copy", False)):
        named = ", ".join(methods)
        raise ModelError(f"{named} train reference models, which needs {_NO_FRESH}")


def read_model_file(path: str | Path, scheme: str) -> bytes:
    """The bytes of ``SCHEME:PATH``'s file, or a one-line ModelError naming what is missing."""
    p = Path(path)
    if not str(path):
        raise ModelError(f"{scheme}: needs a file after the colon, e.g. --model {scheme}:model.{_EXT[scheme]}")
    if not p.is_file():
        raise ModelError(f"{scheme}:{path}: no such file; give the path of the .{_EXT[scheme]} file you exported")
    return p.read_bytes()


_EXT = {"onnx": "onnx", "export": "pt2"}

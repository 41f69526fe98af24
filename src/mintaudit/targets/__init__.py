"""Audited models as :class:`mintaudit.protocols.Target`: the default adapter and the locator schemes.

``open_target(locator, ...)`` opens a model from what a user types after ``--model``: a zoo name,
``package.module:factory`` (both with ``weights=``), or ``SCHEME:PATH`` for a registered scheme
(``register_scheme``). A registered scheme wins over a module of the same name: ``hf:DIR`` is
always the Hugging Face scheme once it is registered.

Registered here: ``onnx:FILE`` (:mod:`mintaudit.targets.onnx`, onnxruntime imported when a file is
opened) and ``export:FILE.pt2`` (:mod:`mintaudit.targets.export`).
"""

from mintaudit.targets.base import (
    ModuleTarget,
    SchemeOpener,
    open_target,
    register_scheme,
    scheme_names,
    split_scheme,
    unregister_scheme,
)
from mintaudit.targets.export import open_export
from mintaudit.targets.hf import open_hf
from mintaudit.targets.onnx import open_onnx
from mintaudit.targets.resolve import declared_preprocess, resolve_preprocess
from mintaudit.targets.saved import require_fresh_copy, require_gradients

register_scheme("hf", open_hf)
register_scheme("onnx", open_onnx)
register_scheme("export", open_export)


__all__ = [
    "ModuleTarget",
    "SchemeOpener",
    "open_target",
    "register_scheme",
    "require_fresh_copy",
    "require_gradients",
    "scheme_names",
    "split_scheme",
    "unregister_scheme",
    "declared_preprocess",
    "resolve_preprocess",
]

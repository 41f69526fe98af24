"""Audited models as :class:`mintaudit.protocols.Target`: the default adapter and the locator schemes.

``open_target(locator, ...)`` opens a model from what a user types after ``--model``: a zoo name,
``package.module:factory`` (both with ``weights=``), or ``SCHEME:PATH`` for a registered scheme
(``register_scheme``). A registered scheme wins over a module of the same name: ``hf:DIR`` is
always the Hugging Face scheme once it is registered.
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
from mintaudit.targets.hf import open_hf

register_scheme("hf", open_hf)

__all__ = [
    "ModuleTarget",
    "SchemeOpener",
    "open_target",
    "register_scheme",
    "scheme_names",
    "split_scheme",
    "unregister_scheme",
]

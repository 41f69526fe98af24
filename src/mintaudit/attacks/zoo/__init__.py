"""The built-in attacks, one file each; a new ``.py`` file dropped here is registered too.

The built-ins are imported first, in the order :data:`mintaudit.attacks.registry.ATTACKS`
lists them; every other module of this folder is imported after them, in name order.
"""

import importlib
import pkgutil

_BUILTIN = ("loss", "confidence", "entropy", "calibrated_loss", "shokri", "lira", "rmia", "calibrated_mint")
for _name in (*_BUILTIN, *sorted({m.name for m in pkgutil.iter_modules(__path__)} - set(_BUILTIN))):
    importlib.import_module(f"{__name__}.{_name}")

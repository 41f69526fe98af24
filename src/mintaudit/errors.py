"""One exception hierarchy for mintaudit.

Every error says which argument or file is wrong, what was expected, what was given, and how
to fix it, in one line. Each class also inherits the matching built-in exception, so callers
may catch either ``MintauditError`` or ``ValueError`` / ``FileNotFoundError`` / ...
"""

from __future__ import annotations

__all__ = [
    "MintauditError",
    "ConfigError",
    "DataError",
    "DataNotFoundError",
    "CorruptFileError",
    "SplitError",
    "ModelError",
    "WeightsError",
    "WeakModelError",
    "LayerNotFoundError",
    "SignalError",
    "CacheError",
    "NotFittedError",
    "EvaluationError",
]


class MintauditError(Exception):
    """Base class of every error mintaudit raises on purpose."""


class ConfigError(MintauditError, ValueError):
    """An option or configuration value is invalid."""


class DataError(MintauditError, ValueError):
    """A data set is malformed: wrong shapes, mixed image sizes, labels out of range..."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set or file is not where it was looked for."""


class CorruptFileError(DataError):
    """A file is truncated or is not in the format its name or header says."""


class SplitError(MintauditError, ValueError):
    """A member / external / test split is invalid (empty, too large, overlapping...)."""


class ModelError(MintauditError, ValueError):
    """An audited model cannot be built or loaded."""


class WeightsError(ModelError):
    """A weights file does not fit the architecture or is not a safe format."""


class WeakModelError(ModelError):
    """The audited model is at chance on its own members: its inputs are wrong (preprocessing, labels)."""


class LayerNotFoundError(MintauditError, LookupError):
    """A requested tap (layer) does not exist in the model."""

    def __str__(self) -> str:  # LookupError would otherwise quote a KeyError-style message
        return str(self.args[0]) if self.args else ""


class SignalError(MintauditError, ValueError):
    """Extracted signals are unusable (NaN, infinite, wrong shape)."""


class CacheError(MintauditError, ValueError):
    """An on-disk signal cache is incomplete or does not match the request."""


class NotFittedError(MintauditError, RuntimeError):
    """A detector was used before ``fit``."""


class EvaluationError(MintauditError, ValueError):
    """Scores cannot be evaluated (an empty side, mismatched lengths, non-finite scores)."""

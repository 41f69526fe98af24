"""Audited models: the zoo, its registry, and loading a user's model safely."""

from mintaudit.models.registry import (
    MODEL_NAMES,
    ModelSpec,
    build_model,
    load_model,
    load_weights,
    model_fingerprint,
    published_taps,
    save_model,
)
from mintaudit.models.zoo import ObjClsCNN, TinyCNN

__all__ = [
    "MODEL_NAMES",
    "ModelSpec",
    "ObjClsCNN",
    "TinyCNN",
    "build_model",
    "load_model",
    "load_weights",
    "model_fingerprint",
    "published_taps",
    "save_model",
]

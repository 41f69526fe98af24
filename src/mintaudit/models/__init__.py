"""Audited models: the zoo and its aMINT backbones, tap presets, the registry, safe loading."""

from mintaudit.models.backbones import (
    ACTIVE_TAPS,
    DenseNet,
    MobileNetV1,
    ResNet,
    ViT,
    Xception,
    active_taps,
    densenet121,
    resnet50,
    resnet101,
)
from mintaudit.models.catalog import ModelEntry, model_entry, register_model, unregister_model
from mintaudit.models.registry import (
    MODEL_NAMES,
    ModelSpec,
    build_model,
    check_model,
    load_model,
    load_weights,
    model_fingerprint,
    published_taps,
    save_model,
)
from mintaudit.models.zoo import ObjClsCNN, TinyCNN

__all__ = [
    "ACTIVE_TAPS",
    "MODEL_NAMES",
    "DenseNet",
    "MobileNetV1",
    "ModelEntry",
    "ModelSpec",
    "ObjClsCNN",
    "ResNet",
    "TinyCNN",
    "ViT",
    "Xception",
    "active_taps",
    "build_model",
    "check_model",
    "densenet121",
    "load_model",
    "load_weights",
    "model_entry",
    "model_fingerprint",
    "published_taps",
    "register_model",
    "resnet50",
    "resnet101",
    "save_model",
    "unregister_model",
]

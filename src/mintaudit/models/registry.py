"""Building audited models by name, loading users' models and weights safely, saving ours."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import json
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mintaudit._io import atomic_path, atomic_write_json
from mintaudit.errors import CorruptFileError, ModelError, WeightsError
from mintaudit.models.backbones import MobileNetV1, ViT, Xception, densenet121, resnet50, resnet101
from mintaudit.models.zoo import ObjClsCNN, TinyCNN

__all__ = [
    "MODEL_NAMES",
    "ModelSpec",
    "build_model",
    "published_taps",
    "load_weights",
    "save_model",
    "load_model",
    "model_fingerprint",
]

_ZOO: dict[str, Callable[..., nn.Module]] = {
    "objcls-cnn": ObjClsCNN,
    "tiny-cnn": TinyCNN,
    "mobilenet": MobileNetV1,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "densenet121": densenet121,
    "xception": Xception,
    "vit": ViT,
}
MODEL_NAMES: tuple[str, ...] = tuple(_ZOO)

# The taps of the object-classification study: L1..L6 the conv layers after BN+ReLU, L7 dense.
_PUBLISHED_TAPS: dict[str, list[tuple[str, str]]] = {
    "objcls-cnn": [
        ("L1", "block1.relu1"),
        ("L2", "block1.relu2"),
        ("L3", "block2.relu1"),
        ("L4", "block2.relu2"),
        ("L5", "block3.relu1"),
        ("L6", "block3.relu2"),
        ("L7", "fc_relu"),
    ],
    "tiny-cnn": [("L1", "relu1"), ("L2", "relu2")],
}


@dataclass(frozen=True)
class ModelSpec:
    """What is needed to rebuild an audited model: a zoo name or ``package.module:factory``."""

    name: str
    in_channels: int
    num_classes: int
    image_size: tuple[int, int]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            return cls(
                name=str(d["name"]),
                in_channels=int(d["in_channels"]),
                num_classes=int(d["num_classes"]),
                image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
                kwargs=dict(d.get("kwargs", {})),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelError(f"model description is malformed ({e}); re-save the model with mintaudit train") from e


def _import_factory(ref: str) -> Callable[..., nn.Module]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ModelError(
            f"model {ref!r} is neither a zoo name ({', '.join(MODEL_NAMES)}) nor 'package.module:factory'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelError(f"cannot import module {module_name!r} for model {ref!r}: {e}; is it on PYTHONPATH?") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(f"module {module_name!r} has no callable {attr!r}; give 'package.module:factory'")
    return factory


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the (untrained) model described by ``spec``.

    A zoo name builds ours; ``package.module:factory`` calls the user's factory with those of
    ``in_channels``, ``num_classes``, ``image_size`` it accepts, plus ``spec.kwargs``.

    Example:
        >>> m = build_model(ModelSpec("tiny-cnn", 1, 10, (8, 8)))
    """
    if spec.name in _ZOO:
        factory = _ZOO[spec.name]
    elif ":" in spec.name:
        factory = _import_factory(spec.name)
    else:
        close = difflib.get_close_matches(spec.name, MODEL_NAMES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelError(
            f"unknown model {spec.name!r}; choose one of {', '.join(MODEL_NAMES)} "
            f"or give your own as 'package.module:factory'.{hint}"
        )
    offered = {"in_channels": spec.in_channels, "num_classes": spec.num_classes, "image_size": spec.image_size}
    try:
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        args = {k: v for k, v in offered.items() if takes_any or k in params}
    except (TypeError, ValueError):
        args = {}
    try:
        model = factory(**args, **spec.kwargs)
    except (TypeError, ValueError) as e:
        raise ModelError(f"building model {spec.name!r} failed: {e}") from e
    if not isinstance(model, nn.Module):
        raise ModelError(f"factory {spec.name!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def published_taps(name: str) -> list[tuple[str, str]] | None:
    """The study's (label, layer name) taps for a zoo model, or None for other models."""
    return list(_PUBLISHED_TAPS[name]) if name in _PUBLISHED_TAPS else None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist; give the path to .safetensors or .pt")
    with path.open("rb") as f:
        head = f.read(16)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        if head[:1] == b"\x80" or head[:2] == b"PK":
            raise WeightsError(
                f"{str(path)!r} is named .safetensors but holds a pickle/torch archive; refusing to unpickle "
                "untrusted weights: re-save it with safetensors.torch.save_file"
            )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CorruptFileError(f"{str(path)!r} is not a readable safetensors file ({e}); check the file") from e
    if suffix in (".pt", ".pth", ".bin"):
        if not zipfile.is_zipfile(path):
            raise WeightsError(
                f"{str(path)!r} is not a torch.save archive (legacy or raw pickle); save it with "
                "torch.save(model.state_dict(), path) or as .safetensors"
            )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises UnpicklingError / RuntimeError subclasses
            raise WeightsError(f"{str(path)!r} could not be loaded safely (weights_only=True): {e}") from e
        if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
            obj = obj["model"]  # a mintaudit training checkpoint
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsError(f"{str(path)!r} does not hold a state dict of tensors; save model.state_dict()")
        return obj
    raise WeightsError(f"weights file {str(path)!r} has extension {suffix!r}; use .safetensors, .pt or .pth")


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights from ``.safetensors`` or a ``.pt``/``.pth`` state dict (weights_only) into ``model``.

    Raises:
        WeightsError: unsafe format, or weights that do not fit the architecture.
    """
    state = _read_state_dict(Path(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
        if mismatched:
            k = mismatched[0]
            parts.append(f"{len(mismatched)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise WeightsError(
            f"weights {str(path)!r} do not fit the architecture: {'; '.join(parts)}; "
            "check the model name, channels, classes and image size"
        )
    model.load_state_dict(state)
    return model


def model_fingerprint(model: nn.Module) -> str:
    """A SHA-256 (16 hex digits) of the model's class, parameter names, shapes and values."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def save_model(model: nn.Module, spec: ModelSpec, out_dir: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` and ``model.json`` (spec + info) into ``out_dir`` atomically."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_json(
        out / "model.json",
        {"schema": "mintaudit/model@1", "spec": spec.to_dict(), "fingerprint": model_fingerprint(model), **(info or {})},
    )
    return out


def load_model(path: str | Path) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Load a model saved by :func:`save_model` (a directory or its ``model.json``).

    Returns:
        (model in eval mode, its spec, the info stored with it).
    """
    path = Path(path)
    meta_path = path / "model.json" if path.is_dir() else path
    if not meta_path.is_file():
        raise ModelError(f"no model.json at {str(path)!r}; train one with 'mintaudit train' or give its folder")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise CorruptFileError(f"{str(meta_path)!r} is not valid JSON ({e}); re-save the model") from e
    spec = ModelSpec.from_dict(meta.get("spec", {}))
    model = build_model(spec)
    load_weights(model, meta_path.parent / "model.safetensors")
    model.eval()
    return model, spec, meta

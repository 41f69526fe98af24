"""Building audited models by name, loading users' models and weights safely, saving ours."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import json
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mintaudit._io import atomic_path, atomic_write_json
from mintaudit._logits import logits_of
from mintaudit.errors import CorruptFileError, ModelError, WeightsError
import mintaudit.models.backbones  # noqa: F401  (registers the aMINT backbones, then zoo.py the older models)
import mintaudit.models.zoo  # noqa: F401
from mintaudit.models.catalog import MODEL_NAMES, model_entry

__all__ = [
    "MODEL_NAMES",
    "ModelSpec",
    "build_model",
    "check_model",
    "published_taps",
    "load_weights",
    "save_model",
    "load_model",
    "model_fingerprint",
]


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


def _one_line(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _user_error(e: BaseException) -> str:
    """``Type: message`` of an exception raised by user code, on one line."""
    return _one_line(f"{type(e).__name__}: {e}")


def _import_factory(ref: str) -> Callable[..., nn.Module]:
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ModelError(f"model {ref!r} is neither a zoo name ({', '.join(MODEL_NAMES)}) nor 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        missing = e.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):  # the module itself
            raise ModelError(
                f"cannot import module {module_name!r} for model {ref!r}: {e}; is it on PYTHONPATH?"
            ) from e
        fix = f"install {missing!r} or fix the module's imports" if missing else "fix the module's imports"
        raise ModelError(f"importing module {module_name!r} for model {ref!r} failed: {_user_error(e)}; {fix}") from e
    except (Exception, SystemExit) as e:  # user code: a SyntaxError, or anything raised at import
        raise ModelError(
            f"importing module {module_name!r} for model {ref!r} failed: {_user_error(e)}; "
            f"fix the module (python -c 'import {module_name}' shows the traceback, or add --debug)"
        ) from e
    try:
        factory = getattr(module, attr, None)
    except Exception as e:  # a module-level __getattr__ that raises
        raise ModelError(
            f"looking up {attr!r} in module {module_name!r} failed: {_user_error(e)}; fix the module"
        ) from e
    if not callable(factory):
        raise ModelError(f"module {module_name!r} has no callable {attr!r}; give 'package.module:factory'")
    return factory


def _check_zoo_kwargs(name: str, factory: Callable[..., nn.Module], kwargs: dict[str, Any]) -> None:
    """A zoo model's numeric arguments must be numbers (``dropout=abc`` named, not a TypeError deep inside)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    for key, value in kwargs.items():
        p = params.get(key)
        if p is None or isinstance(p.default, bool) or not isinstance(p.default, (int, float)):
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or (isinstance(p.default, int) and not isinstance(p.default, float) and value != int(value)):
            kind = "a whole number" if isinstance(p.default, int) and not isinstance(p.default, float) else "a number"
            raise ModelError(
                f"model {name!r}: argument {key}={value!r} must be {kind} (default {p.default!r}); e.g. {key}={p.default!r}"
            )


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the (untrained) model described by ``spec``.

    A zoo name builds ours; ``package.module:factory`` calls the user's factory with those of
    ``in_channels``, ``num_classes``, ``image_size`` it accepts, plus ``spec.kwargs``. Whatever
    the user's code raises (at import or in the factory) becomes one :class:`ModelError`.

    Example:
        >>> m = build_model(ModelSpec("tiny-cnn", 1, 10, (8, 8)))
    """
    entry = model_entry(spec.name)
    if entry is not None:
        factory = entry.factory
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
    if entry is not None:
        _check_zoo_kwargs(spec.name, factory, spec.kwargs)
    try:
        model = factory(**args, **spec.kwargs)
    except (Exception, SystemExit) as e:  # user code (or a zoo model given sizes it cannot take)
        raise ModelError(
            f"building model {spec.name!r} failed: {_user_error(e)}; fix the factory or its arguments "
            "(--debug shows the traceback)"
        ) from e
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"factory {spec.name!r} returned {type(model).__name__}, expected a torch.nn.Module; "
            "make the factory return the model itself"
        )
    return model


def check_model(
    model: nn.Module, input_shape: tuple[int, int, int], num_classes: int, *, name: str | None = None
) -> None:
    """Check that ``model`` maps a batch of inputs to one logits tensor of ``num_classes`` columns.

    Runs one eval-mode forward, without gradients, on a zero batch of 2; every module's
    train/eval mode is restored afterwards, and nothing else on the model changes.

    Args:
        model: the audited model.
        input_shape: (C, H, W) of one input.
        num_classes: K, the width the logits must have.
        name: what to call the model in the error (default: its class name).

    Raises:
        ModelError: forward raises, or returns anything but a tensor of shape (2, K).

    Example:
        >>> check_model(build_model(ModelSpec("tiny-cnn", 1, 10, (8, 8))), (1, 8, 8), 10)
    """
    label = name or type(model).__name__
    expected = f"(B, {num_classes}) logits"
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    x = torch.zeros(2, *input_shape, device=device)
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            raw = model(x)
    except (Exception, SystemExit) as e:
        raise ModelError(
            f"model {label!r} fails on a batch of shape {tuple(x.shape)} ({_user_error(e)}); expected it to return "
            f"{expected}: check the data's channels and --image-size against the model's input layer"
        ) from e
    finally:
        for m, training in modes:
            m.training = training
    try:
        out = logits_of(raw)
    except ModelError as e:
        raise ModelError(f"model {label!r}: {e}") from None
    if out.dim() != 2 or tuple(out.shape) != (2, num_classes) or not out.is_floating_point():
        got = f"shape {tuple(out.shape)}" + ("" if out.is_floating_point() else f" of {out.dtype}")
        raise ModelError(
            f"model {label!r} returned {got} for a batch of 2, expected {expected} (B=2, K={num_classes} classes); "
            "make its last layer output one float score per class of the data set"
        )


def published_taps(name: str) -> list[tuple[str, str]] | None:
    """The study's (label, layer name) taps for a zoo model (its ``register_model(taps={"published": ...})``), or None."""
    entry = model_entry(name)
    return list(entry.published) if entry is not None and entry.published is not None else None


# safetensors' own bound on the JSON header (safetensors/src/tensor.rs: MAX_HEADER_SIZE).
_MAX_SAFETENSORS_HEADER = 100_000_000


def _safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file, or None when ``path`` does not start like one.

    The format: an 8-byte little-endian length N, then N bytes of UTF-8 JSON (an object),
    then the tensor bytes. Only the header is read here; safetensors checks the offsets.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return None
        n = int.from_bytes(raw, "little")
        if not 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER):
            return None
        text = f.read(n)
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _looks_pickled(path: Path) -> bool:
    """True for a pickle (protocol 2+) or a zip archive (torch.save) under another name."""
    with path.open("rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":  # bytes 8.. of a safetensors file are its JSON header (maybe cut short)
        return False
    pickled = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    return pickled or head[:4] == b"PK\x03\x04" or zipfile.is_zipfile(path)


# Sentences of torch's errors that advise loading anyway (weights_only=False, allowlisting globals): never relayed.
_TORCH_ADVICE = re.compile(r"weights_only|safe_globals|trust|still be loaded|two options|documentation|https?://", re.I)


def _torch_load_reason(e: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused, without torch's advice to unpickle anyway."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # torch bolds some words with terminal escapes
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"its pickle references {found.group(1)}, which is not a tensor or plain container"
    sentences = re.split(r"(?<=[.!?])\s+|\n+", text)
    kept = [s for s in sentences if s.strip() and not _TORCH_ADVICE.search(s)]
    return _one_line(" ".join(kept)) or type(e).__name__


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist; give the path to .safetensors or .pt")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        if _safetensors_header(path) is None:
            if _looks_pickled(path):
                raise WeightsError(
                    f"{str(path)!r} is named .safetensors but holds a pickle/torch archive; refusing to unpickle "
                    "untrusted weights: in a trusted environment, re-save it with safetensors.torch.save_file"
                )
            raise CorruptFileError(
                f"{str(path)!r} is not a safetensors file (no valid 8-byte length + JSON header); "
                "check the file, or re-save it with safetensors.torch.save_file"
            )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CorruptFileError(
                f"{str(path)!r} is not a readable safetensors file ({_one_line(e)}); check the file"
            ) from e
    if suffix in (".pt", ".pth", ".bin"):
        if not zipfile.is_zipfile(path):
            raise WeightsError(
                f"{str(path)!r} is not a torch.save archive (legacy or raw pickle); save it with "
                "torch.save(model.state_dict(), path) or as .safetensors"
            )
        import pickle

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise WeightsError(
                f"{str(path)!r} was refused by the safe loader: {_torch_load_reason(e)}; mintaudit never unpickles "
                "untrusted weights: convert the file to .safetensors in a trusted environment "
                "(safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')) and pass that"
            ) from e
        except Exception as e:  # torch raises RuntimeError subclasses for broken archives
            raise WeightsError(
                f"{str(path)!r} could not be read as a torch.save archive ({_torch_load_reason(e)}); "
                "check the file, or give the weights as .safetensors"
            ) from e
        if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
            obj = obj["model"]  # a mintaudit training checkpoint
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsError(f"{str(path)!r} does not hold a state dict of tensors; save model.state_dict()")
        return obj
    raise WeightsError(f"weights file {str(path)!r} has extension {suffix!r}; use .safetensors, .pt or .pth")


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights from ``.safetensors`` or a ``.pt``/``.pth`` state dict (weights_only) into ``model``.

    Raises:
        WeightsError: unsafe format, weights that do not fit the architecture, or NaN / infinite values.
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
            parts.append(
                f"{len(mismatched)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise WeightsError(
            f"weights {str(path)!r} do not fit the architecture: {'; '.join(parts)}; "
            "check the model name, channels, classes and image size"
        )
    bad = next((k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        n = int((~torch.isfinite(state[bad])).sum())
        raise WeightsError(
            f"weights {str(path)!r}: tensor {bad!r} holds {n} NaN or infinite value(s); the model cannot give "
            "meaningful outputs: give the weights of a finished, finite training run"
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
        {
            "schema": "mintaudit/model@1",
            "spec": spec.to_dict(),
            "fingerprint": model_fingerprint(model),
            **(info or {}),
        },
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
    if isinstance(meta.get("dp"), dict):  # trained with DP-SGD: the architecture Opacus' fix made (see mintaudit.dp)
        from mintaudit.dp import rebuild_dp_model

        model = rebuild_dp_model(model, meta["dp"])
    load_weights(model, meta_path.parent / "model.safetensors")
    model.eval()
    return model, spec, meta

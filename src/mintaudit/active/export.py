"""The delivered aMINT model: safetensors weights + a JSON description, loaded and queried safely."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mintaudit._io import atomic_dir, atomic_write_json
from mintaudit.active.head import HeadConfig
from mintaudit.active.model import ActiveModel
from mintaudit.data.images import load_image
from mintaudit.errors import DataError, MintauditError, ModelError
from mintaudit.preprocess import DEFAULT_PREPROCESS, Preprocess
from mintaudit.models.registry import ModelSpec, build_model, load_weights, model_fingerprint

__all__ = ["SCHEMA", "export_active", "load_active", "Prediction", "query_images"]

SCHEMA = "mintaudit/amint@1"
WEIGHTS, CONFIG = "model.safetensors", "amint.json"
_LAYOUT = "uint8 pixels -> float (B, C, H, W): (x / 255 - mean) / std per channel"


def export_active(
    model: ActiveModel,
    spec: ModelSpec,
    out_dir: str | Path,
    *,
    threshold: float = 0.5,
    class_names: list[str] | tuple[str, ...] | None = None,
    info: dict[str, Any] | None = None,
    preprocess: Preprocess | None = None,
) -> Path:
    """Write the delivered model into ``out_dir`` (replaced as a whole, atomically).

    ``model.safetensors`` holds the backbone and head weights; ``amint.json`` the backbone's
    spec, the taps and their shapes, the head, the input preprocessing (``preprocess``: the
    model's :class:`~mintaudit.preprocess.Preprocess`, default mean 0.5 / std 0.5), the class
    names and the calibrated decision threshold.
    """
    from safetensors.torch import save_file

    _check_threshold(threshold, "threshold", "pass a probability such as 0.5")
    if class_names is not None and len(class_names) != spec.num_classes:
        raise ModelError(f"{len(class_names)} class names for {spec.num_classes} classes")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "schema": SCHEMA,
        "backbone": spec.to_dict(),
        "taps": list(model.taps),
        "tap_shapes": [list(s) for s in model.tap_shapes],
        "head": model.head_config.to_dict(),
        "input": {
            "layout": _LAYOUT,
            **(preprocess or DEFAULT_PREPROCESS).to_dict(),
            "channels": spec.in_channels,
            "image_size": list(spec.image_size),
        },
        "class_names": list(class_names) if class_names is not None else [str(i) for i in range(spec.num_classes)],
        "threshold": float(threshold),
        "fingerprint": model_fingerprint(model),
        **(info or {}),
    }
    out = Path(out_dir)
    with atomic_dir(out, schema_file=CONFIG) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        atomic_write_json(tmp / CONFIG, meta)
    return out


def _check_threshold(value: Any, name: str, fix: str) -> None:
    import math
    import numbers

    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    if not ok:
        raise ModelError(f"{name} must be a number in [0, 1] (a membership probability); given {value!r}; {fix}")


def _check_meta(meta: dict[str, Any], cfg_path: Path, num_classes: int) -> None:
    """The fields :func:`query_images` reads: a threshold in [0, 1], one class name per class, the input block."""
    where = f"{str(cfg_path)!r}"
    _check_threshold(meta.get("threshold"), f"'threshold' in {where}", "export the model again")
    names = meta.get("class_names")
    if not isinstance(names, list) or len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise ModelError(
            f"'class_names' in {where} must list {num_classes} names (one per class); export the model again"
        )
    given = meta.get("input")
    missing = [k for k in ("mean", "std", "channels", "image_size") if not isinstance(given, dict) or k not in given]
    if missing:
        raise ModelError(f"'input' in {where} lacks {', '.join(missing)}; export the model again")
    try:
        Preprocess.from_dict(given)
        h, w = (int(v) for v in given["image_size"])
        int(given["channels"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"'input' in {where} is malformed ({e}); export the model again") from None


#: The backbone name recorded for a model exported from a module with no factory to rebuild it.
MODULE_BACKBONE = "<module>"


def load_active(path: str | Path, *, backbone: torch.nn.Module | None = None) -> tuple[ActiveModel, dict[str, Any]]:
    """Load a model written by :func:`export_active` (its folder), in eval mode.

    The architecture is rebuilt from ``amint.json`` (a zoo name or ``package.module:factory``),
    or is ``backbone``, a fresh instance of the user's class, for a model exported from the
    module itself; the weights must fit it exactly.

    Raises:
        ModelError: no or malformed ``amint.json``; WeightsError: weights that disagree with it.
    """
    folder = Path(path)
    cfg_path = folder / CONFIG
    if not cfg_path.is_file():
        raise ModelError(
            f"no {CONFIG} in {str(folder)!r}; give the folder 'mintaudit active train' wrote (its 'amint')"
        )
    try:
        meta = json.loads(cfg_path.read_text())
        if not isinstance(meta, dict):
            raise ModelError(
                f"{str(cfg_path)!r} holds a {type(meta).__name__}, not an amint.json; export the model again"
            )
        if meta.get("schema") != SCHEMA:
            raise ModelError(f"{str(cfg_path)!r} has schema {meta.get('schema')!r}, expected {SCHEMA!r}")
        spec = ModelSpec.from_dict(meta["backbone"])
        taps, shapes = list(meta["taps"]), [tuple(int(v) for v in s) for s in meta["tap_shapes"]]
        head = HeadConfig.from_dict(meta["head"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as e:
        if isinstance(e, MintauditError):
            raise
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ModelError(
            f"{str(cfg_path)!r} is malformed ({type(e).__name__}: {reason}); export the model again"
        ) from e
    _check_meta(meta, cfg_path, spec.num_classes)
    if len(taps) != len(shapes):
        raise ModelError(f"{str(cfg_path)!r} lists {len(taps)} taps but {len(shapes)} tap shapes")
    if not taps or not all(isinstance(t, str) and t for t in taps):
        raise ModelError(f"{str(cfg_path)!r}: taps must be a non-empty list of layer names; export the model again")
    if backbone is None and spec.name == MODULE_BACKBONE:
        raise ModelError(
            f"{str(folder)!r} was exported from a module with no factory: pass backbone=<a new instance of "
            "its class> to load_active, or export with factory='package.module:function'"
        )
    model = ActiveModel(backbone if backbone is not None else build_model(spec), taps, shapes=shapes, head=head)
    load_weights(model, folder / WEIGHTS)
    model.eval()
    return model, meta


@dataclass(frozen=True)
class Prediction:
    """One queried image: its class and its membership probability."""

    path: str
    label: int
    class_name: str
    membership: float
    member: bool


def _image_array(path: Path, meta: dict[str, Any]) -> np.ndarray:
    h, w = meta["input"]["image_size"]
    if h != w:
        raise DataError(f"querying needs a square input size; the model takes {h}x{w}")
    mode = "L" if meta["input"]["channels"] == 1 else "RGB"
    return load_image(path, h, mode)


@torch.no_grad()
def query_images(
    model: ActiveModel, meta: dict[str, Any], paths: list[str | Path], *, batch_size: int = 64
) -> list[Prediction]:
    """Class and membership probability of each image file (decoded with Pillow, resized to the model's input)."""
    if not paths:
        raise DataError("no images to query; give one or more image files")
    names, threshold = meta["class_names"], float(meta["threshold"])
    # images are decoded with the model's own channel count, so no grey-to-RGB step is left to do
    preprocess = replace(Preprocess.from_dict(meta["input"]), grey_to_rgb=False)
    model.eval()
    out: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = [Path(p) for p in paths[start : start + batch_size]]
        x = preprocess(np.stack([_image_array(p, meta) for p in chunk]))
        logits, mint = model(x)
        probs = torch.sigmoid(mint.double())
        for p, k, m in zip(chunk, logits.argmax(1).tolist(), probs.tolist()):
            out.append(Prediction(str(p), int(k), names[k], float(m), bool(m >= threshold)))
    return out

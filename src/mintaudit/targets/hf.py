"""``hf:DIR``: a Hugging Face ``transformers`` image classifier saved with ``save_pretrained``, as a Target.

The folder is read with ``AutoModelForImageClassification.from_pretrained(DIR, local_files_only=True,
trust_remote_code=False)``: safetensors weights only (a folder holding only ``pytorch_model.bin`` is refused,
that file is a pickle), a config that asks for remote code (``auto_map``) is refused, nothing is downloaded.
``from_pretrained`` also renames the legacy key names that transformers 4.x (and 5.x, for some models) write,
so both key layouts load. The preprocessing comes from the folder's ``preprocessor_config.json``, parsed
here (:func:`hf_preprocess`), with no image processor object and no torchvision.

Example:
    >>> t = open_target("hf:runs/vit", input_shape=(1, 8, 8), num_classes=10)  # doctest: +SKIP
    >>> t.module(x)  # the logits tensor, (N, K)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mintaudit.errors import ConfigError, ModelError, WeightsError
from mintaudit.models import ModelSpec
from mintaudit.preprocess import Preprocess
from mintaudit.targets.base import ModuleTarget

__all__ = ["HFLogits", "open_hf", "hf_preprocess", "fresh_model", "PIXEL_KEYS"]

_HINT = "pip install 'mintaudit[hf]'"

#: preprocessor_config.json keys that never change the pixels the model sees.
_NEUTRAL = {
    "image_processor_type",
    "feature_extractor_type",
    "processor_class",
    "_processor_class",
    "input_data_format",
    "data_format",
    "return_tensors",
    "default_to_square",
    "do_convert_rgb",
    "device",
    "disable_grouping",
    "return_offset_mapping",
}

#: The keys that change pixels and are understood.
PIXEL_KEYS = (
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "channel_order",
)

#: PIL's resampling codes (what image processors store) -> the filters Preprocess knows.
_RESAMPLE: dict[Any, str] = {0: "nearest", 2: "bilinear", 3: "bicubic"}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ModelError(f"hf:DIR needs the transformers package; install it with {_HINT}") from None
    return transformers


@contextlib.contextmanager
def _quiet(transformers: Any) -> Iterator[None]:
    """No progress bars from ``from_pretrained``; the user's setting is put back afterwards."""
    logging = transformers.utils.logging
    was = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            logging.enable_progress_bar()


class HFLogits(nn.Module):
    """A transformers classifier whose forward returns the logits tensor (``model(pixel_values=x).logits``).

    The wrapper shares the model's own submodules (its ``_modules``, ``_parameters`` and ``_buffers``
    are the same dictionaries), so ``named_modules()`` gives the model's names (``vit.encoder...``),
    a hook fires on the real layer, and nothing is written on the model itself.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._modules = model._modules
        self._parameters = model._parameters
        self._buffers = model._buffers
        object.__setattr__(self, "_hf_model", model)  # not a child: named_modules() keeps the model's names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._hf_model(pixel_values=x)
        return out.logits if hasattr(out, "logits") else out[0]

    def train(self, mode: bool = True) -> HFLogits:
        super().train(mode)
        self._hf_model.training = mode  # the children share the flag already (same modules)
        return self


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def _check_folder(path: str) -> Path:
    folder = Path(path)
    if not path or not folder.is_dir():
        raise ModelError(
            f"hf:{path} is not a folder; give the folder that save_pretrained wrote (config.json, model.safetensors)"
        )
    if not (folder / "config.json").is_file():
        raise ModelError(f"hf:{path} has no config.json; give the folder that save_pretrained wrote")
    config = _read_json(folder / "config.json", "the model config")
    if config.get("auto_map") or config.get("trust_remote_code"):
        raise ModelError(
            f"hf:{path} asks for remote code (config.json 'auto_map'); mintaudit never runs code from a model "
            "folder: save the model with a class that transformers ships"
        )
    if not any(folder.glob("*.safetensors")) and not (folder / "model.safetensors.index.json").is_file():
        pickled = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        what = f" (only {', '.join(sorted(pickled))}: a pickle, not loaded)" if pickled else ""
        raise WeightsError(
            f"hf:{path} holds no .safetensors weights{what}; save it with "
            "save_pretrained(DIR, safe_serialization=True) or convert the weights to safetensors"
        )
    return folder


def _load(folder: Path) -> nn.Module:
    transformers = _transformers()
    try:
        with _quiet(transformers):
            model = transformers.AutoModelForImageClassification.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False, use_safetensors=True
            )
    except Exception as e:  # noqa: BLE001 - whatever a user's folder makes transformers raise: one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load hf:{folder} as an image classifier: {first}") from None
    return model.eval()


def fresh_model(path: str, **_: Any) -> nn.Module:
    """A fresh, untrained copy of the classifier in ``path`` (from its config): reference models are these.

    Used as the factory ``mintaudit.targets.hf:fresh_model`` of a :class:`~mintaudit.models.ModelSpec`,
    so reference models train the same architecture as the audited one (seeded by the caller).
    """
    folder = _check_folder(path)
    transformers = _transformers()
    config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    return HFLogits(transformers.AutoModelForImageClassification.from_config(config, trust_remote_code=False))


def hf_preprocess(folder: str | Path, *, channels: int = 3) -> Preprocess | None:
    """The preprocessing declared by ``folder/preprocessor_config.json``, or None without that file.

    Read by hand: rescale, normalise (mean/std), resize (height/width or shortest_edge) with its
    resample filter, centre crop, and an optional ``channel_order``. A key that would change the
    pixels and is not understood here is refused, rather than audited with other inputs.

    Args:
        folder: the model folder.
        channels: the model's input channels (its config's ``num_channels``): a 3-channel model reading
            a grey pool gets the grey channel replicated.
    """
    path = Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        return None
    cfg = _read_json(path, "the preprocessor config")
    unknown = sorted(k for k, v in cfg.items() if k not in PIXEL_KEYS and k not in _NEUTRAL and v not in (None, False))
    if unknown:
        raise ConfigError(
            f"{str(path)!r} sets {', '.join(unknown)}, which mintaudit does not apply; it understands "
            f"{', '.join(PIXEL_KEYS)}: remove the key if it does not change the pixels, or preprocess the data yourself"
        )
    rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    mean, std = (0.0,), (1.0,)
    if cfg.get("do_normalize", True) and ("image_mean" in cfg or "image_std" in cfg):
        mean = cfg.get("image_mean", mean)
        std = cfg.get("image_std", std)
    resize = crop = None
    size = cfg.get("size")
    if cfg.get("do_resize", size is not None) and size is not None:
        resize = _hf_size(size, "size", path)
    if cfg.get("do_center_crop", False):
        crop = _hf_size(cfg.get("crop_size"), "crop_size", path)
        if len(crop) != 2:
            crop = (crop[0], crop[0])
    resample = _RESAMPLE.get(cfg.get("resample", 2))
    if resample is None:
        raise ConfigError(
            f"{str(path)!r} asks for resample {cfg['resample']!r}; mintaudit resizes with nearest (0), bilinear (2) "
            "or bicubic (3)"
        )
    try:
        return Preprocess(
            mean=mean,
            std=std,
            grey_to_rgb=channels == 3,
            resize=resize,
            crop=crop,
            resample=resample,
            channel_order=str(cfg.get("channel_order", "rgb")).lower(),
            rescale=rescale,
        )
    except ConfigError as e:
        raise ConfigError(f"{str(path)!r}: {e}") from None


def _hf_size(size: Any, key: str, path: Path) -> tuple[int, ...]:
    if isinstance(size, int) and not isinstance(size, bool):
        return (size, size)
    if isinstance(size, dict):
        if "height" in size and "width" in size and len(size) == 2:
            return (int(size["height"]), int(size["width"]))
        if set(size) == {"shortest_edge"}:
            return (int(size["shortest_edge"]),)
    raise ConfigError(
        f"{str(path)!r}: {key} {size!r} is not understood; give {{'height': H, 'width': W}} or {{'shortest_edge': S}}"
    )


def open_hf(
    path: str, *, input_shape: tuple[int, int, int], num_classes: int, kwargs: dict[str, Any] | None = None
) -> ModuleTarget:
    """Open ``hf:DIR`` (see the module's docstring): the logits module, its preprocessing and a fresh copy's spec."""
    if kwargs:
        raise ConfigError(f"--model-arg does not apply to hf:{path} (the folder's config.json says everything)")
    folder = _check_folder(path)
    config = _read_json(folder / "config.json", "the model config")
    channels = int(config.get("num_channels", input_shape[0]))
    preprocess = hf_preprocess(folder, channels=channels)
    net = HFLogits(_load(folder))
    c, h, w = input_shape
    spec = ModelSpec("mintaudit.targets.hf:fresh_model", c, num_classes, (h, w), {"path": str(folder.resolve())})
    return ModuleTarget(net, f"hf:{path}", kind="hf", spec=spec, preprocess=preprocess)

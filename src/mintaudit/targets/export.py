"""``export:FILE.pt2``: a program saved by ``torch.export.save``, loaded without unpickling anything.

``torch.export.load`` warns that it "uses pickle under the hood": in the pt2 archive (torch 2.6+), a
weight or constant whose config entry says ``use_pickle`` is read with
``torch.load(weights_only=False)``, ``custom_obj_*`` / ``opaque_obj_*`` constants with the
TorchScript or plain unpickler, the legacy ``data/weights/NAME.pt`` and the older archive layout
(``serialized_state_dict.pt``...) with pickle too, and the sample inputs with ``weights_only=True``
falling back to ``weights_only=False`` when that fails. So before torch sees the bytes,
:func:`check_archive` reads the archive's own configs and refuses any of these; the sample inputs
must load with ``torch.load(weights_only=True)`` here (then torch's first try succeeds and its
fallback never runs). What is left is JSON (the graph, the configs) and raw tensor bytes. The
checked bytes are the ones loaded (read once, handed to torch from memory).

The program is unflattened (``torch.export.unflatten``) so its submodules carry the eager model's
names (``stage1.conv1``) and the taps match the PyTorch door; gradients flow through it (gMINT
works), but there is no fresh copy (reference models are refused).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import torch

from mintaudit.errors import ConfigError, ModelError
from mintaudit.targets.saved import FileTarget, file_digest, read_model_file

__all__ = ["check_archive", "open_export"]


def _refuse(label: str, what: str) -> ModelError:
    return ModelError(
        f"{label} carries {what}, which torch.export.load would unpickle (it can run code); "
        "re-save the plain program with torch.export.save from torch >= 2.6, with no tensor subclasses "
        "or custom objects"
    )


def check_archive(data: bytes, label: str = "export:FILE") -> None:
    """Refuse a .pt2 archive holding anything ``torch.export.load`` would unpickle (see the module notes).

    Raises:
        ModelError: not a zip archive, the legacy layout, a pickled weight / constant / object, or
            sample inputs that are not weights-only.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise ModelError(
            f"{label} is not a torch.export archive (not a zip file); save it with torch.export.save"
        ) from e
    prefix = next((n[: -len("archive_format")] for n in names if n.split("/")[-1] == "archive_format"), None)
    if prefix is None or archive.read(prefix + "archive_format").decode(errors="replace").strip() != "pt2":
        if any(n.endswith(".pt") or n.endswith(".pkl") for n in names):
            raise _refuse(label, "the legacy torch.export layout (pickled state dict and constants)")
        raise ModelError(f"{label} is not a torch.export .pt2 archive; save it with torch.export.save")
    inner = {n[len(prefix) :]: n for n in names if n.startswith(prefix)}
    models = [n[len("models/") : -len(".json")] for n in inner if n.startswith("models/") and n.endswith(".json")]
    if not models:
        raise ModelError(f"{label} holds no exported program (models/*.json); save one with torch.export.save")
    for model in models:
        for kind in ("weights", "constants"):
            if f"data/{kind}/{model}.pt" in inner:
                raise _refuse(label, f"legacy pickled {kind} (data/{kind}/{model}.pt)")
            config_name = f"data/{kind}/{model}_{kind}_config.json"
            if config_name not in inner:
                raise ModelError(f"{label} lacks {config_name}; save it with torch.export.save")
            try:
                config = json.loads(archive.read(inner[config_name]))["config"]
                entries = list(config.items())
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ModelError(f"{label}: {config_name} is not a torch.export payload config") from e
            for fqn, meta in entries:
                if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
                    raise _refuse(label, f"a pickled {kind[:-1]} {fqn!r}")
                if kind == "constants" and not str(meta.get("path_name", "")).startswith("tensor_"):
                    raise _refuse(label, f"a custom object {fqn!r}")
        sample = inner.get(f"data/sample_inputs/{model}.pt")
        if sample is not None and archive.getinfo(sample).file_size:
            try:
                torch.load(io.BytesIO(archive.read(sample)), weights_only=True)
            except Exception as e:  # noqa: BLE001 - any failure here means torch would retry with pickle
                raise _refuse(label, "sample inputs that are not weights-only") from e


def open_export(
    path: str, *, input_shape: tuple[int, int, int], num_classes: int, kwargs: dict[str, Any]
) -> FileTarget:
    """``--model export:FILE.pt2``: the checked program, unflattened so layer names match the eager model."""
    label = f"export:{path}"
    if kwargs:
        raise ConfigError(f"{label}: a saved program takes no --model-arg (given {', '.join(kwargs)})")
    data = read_model_file(path, "export")
    check_archive(data, label)
    try:
        program = torch.export.load(io.BytesIO(data))
        module = torch.export.unflatten(program)
    except Exception as e:  # noqa: BLE001 - torch raises many types on a file from another version
        raise ModelError(
            f"{label}: torch {torch.__version__} cannot load this program ({str(e).splitlines()[0] if str(e) else e!r}); "
            "export and save it again with this torch"
        ) from e
    user_inputs = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    if len(user_inputs) != 1:
        raise ModelError(f"{label} takes {len(user_inputs)} inputs; expected one image batch (B, C, H, W)")
    value = placeholders[user_inputs[0].arg.name].meta.get("val")
    shape = tuple(value.shape) if value is not None else ()
    if len(shape) != 4:
        raise ModelError(f"{label} takes inputs of rank {len(shape)}; expected an image batch (B, C, H, W)")
    if isinstance(shape[0], int):
        raise ModelError(
            f"{label} was exported with a fixed batch size {shape[0]}; export it with a dynamic batch: "
            "torch.export.export(model, (x,), dynamic_shapes={'x': {0: torch.export.Dim('batch')}})"
        )
    if any(isinstance(d, int) and d != w for d, w in zip(shape[1:], input_shape, strict=True)):
        raise ModelError(
            f"{label} takes inputs of shape {tuple(shape[1:])}, the data gives {tuple(input_shape)}; "
            "check the data's channels and --image-size"
        )
    return FileTarget(module, label, kind="export", supports_gradients=True, digest=file_digest(data))

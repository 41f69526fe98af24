"""``onnx:FILE``: an ONNX classifier run by onnxruntime, as a module the engine can hook.

:class:`OnnxModule` is an ``nn.Module`` whose forward runs an onnxruntime session and returns the
logits tensor. Its taps are intermediate tensors of the graph, surfaced as child modules named by
the module path the exporter recorded (``torch.onnx.export(..., dynamo=True)`` writes it in each
node's ``pkg.torch.onnx.name_scopes``; the TorchScript exporter in node names such as
``/stage1/conv1/Conv``), so ``mintaudit layers`` lists the same names as the PyTorch model and
the hook-based :class:`~mintaudit.taps.Recorder` reads them unchanged: when a tap is hooked, the
forward runs a copy of the graph with that tensor added as a graph output (one cached session per
set of hooked taps; the plain forward keeps the graph as exported, so onnxruntime fuses as usual)
and calls the tap's module on it. A graph without scope names gets one tap per node output.

A module's tap is the last tensor its nodes hand to the rest of the graph. Exporters fold some
modules away (BatchNorm into the preceding convolution): the folded node keeps the BatchNorm's
scope under ``dynamo=True``, the convolution's under the TorchScript exporter (whose ``conv`` tap
then reads the normalised output), and the convolution has no tap of its own.

No gradients (onnxruntime is outside autograd) and no fresh copy (no code to build one): gMINT,
aMINT and reference-model attacks are refused (:mod:`mintaudit.targets.saved`).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mintaudit.errors import ConfigError, ModelError
from mintaudit.targets.saved import FileTarget, file_digest, read_model_file

__all__ = ["OnnxModule", "OnnxTap", "open_onnx", "onnx_taps"]

_HINT = "pip install 'mintaudit[onnx]'"


def _require(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ModelError(f"onnx: models need the {name} package; install it with {_HINT}") from e


class OnnxTap(nn.Module):
    """One intermediate tensor of the graph: called with it by :class:`OnnxModule` when hooked."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Scope(nn.Module):
    """A module path whose own output the graph does not keep (only its children's): not a tap."""


def _node_scopes(node: Any) -> list[str]:
    """Qualified module paths enclosing ``node``, outermost first ([] when the exporter recorded none)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":  # dynamo=True: ['', 'stage1', 'stage1.bn1', 'op']
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            return [s for s in scopes[1:-1] if isinstance(s, str) and s]
    if node.name.startswith("/"):  # TorchScript exporter: '/stem/stem.0/Conv', '/stage1/conv1/Conv'
        out: list[str] = []
        for part in node.name.split("/")[1:-1]:
            if not part:
                continue
            qualified = not out or part.startswith(out[-1] + ".")  # 'stem.0' is already qualified under 'stem'
            out.append(part if qualified else f"{out[-1]}.{part}")
        return out
    return []


def onnx_taps(graph: Any) -> dict[str, str]:
    """Module path -> the graph tensor that is its output, in graph order.

    Args:
        graph: an ``onnx.GraphProto``.

    Returns:
        ``{"conv1": "conv2d", "relu1": "relu", ...}``; when no node carries a scope, one tap per node
        output, named after the tensor (``.`` and ``/`` replaced by ``_``).
    """
    nodes = list(graph.node)
    scopes = [_node_scopes(n) for n in nodes]
    graph_outputs = {o.name for o in graph.output}
    if not any(scopes):
        taps: dict[str, str] = {}
        for n in nodes:
            for t in n.output:
                if t and t not in graph_outputs:
                    name = t.strip("/").replace(".", "_").replace("/", "_") or t
                    taps.setdefault(name, t)
        return taps
    members: dict[str, set[int]] = {}
    for i, sc in enumerate(scopes):
        for s in sc:
            members.setdefault(s, set()).add(i)
    consumers: dict[str, set[int]] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            consumers.setdefault(t, set()).add(i)
    found: dict[str, tuple[int, str]] = {}
    for path, own in members.items():
        last: tuple[int, str] | None = None
        for i in sorted(own):
            for t in nodes[i].output:
                if t and (t in graph_outputs or consumers.get(t, set()) - own):
                    last = (i, t)
        if last is not None:
            found[path] = last
    return {p: t for p, (_, t) in sorted(found.items(), key=lambda kv: (kv[1][0], kv[0]))}


class OnnxModule(nn.Module):
    """An ONNX classifier as an ``nn.Module``: float (B, C, H, W) -> float (B, K) logits, via onnxruntime.

    Args:
        model: the ``onnx.ModelProto`` (one input, the logits as its first output).
        label: its locator, for messages.
        threads: onnxruntime's intra-op threads (default: ``torch.get_num_threads()`` when first run).
    """

    no_gradients = "an ONNX graph runs in onnxruntime, outside autograd"
    no_fresh_copy = True

    def __init__(self, model: Any, label: str = "onnx", threads: int | None = None) -> None:
        super().__init__()
        self.label = label
        self.threads = threads
        self._proto = model
        self._input = model.graph.input[0].name
        self._output = model.graph.output[0].name
        self._types = {v.name: v for v in (*model.graph.value_info, *model.graph.output)}
        self._tensor = onnx_taps(model.graph)
        self._tap: dict[str, nn.Module] = {}
        for path in sorted(self._tensor, key=lambda p: p.count(".")):
            self._tap[path] = self._attach(path, OnnxTap())
        self._sessions: dict[tuple[str, ...], Any] = {}

    def _attach(self, path: str, module: nn.Module) -> nn.Module:
        parent: nn.Module = self
        *parents, last = path.split(".")
        for part in parents:  # parents come first (sorted by depth); a parent without a tap is a plain scope
            child = parent._modules.get(part)
            if child is None:
                child = _Scope()
                parent.add_module(part, child)
            parent = child
        parent.add_module(last, module)
        return module

    def _session(self, taps: tuple[str, ...]) -> Any:
        session = self._sessions.get(taps)
        if session is None:
            onnx, ort = _require("onnx"), _require("onnxruntime")
            proto = self._proto
            if taps:
                proto = onnx.ModelProto()
                proto.CopyFrom(self._proto)
                present = {o.name for o in proto.graph.output}
                for path in taps:
                    name = self._tensor[path]
                    if name in present:
                        continue
                    info = self._types.get(name)
                    proto.graph.output.append(
                        info
                        if info is not None
                        else onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                    )
                    present.add(name)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                session = ort.InferenceSession(
                    proto.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
                raise ModelError(f"{self.label}: onnxruntime cannot run this graph ({str(e).splitlines()[0]})") from e
            self._sessions[taps] = session
        return session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A tap runs only when something hooks it (the Recorder): onnxruntime then returns that tensor too.
        hooked = tuple(p for p, m in self._tap.items() if m._forward_hooks)
        session = self._session(hooked)
        names = [self._output, *(self._tensor[p] for p in hooked)]
        feed = {self._input: x.detach().to("cpu", torch.float32).contiguous().numpy()}
        try:
            outs = session.run(names, feed)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(
                f"{self.label} fails on a batch of shape {tuple(x.shape)} ({str(e).splitlines()[0]})"
            ) from e
        for path, value in zip(hooked, outs[1:], strict=True):
            self._tap[path](torch.from_numpy(value))
        return torch.from_numpy(outs[0]).to(x.device)


def _dims(value_info: Any) -> list[int | str | None]:
    shape = value_info.type.tensor_type.shape
    out: list[int | str | None] = []
    for d in shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return out


def open_onnx(path: str, *, input_shape: tuple[int, int, int], num_classes: int, kwargs: dict[str, Any]) -> FileTarget:
    """``--model onnx:FILE``: the graph in FILE, checked for one image input with a dynamic batch.

    The file is parsed by ``onnx`` (protocol buffers: no code runs); weights in external data files are
    read from FILE's folder.
    """
    label = f"onnx:{path}"
    if kwargs:
        raise ConfigError(f"{label}: an ONNX graph takes no --model-arg (given {', '.join(kwargs)})")
    data = read_model_file(path, "onnx")
    onnx = _require("onnx")
    _require("onnxruntime")
    try:
        model = onnx.load_model_from_string(data)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            onnx.load_external_data_for_model(model, str(Path(path).resolve().parent))
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001 - protobuf and onnx raise many types
        raise ModelError(f"{label} is not an ONNX model onnx can read ({str(e).splitlines()[0]})") from e
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or not model.graph.output:
        raise ModelError(f"{label} has {len(inputs)} inputs; expected one image batch (B, C, H, W) -> logits (B, K)")
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise ModelError(f"{label} takes inputs of rank {len(dims)}; expected an image batch (B, C, H, W)")
    if isinstance(dims[0], int) and dims[0] > 0:
        raise ModelError(
            f"{label} has a fixed batch size {dims[0]}; export it with a dynamic batch: "
            "torch.onnx.export(..., dynamic_shapes={'x': {0: torch.export.Dim('batch')}}) "
            "(or dynamic_axes={'x': {0: 'batch'}} with dynamo=False)"
        )
    fixed = [(d, w) for d, w in zip(dims[1:], input_shape, strict=True) if isinstance(d, int) and d > 0 and d != w]
    if fixed:
        raise ModelError(
            f"{label} takes inputs of shape {tuple(dims[1:])}, the data gives {tuple(input_shape)}; "
            "check the data's channels and --image-size"
        )
    module = OnnxModule(model, label)
    module.eval()
    return FileTarget(module, label, kind="onnx", supports_gradients=False, digest=file_digest(data))

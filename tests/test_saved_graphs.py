"""The onnx:FILE and export:FILE.pt2 doors: same logits, same taps, same LOSS AUC as the eager module; refusals.

One tiny CNN is trained a few steps on digits (module fixture), exported once to ONNX (dynamic
batch) and once to a .pt2 archive; every test opens those files through ``open_target``.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mintaudit
from mintaudit.active import make_auditable
from mintaudit.attacks.run import attack_scores
from mintaudit.data import load_dataset
from mintaudit.errors import ConfigError, ModelError
from mintaudit.models import ModelSpec, build_model
from mintaudit.preprocess import DEFAULT_PREPROCESS
from mintaudit.signals.gradients import gradient_layers, per_sample_gradients
from mintaudit.targets import open_target
from mintaudit.targets.onnx import OnnxModule, onnx_taps
from mintaudit.taps import Recorder, list_layers

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SHAPE = (1, 8, 8)
TOL = {"atol": 1e-4, "rtol": 1e-4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    ds = load_dataset("digits")
    x = DEFAULT_PREPROCESS(ds.images)
    y = torch.from_numpy(ds.labels.astype(np.int64))
    order = np.random.default_rng(0).permutation(len(x))
    members, external, test = order[:300], order[300:600], order[600:900]
    model = build_model(ModelSpec("tiny-cnn", 1, 10, (8, 8)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        for i in range(0, len(members), 100):
            b = torch.from_numpy(members[i : i + 100])
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    root = tmp_path_factory.mktemp("saved")
    example = x[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(root / "m.onnx"),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
        program = torch.export.export(model, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
        torch.export.save(program, str(root / "m.pt2"))
    sets = {name: (x[idx], y[idx]) for name, idx in (("members", members), ("external", external), ("test", test))}
    return model, sets, root


def _open(door, root):
    return open_target(f"{door}:{root / ('m.onnx' if door == 'onnx' else 'm.pt2')}", input_shape=SHAPE, num_classes=10)


@pytest.mark.parametrize("door", ["onnx", "export"])
def test_logits_and_taps_equal_eager(trained, door):
    model, sets, root = trained
    target = _open(door, root)
    assert target.kind == door and target.fresh() is None and target.supports_gradients == (door == "export")
    eager_names = [info.name for info in list_layers(model)]
    assert [info.name for info in list_layers(target.module)] == eager_names
    x = sets["test"][0][:37]  # a batch size the export never saw
    with Recorder(model, eager_names) as rec:
        want = model(x).detach()
        want_taps = rec.pop()
    with Recorder(target.module, eager_names) as rec:
        got = target.module(x)
        got_taps = rec.pop()
    torch.testing.assert_close(got.detach(), want, **TOL)
    assert sorted(got_taps) == sorted(want_taps)
    for name in eager_names:
        torch.testing.assert_close(got_taps[name], want_taps[name], **TOL)
    torch.testing.assert_close(target.module(x[:1]).detach(), want[:1], **TOL)  # batch of one
    assert target.fingerprint() == _open(door, root).fingerprint()


def test_loss_auc_equal_through_every_door(trained):
    model, sets, root = trained
    aucs = {}
    for door, module in (
        ("eager", model),
        ("onnx", _open("onnx", root).module),
        ("export", _open("export", root).module),
    ):
        result = mintaudit.audit(module, **sets, fusion="outputs", n_bootstrap=20, detector=None, seed=0)
        aucs[door] = next(r.metrics["auc"] for r in result.rows if r.method == "loss")
    assert aucs["eager"] > 0.55  # the model remembers its members: the comparison means something
    assert abs(aucs["onnx"] - aucs["eager"]) <= 0.002
    assert abs(aucs["export"] - aucs["eager"]) <= 0.002


def test_export_gives_the_eager_gradients(trained):
    model, sets, root = trained
    module = _open("export", root).module
    x, y = sets["members"][0][:4], sets["members"][1][:4]
    got, _ = per_sample_gradients(module, x, y, ["fc"])
    want, _ = per_sample_gradients(model, x, y, ["fc"])
    torch.testing.assert_close(got["fc"], want["fc"], **TOL)


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def test_onnx_refuses_gradients_amint_and_references(trained):
    _, sets, root = trained
    module = _open("onnx", root).module
    with pytest.raises(ModelError) as e:
        gradient_layers(module, "entry")
    assert "gMINT needs gradients" in _one_line(e) and "onnxruntime" in _one_line(e)
    with pytest.raises(ModelError) as e:
        make_auditable(module, "relu2", example=sets["members"][0][:2])
    assert "aMINT needs gradients" in _one_line(e)
    with pytest.raises(ModelError) as e:
        attack_scores(module, None, None, None, ["lira", "loss"], root / "never")
    assert _one_line(e).startswith("lira train reference models") and "fresh untrained copy" in str(e.value)
    assert not (root / "never").exists()


def test_export_refuses_references_only(trained):
    _, _, root = trained
    module = _open("export", root).module
    gradient_layers(module, "entry")  # gradients flow: no refusal
    with pytest.raises(ModelError) as e:
        attack_scores(module, None, None, None, ["rmia"], root / "never")
    assert "rmia train reference models" in _one_line(e)


def _rewrite(src, dst, change):
    """Copy the .pt2 archive ``src`` to ``dst``, with ``change(inner_name, bytes) -> bytes`` applied to each entry."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            inner = info.filename.split("/", 1)[1]
            zout.writestr(info.filename, change(inner, zin.read(info.filename)))


def test_pickle_bearing_pt2_refused(trained, tmp_path):
    _, _, root = trained
    with zipfile.ZipFile(root / "m.pt2") as z:
        config = json.loads(z.read(next(n for n in z.namelist() if n.endswith("model_weights_config.json"))))
    bias_file = "data/weights/" + config["config"]["fc.bias"]["path_name"]

    def pickled_weight(inner, data):
        if inner == "data/weights/model_weights_config.json":
            changed = json.loads(data)
            changed["config"]["fc.bias"]["use_pickle"] = True
            return json.dumps(changed).encode()
        if inner == bias_file:
            buf = io.BytesIO()
            torch.save(torch.nn.Parameter(torch.zeros(10)), buf)
            return buf.getvalue()
        return data

    bad = tmp_path / "pickled.pt2"
    _rewrite(root / "m.pt2", bad, pickled_weight)
    assert torch.export.load(str(bad)) is not None  # torch itself would unpickle this file
    with pytest.raises(ModelError) as e:
        open_target(f"export:{bad}", input_shape=SHAPE, num_classes=10)
    assert "pickled weight 'fc.bias'" in _one_line(e) and "unpickle" in str(e.value)

    def sample_not_weights_only(inner, data):
        if inner == "data/sample_inputs/model.pt":
            buf = io.BytesIO()
            torch.save(((Fraction(1, 2),), {}), buf)
            return buf.getvalue()
        return data

    bad2 = tmp_path / "sample.pt2"
    _rewrite(root / "m.pt2", bad2, sample_not_weights_only)
    with pytest.raises(ModelError) as e:
        open_target(f"export:{bad2}", input_shape=SHAPE, num_classes=10)
    assert "sample inputs that are not weights-only" in _one_line(e)
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ModelError) as e:
        open_target(f"export:{junk}", input_shape=SHAPE, num_classes=10)
    assert "not a zip" in _one_line(e)


def test_onnx_bad_files_refused(trained, tmp_path):
    _, _, root = trained
    proto = onnx.load(str(root / "m.onnx"))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    fixed = tmp_path / "fixed.onnx"
    onnx.save(proto, str(fixed))
    with pytest.raises(ModelError) as e:
        open_target(f"onnx:{fixed}", input_shape=SHAPE, num_classes=10)
    assert "fixed batch size 2" in _one_line(e)
    with pytest.raises(ModelError) as e:
        open_target(f"onnx:{root / 'm.onnx'}", input_shape=(3, 8, 8), num_classes=10)
    assert "the data gives (3, 8, 8)" in _one_line(e)
    with pytest.raises(ModelError) as e:
        open_target(f"onnx:{tmp_path / 'missing.onnx'}", input_shape=SHAPE, num_classes=10)
    assert "no such file" in _one_line(e)
    with pytest.raises(ConfigError):
        open_target(f"onnx:{root / 'm.onnx'}", input_shape=SHAPE, num_classes=10, kwargs={"width": 3})
    assert not any(p.name.startswith("missing") for p in tmp_path.iterdir())


def test_onnx_graph_without_scopes_taps_every_node(trained):
    model, sets, root = trained
    proto = onnx.load(str(root / "m.onnx"))
    for i, node in enumerate(proto.graph.node):
        node.name = f"n{i}"
    taps = onnx_taps(proto.graph)
    assert "logits" not in taps.values() and len(taps) == len(proto.graph.node) - 1
    module = OnnxModule(proto, "onnx:anonymous")
    first = next(iter(taps))
    with Recorder(module, [first]) as rec:
        module(sets["test"][0][:3])
        got = rec.pop()[first]
    with Recorder(model, ["conv1"]) as rec:
        model(sets["test"][0][:3])
        torch.testing.assert_close(got, rec.pop()["conv1"], **TOL)


def _relu_chain(names, scopes=None):
    """x -> Relu -> Relu -> ... (one node per name) -> logits, node i named ``names[i]``, scopes as dynamo writes them."""
    from onnx import TensorProto, helper

    nodes = []
    for i, name in enumerate(names):
        src, dst = ("x" if i == 0 else f"t{i - 1}"), ("logits" if i == len(names) - 1 else f"t{i}")
        node = helper.make_node("Relu", [src], [dst], name=name)
        if scopes is not None:
            entry = node.metadata_props.add()
            entry.key, entry.value = "pkg.torch.onnx.name_scopes", repr(["", *scopes[i], f"relu_{i}"])
        nodes.append(node)
    io_ = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", 4]) for n in ("x", "logits")]
    return helper.make_graph(nodes, "g", [io_[0]], [io_[1]])


def test_onnx_tap_names_follow_both_exporters():
    torchscript = _relu_chain(["/stem/stem.0/Conv", "/stage1/conv1/Relu", "/stage1/Relu", "/head/head.0/Relu"])
    dynamo = _relu_chain(
        ["n0", "n1", "n2", "n3"],
        [["stem", "stem.0"], ["stage1", "stage1.conv1"], ["stage1"], ["head", "head.0"]],
    )
    want = {"stem": "t0", "stem.0": "t0", "stage1.conv1": "t1", "stage1": "t2", "head": "logits", "head.0": "logits"}
    assert onnx_taps(torchscript) == want
    assert onnx_taps(dynamo) == want
    module = OnnxModule(onnx.helper.make_model(dynamo), "onnx:chain")
    assert [info.name for info in list_layers(module)] == ["stem", "stem.0", "stage1", "stage1.conv1", "head", "head.0"]


@pytest.mark.parametrize("door", ["onnx", "export"])
def test_the_command_line_audits_each_door_and_refuses_reference_attacks(trained, door, tmp_path, capsys, refused):
    """`layers`, `sweep` and a record-only `test` through --model onnx:FILE / export:FILE; `attack --methods rmia`
    refused in one line (no fresh copy to train reference models from)."""
    from mintaudit.cli import main

    _, _, root = trained
    locator = f"{door}:{root / ('m.onnx' if door == 'onnx' else 'm.pt2')}"
    assert main(["layers", locator, "--dataset", "digits"]) == 0
    assert "relu1" in capsys.readouterr().out
    members = tmp_path / "members.txt"
    members.write_text("\n".join(map(str, range(300))))  # not the fixture's members: the verdict is not the point
    out = tmp_path / "audit"
    common = ["--dataset", "digits", "--model", locator, "--out", str(out), "--quiet"]
    sizes = ["--members-file", str(members), "--external", "200", "--test", "200"]
    assert main(["sweep", *common, *sizes, "--taps", "relu1", "--allow-weak-model"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {r["method"] for r in report["results"]} >= {"passive-mint", "loss"}
    assert main(["test", "--out", str(out), "--query", "heldout-members", "--quiet", "--allow-weak-model"]) == 0
    line = refused(["attack", "--out", out, "--methods", "rmia", "--allow-weak-model"], allow_new=("*/cache/*",))
    assert "reference" in line, line

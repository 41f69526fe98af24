"""The audit record (OUT/record.json): later verbs take what it holds, refuse what contradicts it, and start over
only with --new-record (hostile cases C033, C034, C042, C043, C049, C144, C174, C175)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mintaudit.cli import main

# a tiny-cnn on 12 px digits, trained on x / 255 (mean 0, std 1), that clears the sanity gate in a few seconds
_SIZES = ["--image-size", "12", "--members", "200", "--external", "200", "--test", "200"]
_TRAIN = ["--model", "tiny-cnn", "--epochs", "20", "--lr", "0.03", "--batch-size", "32", "--quiet"]
_SWEEP = ["--taps", "relu2", "--mint-epochs", "2", "--bootstrap", "20", "--quiet"]


def _main(argv):
    return main([str(a) for a in argv])


def _ok(argv, capsys):
    code = _main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """train (--image-size 12, --mean 0 --std 1), then sweep without them (C049: taken from the record), pooled taps."""
    root = tmp_path_factory.mktemp("record")
    out = root / "base"
    assert _main(["train", "--out", out, "--mean", "0", "--std", "1", *_SIZES, *_TRAIN]) == 0
    assert _main(["sweep", "--out", out, "--tap-mode", "pooled", *_SWEEP]) == 0
    return out


@pytest.fixture
def work(base, tmp_path):
    out = tmp_path / "w"
    shutil.copytree(base, out)
    return out


def test_the_record_binds_data_model_and_tap_modes(base):
    rec = _json(base / "record.json")
    assert rec["schema"] == "mintaudit/record@1"
    assert rec["data"]["dataset"] == "digits" and rec["data"]["image_size"] == 12  # C049: kept, not forgotten
    assert rec["data"]["splits_fingerprint"] and rec["data"]["sizes"]["members"] == 200
    mdl = rec["model"]
    assert mdl["trained_in_out"] and mdl["weights"] == "model/model.safetensors" and len(mdl["weights_sha256"]) == 64
    assert mdl["preprocess"] == {"mean": [0.0], "std": [1.0], "grey_to_rgb": False} and mdl["tap_modes"] == "pooled"
    report = _json(base / "report.json")
    assert report["model"]["fingerprint"] == mdl["fingerprint"]


def test_test_needs_no_flags_and_reuses_the_tap_mode(work, capsys):
    """C144: the tap stored pooled by the sweep is read pooled by test (an mlp on 2C values, not a CNN on maps)."""
    _ok(["test", "--out", work, "--query", "heldout-members", "--layer", "relu2", "--quiet"], capsys)
    v = _json(work / "report.json")["verdict"]
    assert v["layer"] == "relu2" and v["detector"] == "mlp"
    _ok(["test", "--out", work, "--query", "heldout-members", "--quiet"], capsys)
    assert _json(work / "report.json")["verdict"]["query"]["source"] == "heldout-members"


@pytest.mark.parametrize(
    "argv, named",
    [
        (["test", "--query", "heldout-members", "--tap-mode", "full"], ["--tap-mode 'full'", "'pooled'"]),  # C144
        (["sweep", "--image-size", "16"], ["--image-size 16", "--image-size 12"]),  # C049
        (["sweep", "--mean", "0.5"], ["--mean 0.5 ", "--mean 0 "]),  # C042
        (["test", "--query", "heldout-members", "--std", "0.5"], ["--std 0.5 ", "--std 1 "]),  # C043
        (["sweep", "--dataset", "fashion-mnist"], ["--dataset 'fashion-mnist'", "'digits'"]),
        (["test", "--query", "test", "--model", "objcls-cnn"], ["--model 'objcls-cnn'", "'tiny-cnn'"]),
        (["train", "--epochs", "1"], ["holds results", "--new-record"]),  # C174
    ],
)
def test_a_contradiction_is_refused_naming_both_values(work, refused, argv, named):
    before = (work / "report.json").read_bytes()
    line = refused([*argv, "--out", work])
    assert all(n in line for n in named), line
    assert (work / "report.json").read_bytes() == before


def test_resplit_or_other_splits_refused(work, refused, capsys, tmp_path):
    """C033: splits.json deleted, then re-split; C034: --splits of another seed."""
    _ok(["splits", "--out", tmp_path / "other", "--seed", "7", *_SIZES], capsys)
    line = refused(["sweep", "--out", work, "--splits", tmp_path / "other" / "splits.json", *_SWEEP])
    assert "holds splits" in line and _json(work / "record.json")["data"]["splits_fingerprint"] in line
    (work / "splits.json").unlink()
    for argv in (["splits", "--members", "300"], ["sweep", *_SWEEP]):
        line = refused([*argv, "--out", work])
        assert "splits.json' is gone" in line and "--new-record" in line
    assert not (work / "splits.json").exists()


def test_changed_weights_refused_naming_the_file(work, refused):
    """C175 for a model trained in OUT: its weights replaced after the sweep."""
    weights = work / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    line = refused(["test", "--out", work, "--query", "heldout-members"])
    assert str(weights) in line and "changed" in line


def test_new_record_archives_then_retrains(work, capsys):
    """C174: a retrain goes through --new-record; the old record, report and model move, nothing is deleted."""
    old = _json(work / "record.json")
    old_report = (work / "report.json").read_bytes()
    _ok(["train", "--out", work, "--new-record", "--epochs", "2", "--model", "tiny-cnn", "--quiet", *_SIZES], capsys)
    (archive,) = (work / "archive").iterdir()
    assert (archive / "report.json").read_bytes() == old_report
    assert _json(archive / "record.json") == old and (archive / "model" / "model.safetensors").is_file()
    assert (work / "cache" / "pools").exists() or not (archive / "cache" / "pools").exists()
    new = _json(work / "record.json")
    assert new["model"]["fingerprint"] != old["model"]["fingerprint"] and new["data"]["image_size"] == 12
    assert not (work / "report.json").exists()
    _ok(
        ["test", "--out", work, "--query", "heldout-members", "--method", "loss", "--allow-weak-model", "--quiet"],
        capsys,
    )
    assert _json(work / "report.json")["model"]["fingerprint"] == new["model"]["fingerprint"]


def test_an_older_out_is_adopted_when_its_files_agree(work, capsys, refused):
    (work / "record.json").unlink()
    _ok(["test", "--out", work, "--query", "heldout-members", "--method", "loss", "--quiet"], capsys)
    rec = _json(work / "record.json")
    assert rec["model"]["trained_in_out"] and rec["data"]["image_size"] == 12 and "adopted" in rec
    # C174 in an older OUT: a report of another model is refused, not appended to
    (work / "record.json").unlink()
    report = _json(work / "report.json")
    report["model"]["fingerprint"] = "0123456789abcdef"
    (work / "report.json").write_text(json.dumps(report))
    line = refused(["test", "--out", work, "--query", "heldout-members"])
    assert "describes model 0123456789abcdef" in line and "--new-record" in line


@pytest.fixture(scope="module")
def own(base, tmp_path_factory):
    """The README's own-model flow: a user's model trained elsewhere on x / 255 (base's, copied to a file of its
    own), then ``splits`` and ``sweep --model --weights --mean 0 --std 1`` in a new OUT."""
    root = tmp_path_factory.mktemp("own")
    weights = root / "w.safetensors"
    shutil.copy(base / "model" / "model.safetensors", weights)
    out = root / "audit"
    assert _main(["splits", "--out", out, *_SIZES]) == 0
    argv = ["sweep", "--out", out, "--model", "tiny-cnn", "--weights", weights, "--mean", "0", "--std", "1", *_SWEEP]
    assert _main(argv) == 0
    return out, weights


def test_own_model_flow_needs_no_flags_after_the_sweep(own, tmp_path, capsys, refused):
    """C042/C043: forgetting --mean 0 --std 1 later takes them from the record; contradicting them is refused."""
    src, weights = own
    out = tmp_path / "audit"
    shutil.copytree(src, out)
    rec = _json(out / "record.json")["model"]
    assert rec["locator"] == "tiny-cnn" and rec["weights"] == str(weights.resolve())
    assert rec["preprocess"]["mean"] == [0.0] and rec["preprocess"]["std"] == [1.0]
    _ok(["test", "--out", out, "--query", "heldout-members"], capsys)  # no model, data or preprocessing flag
    report = _json(out / "report.json")
    assert report["model"]["preprocess"]["mean"] == [0.0] and report["verdict"]["query"]["n"] == 100
    assert report["model"]["fingerprint"] == rec["fingerprint"]
    line = refused(["test", "--out", out, "--query", "heldout-members", "--mean", "0.5", "--std", "0.5"])
    assert "--mean 0.5 " in line and "--mean 0 " in line
    _ok(["sweep", "--out", out, *_SWEEP], capsys)  # C042: the sweep repeated without its flags keeps them
    _ok(["attack", "--out", out, "--methods", "loss", "--bootstrap", "20", "--quiet"], capsys)  # so does attack
    report = _json(out / "report.json")
    assert report["model"]["preprocess"]["std"] == [1.0] and report["model"]["fingerprint"] == rec["fingerprint"]
    assert {r["method"] for r in report["results"]} >= {"passive-mint", "loss"}


def test_own_model_weights_moved_or_replaced(own, tmp_path, refused, capsys):
    """C175: a replaced --weights file is refused naming it; a moved one too, until --weights names its new place."""
    src, weights = own
    out = tmp_path / "audit"
    shutil.copytree(src, out)
    moved = tmp_path / "moved.safetensors"
    shutil.copy(weights, moved)
    other = tmp_path / "other.safetensors"
    shutil.copy(weights, other)
    data = bytearray(other.read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    line = refused(["test", "--out", out, "--query", "test", "--weights", other])
    assert str(other) in line and str(weights.resolve()) in line
    _ok(["test", "--out", out, "--query", "test", "--weights", moved, "--method", "loss", "--quiet"], capsys)
    rec = _json(src / "record.json")
    rec["model"]["weights"] = str(moved.resolve())
    (out / "record.json").write_text(json.dumps(rec))
    moved.write_bytes(other.read_bytes())  # the recorded file replaced in place, then named again with --weights
    line = refused(["test", "--out", out, "--query", "test", "--weights", moved])
    assert str(moved) in line and "changed" in line
    rec["model"]["weights"] = str(tmp_path / "gone.safetensors")
    (out / "record.json").write_text(json.dumps(rec))
    line = refused(["test", "--out", out, "--query", "test"])
    assert str(tmp_path / "gone.safetensors") in line and "gone" in line


_NUMBER = st.sampled_from([0.0, 0.25, 0.5, 1.0])
_VALUES = st.lists(_NUMBER, min_size=1, max_size=1) | st.lists(_NUMBER, min_size=3, max_size=3)  # one, or per RGB


@settings(max_examples=60, deadline=None)
@given(mean=_VALUES, std=_VALUES, given_mean=st.none() | _VALUES, given_std=st.none() | _VALUES)
def test_check_options_takes_or_refuses_the_preprocessing(mean, std, given_mean, given_std):
    """Property: with the recorded preprocessing P, --mean/--std are either refused naming both values, or the
    options after filling read back as exactly P."""
    from mintaudit.errors import ConfigError
    from mintaudit.preprocess import Preprocess
    from mintaudit.workdir.record import check_options, model_part, weights_sha256

    std = [s or 1.0 for s in std]
    given_std = None if given_std is None else [s or 1.0 for s in given_std]
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        (out / "model").mkdir()
        (out / "model" / "model.safetensors").write_bytes(b"weights")
        pre = Preprocess(mean=tuple(mean), std=tuple(std))
        mdl = model_part(
            locator="tiny-cnn", in_out=True, weights="model/model.safetensors", fingerprint="f", preprocess=pre
        )
        mdl["weights_sha256"] = weights_sha256(out / "model" / "model.safetensors")
        given = {k: ",".join(map(str, v)) for k, v in (("mean", given_mean), ("std", given_std)) if v is not None}
        try:
            fill = check_options(out, {"model": mdl}, "test", given)
        except ConfigError as e:
            flag = "--mean" if given_mean is not None and tuple(given_mean) != pre.mean else "--std"
            assert f"{flag} " in str(e) and "contradicts the audit record" in str(e)
            return
        values = {**given, **fill}
        assert Preprocess.parse(values["mean"], values["std"], values["grey_to_rgb"]) == pre

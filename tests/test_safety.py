"""Never destroy what the tool did not make: folders it replaces, files it writes, work directories it uses.

Hostile cases (shared/reports/hostile-cases.tsv): C111-C114 (aMINT export), C118, C119, C121, C122
(active query), C183 (--out /proc/x), C172 / C176 (one lock per OUT).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mintaudit._io import MARKER, atomic_dir
from mintaudit._lock import LOCK_FILE, out_lock
from mintaudit.active import export_auditable, load_active, make_auditable
from mintaudit.cli import main
from mintaudit.errors import ConfigError, ModelError
from mintaudit.models import TinyCNN


def _tree(root):
    """{relative path: bytes} of every file under ``root`` (links read through)."""
    return {
        os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(root)
        for f in files
    }


@pytest.fixture(scope="module")
def auditable():
    torch.manual_seed(0)
    model = make_auditable(TinyCNN(1, 3), ["relu1", "relu2"], example=torch.zeros(2, 1, 8, 8))
    return model.eval()


def _export(model, out, **kw):
    return export_auditable(model, out, input_shape=(1, 8, 8), num_classes=3, factory="tiny-cnn", **kw)


@pytest.fixture
def delivered(auditable, tmp_path):
    """An exported model folder and a queried PNG under tmp_path."""
    from PIL import Image

    folder = _export(auditable, tmp_path / "amint")
    img = tmp_path / "q" / "x1.png"
    img.parent.mkdir()
    Image.new("L", (8, 8), 128).save(img)
    (tmp_path / "q" / "x2.png").write_bytes(img.read_bytes())
    return folder, img


# --- C112, C113, C114: the export never replaces a folder it did not make ----------------------------------------


def test_export_into_the_current_folder_is_refused_and_nothing_is_lost(auditable, tmp_path, monkeypatch):
    (tmp_path / "train_script.py").write_text("print('mine')\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("keep")
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="current folder"):
        _export(auditable, ".")
    assert _tree(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["data", "train_script.py"]


def test_export_into_a_folder_of_other_files_is_refused(auditable, tmp_path):
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("important")
    with pytest.raises(ConfigError, match="did not write"):
        _export(auditable, tmp_path / "existing")
    assert os.listdir(tmp_path / "existing") == ["keep.txt"]
    assert [p for p in os.listdir(tmp_path) if p != "existing"] == []  # no temporary left beside it


def test_an_earlier_export_is_replaced_but_not_once_a_user_file_joined_it(auditable, tmp_path):
    folder = _export(auditable, tmp_path / "m", threshold=0.4)
    assert sorted(os.listdir(folder)) == sorted([MARKER, "amint.json", "model.safetensors"])
    _export(auditable, folder, threshold=0.6)  # ours: replaced as a whole
    assert json.loads((folder / "amint.json").read_text())["threshold"] == 0.6
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"notes\.txt"):
        _export(auditable, folder, threshold=0.7)
    assert (folder / "notes.txt").read_text() == "mine"
    assert json.loads((folder / "amint.json").read_text())["threshold"] == 0.6


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_export_onto_a_symlink_or_a_file_is_refused(auditable, tmp_path, kind):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    out = tmp_path / "out"
    if kind == "symlink":
        out.symlink_to(target, target_is_directory=True)
    else:
        out.write_text("a file")
    before = _tree(tmp_path)
    with pytest.raises(ConfigError, match="symbolic link" if kind == "symlink" else "is a file"):
        _export(auditable, out)
    assert _tree(tmp_path) == before and out.is_symlink() == (kind == "symlink")


def test_atomic_dir_adopts_an_empty_folder_and_a_marked_one_only(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty") as tmp:
        (tmp / "a.bin").write_bytes(b"1")
    assert json.loads((tmp_path / "empty" / MARKER).read_text())["entries"] == ["a.bin"]
    with atomic_dir(tmp_path / "empty") as tmp:  # marked: ours, replaced
        (tmp / "b.bin").write_bytes(b"2")
    assert sorted(os.listdir(tmp_path / "empty")) == [MARKER, "b.bin"]
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "manifest.json").write_text("{}")
    (tmp_path / "user" / "photo.jpg").write_bytes(b"x")
    with pytest.raises(ConfigError, match="photo.jpg"):  # the schema file alone does not make a folder ours
        with atomic_dir(tmp_path / "user", schema_file="manifest.json") as tmp:
            (tmp / "manifest.json").write_text("{}")
    assert sorted(os.listdir(tmp_path / "user")) == ["manifest.json", "photo.jpg"]


# --- C111, C118, C119: thresholds and the fields a query reads ------------------------------------------------------


@pytest.mark.parametrize("threshold", [float("nan"), 2.0, -0.1])
def test_export_refuses_a_threshold_outside_0_1(auditable, tmp_path, threshold):
    with pytest.raises(ModelError, match=r"threshold must be a number in \[0, 1\]"):
        _export(auditable, tmp_path / "m", threshold=threshold)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m.update(threshold="abc"), "'threshold'"),
        (lambda m: m.update(threshold=float("nan")), "'threshold'"),
        (lambda m: m.update(class_names=["a"]), "'class_names'"),
        (lambda m: m.pop("input"), "'input'"),
    ],
    ids=["threshold-abc", "threshold-nan", "short-class-names", "no-input"],
)
def test_a_malformed_amint_json_is_refused_in_one_line(delivered, refused, edit, needle):
    folder, img = delivered
    meta = json.loads((folder / "amint.json").read_text())
    edit(meta)
    (folder / "amint.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=needle):
        load_active(folder)
    assert needle in refused(["active", "query", str(folder), str(img)])


# --- C121, C122: answers never written onto an input or a file the tool did not write ---------------------------


@pytest.mark.parametrize(
    "where, needle",
    [
        ("amint.json", "is an input"),
        ("model.safetensors", "is an input"),
        ("image", "is an input"),
        ("other-image", "named like an image"),
        ("foreign", "not a CSV answers file"),
    ],
)
def test_query_outputs_never_replace_inputs_or_foreign_files(delivered, refused, tmp_path, where, needle):
    folder, img = delivered
    (tmp_path / "notes.csv").write_text("my,own\n1,2\n")
    target = {
        "amint.json": folder / "amint.json",
        "model.safetensors": folder / "model.safetensors",
        "image": img,
        "other-image": img.parent / "x2.png",
        "foreign": tmp_path / "notes.csv",
    }[where]
    before = _tree(tmp_path)
    # "other-image" is C122: the CSV name forgotten, so x2.png is taken as the CSV and x1.png as the image
    line = refused(["active", "query", str(folder), str(img), "--csv", str(target)])
    assert needle in line and _tree(tmp_path) == before


def test_query_answers_may_be_rewritten_and_json_too(delivered, tmp_path, capsys):
    folder, img = delivered
    csv_path, json_path = tmp_path / "answers.csv", tmp_path / "answers.json"
    for _ in range(2):  # the second run replaces the files the first one wrote
        args = ["active", "query", str(folder), str(img), "--csv", str(csv_path), "--json", str(json_path)]
        assert main(args) == 0
    assert csv_path.read_text().startswith("path,label,class_name,membership,member")
    assert len(json.loads(json_path.read_text())["answers"]) == 1
    capsys.readouterr()


# --- C183 and system folders -------------------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["/", "/proc/x", "/etc/mintaudit", "/usr", "/tmp"])
def test_system_folders_are_refused_as_out(refused, out):
    line = refused(["splits", "--dataset", "digits", "--out", out])
    assert "--out" in line and any(w in line for w in ("system folder", "shared top-level folder", "root of the file"))


# --- C172, C176: one lock per OUT ------------------------------------------------------------------------------------


def test_a_second_command_on_a_locked_out_is_refused_naming_the_holder(tmp_path, refused):
    out = tmp_path / "run"
    with out_lock(out, command=["mintaudit", "train"]):
        line = refused(["splits", "--dataset", "digits", "--out", str(out)], allow_new=(f"*/{LOCK_FILE}",))
        assert f"pid {os.getpid()}" in line and "mintaudit train" in line and "another --out" in line
        assert not (out / "splits.json").exists()
    assert not (out / LOCK_FILE).exists()


def test_a_lock_held_by_another_process_refuses_and_a_dead_holders_lock_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    code = (
        "import sys; from mintaudit._lock import out_lock\n"
        "with out_lock(sys.argv[1], command=['mintaudit', 'sweep']):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout.readline().strip() == "held"
        assert main(["splits", "--dataset", "digits", "--out", str(out)]) == 2
        assert f"pid {child.pid}" in capsys.readouterr().err
        child.kill()  # killed while holding: its lock file stays, naming a dead pid
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == child.pid
    assert (
        main(
            ["splits", "--dataset", "digits", "--members", "30", "--external", "30", "--test", "30", "--out", str(out)]
        )
        == 0
    )
    assert (out / "splits.json").is_file() and not (out / LOCK_FILE).exists()
    capsys.readouterr()


def test_a_refused_command_on_a_new_out_leaves_no_folder(tmp_path, refused):
    out = tmp_path / "new"
    line = refused(["splits", "--dataset", f"npz:{tmp_path / 'missing.npz'}", "--out", str(out)])
    assert "missing.npz" in line and not out.exists()  # refused inside the command, after the lock was taken

"""Queries are read like the audited data (hostile cases C146-C151, C011, C013).

A model trained in OUT with a non-default preprocessing (mean 0 / std 1, or grey-to-RGB) is
queried with the same samples three ways: by pool index, as an npz, as a class folder. The
per-sample scores must be identical whatever the form: the new samples go through the model's
preprocessing, and class folders are matched by name (one missing class shifts nothing).
Index files keep every line: a byte-order mark is dropped, a header is skipped only when
declared, a mistyped line is refused naming its number.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mintaudit.cli import main
from mintaudit.data import Splits, load_dataset
from mintaudit.workdir import null_split

DIGITS = load_dataset("digits")


def _train(out, *extra):
    argv = ["train", "--dataset", "digits", "--model", "tiny-cnn", "--members", "200", "--external", "150"]
    argv += ["--test", "300", "--epochs", "2", "--out", str(out), "--quiet", *extra]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """tiny-cnn trained in OUT on digits read with mean 0 / std 1 (not the default 0.5 / 0.5)."""
    out = tmp_path_factory.mktemp("own") / "run"
    _train(out, "--mean", "0", "--std", "1")
    return out


def _query_pool(out, n=40):
    """``n`` test-pool indices (outside the null) whose images are not also among the null's images."""
    splits = Splits.load(out / "splits.json", dataset=DIGITS)
    null, pool = null_split(splits)
    taken = {DIGITS.images[i].tobytes() for i in null}
    return np.array([i for i in pool if DIGITS.images[i].tobytes() not in taken][:n])


def _scores(out, capsys, query, *extra):
    argv = ["test", "--dataset", "digits", "--out", str(out), "--query", query, "--method", "loss"]
    assert main([*argv, "--quiet", "--allow-weak-model", *extra]) == 0, capsys.readouterr().err
    capsys.readouterr()
    rows = [line.split(",") for line in (out / "verdict.csv").read_text().splitlines()[1:]]
    v = json.loads((out / "report.json").read_text())["verdict"]
    return np.array([float(r[1]) for r in rows]), v


def _npz(path, ids):
    np.savez(path, x=DIGITS.images[ids][..., 0], y=DIGITS.labels[ids])
    return f"npz:{path}"


def test_npz_query_is_read_with_the_models_preprocessing(own, tmp_path, capsys):  # C146, C147
    ids = _query_pool(own)
    (tmp_path / "q.txt").write_text("".join(f"{i}\n" for i in ids))
    by_index, v_index = _scores(own, capsys, str(tmp_path / "q.txt"))
    as_npz, v_npz = _scores(own, capsys, _npz(tmp_path / "q.npz", ids))
    assert len(by_index) == len(ids) == 40
    np.testing.assert_allclose(as_npz, by_index, rtol=1e-6)  # read with mean 0.5 / std 0.5 they differ widely
    assert v_npz["mann_whitney"]["p_value"] == pytest.approx(v_index["mann_whitney"]["p_value"])


def test_folder_query_classes_matched_by_name_with_one_missing(own, tmp_path, capsys, refused):  # C149
    ids = _query_pool(own, 60)
    ids = ids[DIGITS.labels[ids] != 0][:30]  # no class "0": by sorted position "1" would become label 0
    root = tmp_path / "qfold"
    for i in ids:
        (root / str(DIGITS.labels[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(DIGITS.images[i][:, :, 0]).save(root / str(DIGITS.labels[i]) / f"{i:05d}.png")
    order = sorted(ids, key=lambda i: (str(DIGITS.labels[i]), f"{i:05d}"))  # the folder reader's order
    (tmp_path / "q.txt").write_text("".join(f"{i}\n" for i in order))
    by_index, _ = _scores(own, capsys, str(tmp_path / "q.txt"))
    as_folder, _ = _scores(own, capsys, f"folder:{root}")
    np.testing.assert_allclose(as_folder, by_index, rtol=1e-6)

    (root / "seven").mkdir()
    Image.fromarray(DIGITS.images[ids[0]][:, :, 0]).save(root / "seven" / "a.png")
    line = refused(["test", "--dataset", "digits", "--out", own, "--query", f"folder:{root}", "--method", "loss"])
    assert "'seven'" in line and "not among the classes of 'digits'" in line


def test_grey_query_on_a_grey_to_rgb_model(tmp_path, capsys):  # C148
    out = tmp_path / "rgb"
    _train(out, "--grey-to-rgb")
    ids = _query_pool(out, 25)
    (tmp_path / "q.txt").write_text("".join(f"{i}\n" for i in ids))
    by_index, _ = _scores(out, capsys, str(tmp_path / "q.txt"))
    as_npz, v = _scores(out, capsys, _npz(tmp_path / "q.npz", ids))
    np.testing.assert_allclose(as_npz, by_index, rtol=1e-6)
    assert v["n_query"] == 25


def test_query_index_files_use_or_refuse_every_line(own, tmp_path, capsys, refused):  # C150, C151
    ids = _query_pool(own, 30)
    text = "".join(f"{i}\n" for i in ids)
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + text.encode())
    _, v = _scores(own, capsys, str(tmp_path / "bom.txt"))
    assert v["n_query"] == 30  # the first index is not lost as a "header"

    (tmp_path / "hdr.csv").write_text("sample_id,note\n" + text)
    _, v = _scores(own, capsys, str(tmp_path / "hdr.csv"), "--query-header")
    assert v["n_query"] == 30

    base = ["test", "--dataset", "digits", "--out", own, "--method", "loss", "--allow-weak-model"]
    for bad, lineno in (("1O3", 1), ("--5", 2), ("²", 3), ("sample_id", 1)):
        lines = [str(i) for i in ids[:3]]
        lines.insert(lineno - 1, bad)
        (tmp_path / "bad.txt").write_text("\n".join(lines) + "\n")
        line = refused([*base, "--query", tmp_path / "bad.txt"])
        assert f"line {lineno}: {bad!r} is not a sample index" in line, line
    assert "--query-header" in line  # a header-looking first line: the fix is named
    assert "applies to a file of pool indices" in refused([*base, "--query", "npz:x.npz", "--query-header"])


@pytest.mark.parametrize("entry", ["²", "--5", "1O3", "٣"])
def test_member_file_lines_refused_naming_the_line(entry, tmp_path, refused):  # C011, C013
    (tmp_path / "m.txt").write_text(f"3\n{entry}\n")
    line = refused(["splits", "--dataset", "digits", "--members-file", "m.txt", "--out", "o"])
    assert "line 2" in line and "not a pool index" in line


def test_member_file_with_a_byte_order_mark_keeps_its_first_line(tmp_path, capsys):
    (tmp_path / "m.txt").write_bytes(b"\xef\xbb\xbf" + "".join(f"{i}\n" for i in range(40)).encode())
    out = tmp_path / "o"
    assert main(["splits", "--dataset", "digits", "--members-file", str(tmp_path / "m.txt"), "--out", str(out)]) == 0
    splits = Splits.load(out / "splits.json", dataset=DIGITS)
    assert sorted(splits.members.tolist()) == list(range(40))

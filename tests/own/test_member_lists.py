"""Member lists from files, the splits verb, and what they refuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mintaudit.data import load_dataset
from mintaudit.data.member_lists import read_sample_list, splits_with
from mintaudit.errors import SplitError


def _folder(tmp_path):
    root = tmp_path / "photos"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / c / f"{i:02d}.png")
    return root


def test_indices_and_folder_paths(tmp_path):
    ds = load_dataset("digits")
    f = tmp_path / "m.txt"
    f.write_text("# trained on\n5\n\n3\n1796\n")
    assert read_sample_list(f, ds).tolist() == [5, 3, 1796]
    root = _folder(tmp_path)
    fds = load_dataset(f"folder:{root}")
    assert fds.sources[0] == "cat/00.png" and fds.sources[6] == "dog/00.png"
    f.write_text("dog/01.png\ncat/05.png\n2\n")
    assert read_sample_list(f, fds).tolist() == [7, 5, 2]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("1\n2\n1\n", "listed twice (first on line 1)"),
        ("1\n1797\n", "index 1797 is outside the pool [0, 1797)"),
        ("-1\n", "outside the pool"),
        ("1.5\n", "is not a pool index"),
        ("9" * 31 + "\n", "is not a pool index"),
        ("\n# nothing\n", "lists no samples"),
    ],
)
def test_bad_lists(tmp_path, text, needle):
    f = tmp_path / "m.txt"
    f.write_text(text)
    with pytest.raises(SplitError, match=needle.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        read_sample_list(f, load_dataset("digits"))


@pytest.mark.parametrize(
    "entry, needle",
    [
        ("../photos/cat/00.png", "not under the folder root"),
        ("/etc/passwd", "not under the folder root"),
        ("cat/99.png", "is not an image of"),
    ],
)
def test_folder_paths_must_be_images_under_the_root(tmp_path, entry, needle):
    root = _folder(tmp_path)
    f = tmp_path / "m.txt"
    f.write_text(entry + "\n")
    with pytest.raises(SplitError, match=needle):
        read_sample_list(f, load_dataset(f"folder:{root}"))


def test_given_roles_are_kept_and_the_rest_drawn_from_what_is_left():
    ds = load_dataset("digits")
    members = np.arange(0, 300)
    s = splits_with(ds, {"members": members}, {"members": None, "external": 200, "test": None}, (500, 500, 500), seed=3)
    assert s.members.tolist() == members.tolist() and len(s.external) == 200 and len(s.test) == 500
    assert not set(s.external) & set(members) and not set(s.test) & (set(s.external) | set(members))
    again = splits_with(
        ds, {"members": members}, {"members": None, "external": 200, "test": None}, (500, 500, 500), seed=3
    )
    assert again.test.tolist() == s.test.tolist()  # seeded
    with pytest.raises(SplitError, match="share 10 samples"):
        splits_with(ds, {"members": members, "test": np.arange(290, 310)}, {}, (500, 500, 500))
    with pytest.raises(SplitError, match="disagrees with --members-file"):
        splits_with(ds, {"members": members}, {"members": 10}, (500, 500, 500))
    with pytest.raises(SplitError, match="left for it"):
        splits_with(ds, {"members": np.arange(1700)}, {"external": 200}, (500, 500, 500))


def test_the_splits_verb_makes_and_shows_splits_json(tmp_path, capsys):
    from mintaudit.cli import main

    root = _folder(tmp_path)
    f = tmp_path / "used.txt"
    f.write_text("cat/00.png\ncat/01.png\ndog/00.png\n")
    out = tmp_path / "run"
    assert (
        main(
            [
                "splits",
                "--dataset",
                f"folder:{root}",
                "--members-file",
                str(f),
                "--external",
                "4",
                "--test",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "cat" in printed and "dog" in printed and "total" in printed
    saved = json.loads((out / "splits.json").read_text())
    assert sorted(saved["members"]) == [0, 1, 6]
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines()[2:]}
    assert rows["cat"][0] == "2" and rows["dog"][0] == "1" and rows["total"] == ["3", "4", "4"]
    # the same list again reuses it; another list for the same work directory is refused
    assert main(["splits", "--dataset", f"folder:{root}", "--members-file", str(f), "--out", str(out)]) == 0
    f.write_text("cat/02.png\n")
    capsys.readouterr()
    assert main(["splits", "--dataset", f"folder:{root}", "--members-file", str(f), "--out", str(out)]) == 2
    assert "holds other members than --members-file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, needle", [("3\n3\n", "listed twice"), ("99999\n", "outside the pool"), ("abc\n", "is not a pool index")]
)
def test_bad_member_files_through_the_cli(tmp_path, refused, text, needle):
    (tmp_path / "m.txt").write_text(text)
    line = refused(["splits", "--dataset", "digits", "--members-file", "m.txt", "--out", "run"])
    assert needle in line and "--members-file" in line


def test_a_missing_member_file_is_one_line(refused):
    assert "does not exist" in refused(["splits", "--dataset", "digits", "--members-file", "nope.txt", "--out", "run"])

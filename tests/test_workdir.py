"""The work directory: given paths must exist, re-rendering writes next to its input, resumes must
match their checkpoint, stale temporaries are cleaned up, and a damaged cache is refused in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from mintaudit._io import atomic_dir, atomic_write_json
from mintaudit.cli import main


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 100-sample npz data set (20 a side: mintaudit.sizes), tiny-cnn trained 2 epochs (checkpoint after epoch 2), relu1
    extracted."""
    root = tmp_path_factory.mktemp("base")
    rng = np.random.default_rng(0)
    np.savez(root / "data.npz", x=rng.integers(0, 256, (100, 8, 8), dtype=np.uint8), y=np.arange(100) % 3)
    data, out = f"npz:{root / 'data.npz'}", root / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                data,
                "--model",
                "tiny-cnn",
                "--members",
                "40",
                "--external",
                "20",
                "--test",
                "20",
                "--epochs",
                "2",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["extract", "--dataset", data, "--out", str(out), "--taps", "relu1", "--quiet"]) == 0
    return data, out


@pytest.fixture
def work(base, tmp_path):
    """A copy of the base work directory under ``tmp_path / "run"``; returns (data, out, the cache folder)."""
    data, src = base
    out = tmp_path / "run"
    shutil.copytree(src, out)
    (cache,) = [m.parent for m in (out / "cache").glob("*/manifest.json")]
    return data, out, cache


def _host() -> str:
    from mintaudit._io import _host

    return _host()


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# --- item 3: a given --splits must exist --------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["train", "sweep", "extract"])
@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_given_splits_path_must_exist(base, tmp_path, refused, verb, kind):
    data, _ = base
    splits = tmp_path / ("typo.json" if kind == "missing" else "adir")
    if kind == "folder":
        splits.mkdir()
    line = refused([verb, "--dataset", data, "--out", tmp_path / "r", "--splits", splits, "--quiet"])
    assert str(splits) in line and "--splits" in line
    assert ("does not exist" if kind == "missing" else "is a directory") in line
    assert not splits.is_file() and not (tmp_path / "r" / "splits.json").exists()


# --- item 5: mintaudit report X/other.json writes X/other.html only --------------------------------------------------


def _report(name):
    from mintaudit.report import new_report

    return new_report(dataset={"name": name, "members": 1}, model={"name": "tiny-cnn"}, config={}, command="t")


def test_report_renders_next_to_its_input_and_overwrites_nothing(tmp_path, capsys):
    from mintaudit.report import write_report

    write_report(_report("the-main-report"), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    atomic_write_json(tmp_path / "other.json", _report("another-report"))
    assert main(["report", str(tmp_path / "other.json")]) == 0
    assert str(tmp_path / "other.html") in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before
    assert "another-report" in (tmp_path / "other.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.html", "other.json", "report.html", "report.json"]
    # a folder re-renders its report.json into its report.html; the JSON is only read
    (tmp_path / "report.html").unlink()
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.json").read_bytes() == before["report.json"]
    assert "the-main-report" in (tmp_path / "report.html").read_text()
    # a name without .json gets .html added, never replaced
    shutil.copy(tmp_path / "other.json", tmp_path / "plain")
    assert main(["report", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "plain.html").is_file() and (tmp_path / "plain").read_bytes() == (
        tmp_path / "other.json"
    ).read_bytes()


# --- item 13: a resume must match its checkpoint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--epochs", "1"], "already trained 2 epochs"),
        (["--epochs", "2", "--lr", "0.5"], "lr 0.001 (now 0.5)"),
        (["--epochs", "2", "--batch-size", "8"], "batch_size 64 (now 8)"),
        (["--epochs", "2", "--weight-decay", "0.1"], "weight_decay 0.0 (now 0.1)"),
        (["--epochs", "2", "--seed", "3"], "seed 0 (now 3)"),
    ],
)
def test_resume_with_other_options_is_refused(work, refused, extra, needle):
    data, out, _ = work
    before = (out / "model" / "model.json").read_bytes()
    line = refused(["train", "--dataset", data, "--model", "tiny-cnn", "--out", out, "--resume", "--quiet", *extra])
    assert needle in line and "checkpoint.pt" in line and "drop --resume" in line
    assert (out / "model" / "model.json").read_bytes() == before


def test_resume_on_other_members_is_refused(work, refused, tmp_path):
    data, out, _ = work
    splits = json.loads((out / "splits.json").read_text())
    splits["members"], splits["external"] = splits["external"], splits["members"]
    del splits["fingerprint"]  # an edit, accepted
    splits.pop("sizes", None)  # 40 members and 20 external: the stored sizes go with the edit
    (tmp_path / "swapped.json").write_text(json.dumps(splits))
    line = refused(
        [
            "train",
            "--dataset",
            data,
            "--model",
            "tiny-cnn",
            "--out",
            out,
            "--resume",
            "--epochs",
            "2",
            "--splits",
            tmp_path / "swapped.json",
            "--quiet",
        ]
    )
    assert "holds splits" in line and "--new-record" in line  # the audit record refuses other members first


def test_resume_may_extend_the_schedule(work, capsys):
    data, out, _ = work
    assert (
        main(
            [
                "train",
                "--dataset",
                data,
                "--model",
                "tiny-cnn",
                "--out",
                str(out),
                "--resume",
                "--epochs",
                "3",
                "--quiet",
            ]
        )
        == 0
    )
    info = json.loads((out / "model" / "model.json").read_text())
    assert info["train"]["epochs"] == 3 and [r["epoch"] for r in info["history"]] == [1.0, 2.0, 3.0]


def test_amint_resume_with_other_options_is_refused(toy_dataset, tmp_path):
    from mintaudit.active import ActiveConfig, ActiveModel, train_active
    from mintaudit.errors import ConfigError
    from mintaudit.models import TinyCNN

    def run(resume=False, **cfg):
        model = ActiveModel(TinyCNN(1, 3, 8), ["relu1"], example=torch.zeros(2, 1, 8, 8))
        train_active(
            model,
            toy_dataset,
            np.arange(40),
            np.arange(40, 70),
            val_members=np.arange(0, 40, 4),
            val_external=np.arange(70, 80),
            config=ActiveConfig(batch_size=8, patience=0, **cfg),
            checkpoint_dir=tmp_path,
            resume=resume,
            show_progress=False,
        )

    run(epochs=2)
    with pytest.raises(ConfigError, match=r"lambda_mint 1.0 \(now 2.0\)"):
        run(resume=True, epochs=2, lambda_mint=2.0)
    with pytest.raises(ConfigError, match="already trained 2 epochs"):
        run(resume=True, epochs=1)
    run(resume=True, epochs=3)


# --- item 14: a later writer removes the temporaries a killed one left ------------------------------------------------


def test_atomic_writers_remove_only_dead_writers_temporaries(tmp_path):
    dead, host = _dead_pid(), _host()
    stale_file = tmp_path / f".t.json.{dead}@{host}.abcdefgh.tmp"
    stale_dir = tmp_path / f".d.{dead}@{host}.k2j4h5g6.tmp"
    keep = [
        tmp_path / f".t.json.{os.getpid()}@{host}.zzzzzzzz.tmp",  # a running writer
        tmp_path / f".t.json.{dead}@another-host.qqqqqqqq.tmp",  # another host's: its pid says nothing here
        tmp_path / f".other.json.{dead}@{host}.abcdefgh.tmp",  # another target's
        tmp_path / ".t.json.notmine.tmp",
    ]  # not our pattern
    stale_file.write_bytes(b"half a file")
    stale_dir.mkdir()
    (stale_dir / "big.npy").write_bytes(b"0" * 1000)
    for p in keep:
        p.write_bytes(b"x")
    atomic_write_json(tmp_path / "t.json", {"a": 1})
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("done")
    assert not stale_file.exists() and not stale_dir.exists()
    assert all(p.exists() for p in keep)
    assert json.loads((tmp_path / "t.json").read_text()) == {"a": 1} and (tmp_path / "d" / "f").read_text() == "done"
    assert set(tmp_path.glob(".*.tmp")) == set(keep)  # the writers' own temporaries are gone too


def test_a_later_run_removes_a_killed_runs_checkpoint_and_cache_temporaries(work, capsys):
    data, out, cache = work
    dead, host = _dead_pid(), _host()
    ckpt_tmp = out / "model" / f".checkpoint.pt.{dead}@{host}.abcdefgh.tmp"
    ckpt_tmp.write_bytes(b"half a checkpoint")
    cache_tmp = cache.parent / f".{cache.name}.{dead}@{host}.abcdefgh.tmp"
    cache_tmp.mkdir()
    (cache_tmp / "act_relu1.npy").write_bytes(b"0" * 4096)
    shutil.rmtree(cache)  # the killed extraction never completed
    assert main(["extract", "--dataset", data, "--out", str(out), "--taps", "relu1", "--quiet"]) == 0
    assert main(["train", "--dataset", data, "--model", "tiny-cnn", "--out", str(out), "--epochs", "1", "--quiet"]) == 0
    assert not ckpt_tmp.exists() and not cache_tmp.exists()
    assert (cache / "manifest.json").is_file() and not list(out.rglob("*.tmp"))


# --- item 9 (cache): a damaged cache is one line, exit 2 ---------------------------------------------------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _pickled(path):
    n = len(np.load(path))
    np.save(path, np.array([{"x": i} for i in range(n)], dtype=object), allow_pickle=True)


def _short(path):
    np.save(path, np.load(path)[:-1])


def _manifest_file(cache, value):
    m = json.loads((cache / "manifest.json").read_text())
    m["files"]["relu1"] = value
    (cache / "manifest.json").write_text(json.dumps(m))


DAMAGE = {
    "truncated logits": lambda c: _truncate(c / "logits.npy"),
    "truncated activations": lambda c: _truncate(c / "act_relu1.npy"),
    "pickled labels": lambda c: _pickled(c / "labels.npy"),
    "pickled indices": lambda c: _pickled(c / "indices.npy"),
    "indices one short": lambda c: _short(c / "indices.npy"),
    "loss one short": lambda c: _short(c / "loss.npy"),
    "not an array": lambda c: (c / "loss.npy").write_bytes(b"not numpy at all"),
    "activations deleted": lambda c: (c / "act_relu1.npy").unlink(),
    "manifest path ../": lambda c: _manifest_file(c, "../../splits.json"),
    "manifest path absolute": lambda c: _manifest_file(c, str(c.parent.parent / "splits.json")),
    "manifest path symlink out": lambda c: (
        _manifest_file(c, "act_link.npy"),
        (c / "act_link.npy").symlink_to(c.parent.parent / "outside.npy"),
        np.save(c.parent.parent / "outside.npy", np.zeros((60, 1))),
    )[0],
}

NEEDLE = {
    "truncated logits": "truncated",
    "truncated activations": "truncated",
    "pickled labels": "Python objects",
    "pickled indices": "Python objects",
    "indices one short": "rows",
    "loss one short": "rows",
    "not an array": "not a .npy",
    "activations deleted": "missing",
    "manifest path ../": "outside the cache",
    "manifest path absolute": "outside the cache",
    "manifest path symlink out": "outside the cache",
}


@pytest.mark.parametrize("verb", ["extract", "fit"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_cache_is_refused_in_one_line(work, refused, damage, verb):
    data, out, cache = work
    DAMAGE[damage](cache)
    argv = (
        ["extract", "--taps", "relu1"]
        if verb == "extract"
        else ["fit", "--layer", "relu1", "--mint-epochs", "1", "--bootstrap", "0", "--allow-weak-model"]
    )
    line = refused([*argv, "--dataset", data, "--out", out, "--quiet"])
    assert NEEDLE[damage] in line and str(cache) in line
    assert "delete the folder" in line and "rerun extract" in line

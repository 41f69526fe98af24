"""Bad option values, config values and paths: one line, exit 2, nothing written (issue 13, items 9, 10, 15).

Every row fails before any training or extraction, so each table runs in seconds.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from mintaudit.cli import build_parser, main
from mintaudit.cli_args import apply_config as _apply_config
from mintaudit.errors import ConfigError

SIZES = ["--members", "20", "--external", "20", "--test", "20"]


def _npz(tmp_path, n=60, size=8):
    path = tmp_path / "data.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        np.savez(path, x=rng.integers(0, 256, (n, size, size), dtype=np.uint8), y=np.arange(n) % 3)
    return f"npz:{path}"


def _yaml(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def _argv(tmp_path, verb, out=None):
    """A command of ``verb`` on the tiny npz pool that would otherwise run (and write OUT)."""
    data, out = _npz(tmp_path), str(out or tmp_path / "run")
    return {
        "train": ["train", "--dataset", data, *SIZES, "--model", "tiny-cnn", "--epochs", "1", "--out", out],
        "sweep": ["sweep", "--dataset", data, *SIZES, "--out", out],
        "test": ["test", "--dataset", data, *SIZES, "--query", "heldout-members", "--method", "loss", "--out", out],
        "attack": ["attack", "--dataset", data, *SIZES, "--methods", "loss", "--out", out],
        "active train": ["active", "train", "--dataset", data, *SIZES, "--epochs", "1", "--out", out],
        "demo": ["demo", "--dataset", data, "--out", out],
        "factors": ["factors", "--profile", "tiny", "--out", out],
        "layers": ["layers", "tiny-cnn", "--dataset", data],
    }[verb] + ["--quiet"]


# --------------------------------------------------------------------------------------------
# item 9: option values out of range (command line)

OPTIONS = [
    ("train", ["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    ("train", ["--lr", "inf"], "--lr must be a finite number"),
    ("train", ["--lr", "0"], "--lr must be"),
    ("train", ["--lr", "abc"], "invalid float value: 'abc'"),
    ("train", ["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    ("train", ["--epochs", "0"], "--epochs must be a whole number in [1,"),
    ("train", ["--epochs", "2.5"], "invalid int value"),
    ("train", ["--batch-size", "0"], "--batch-size must be"),
    ("train", ["--seed", "-1"], "--seed must be a whole number in [0, 4294967295]"),
    ("train", ["--seed", str(2**32)], "--seed must be"),
    ("train", ["--members", "0"], "--members must be"),
    ("train", ["--image-size", "100000"], "--image-size must be a whole number in [1, 4096], got 100000"),
    ("layers", ["--image-size", "100000"], "--image-size must be"),
    ("layers", ["--image-size", "0"], "--image-size must be"),
    ("train", ["--epohcs", "3"], "unrecognized arguments: --epohcs"),
    ("sweep", ["--known-fraction", "1"], "--known-fraction must be a finite number in (0, 1), got 1.0"),
    ("sweep", ["--known-fraction", "0"], "--known-fraction must be"),
    ("sweep", ["--bootstrap", "-1"], "--bootstrap must be"),
    ("sweep", ["--mint-epochs", "0"], "--mint-epochs must be"),
    ("sweep", ["--detector", "svm"], "invalid choice: 'svm'"),
    ("test", ["--fdr", "0"], "--fdr must be a finite number in (0, 1]"),
    ("test", ["--fdr", "1.5"], "--fdr must be a finite number in (0, 1], got 1.5"),
    ("test", ["--alpha", "1.5"], "--alpha must be"),
    ("test", ["--alpha", "nan"], "--alpha must be"),
    ("attack", ["--reference", "0"], "--reference must be"),
    ("attack", ["--reference-epochs", "0"], "--reference-epochs must be"),
    ("attack", ["--rmia-a", "2"], "--rmia-a must be a finite number in [0, 1]"),
    ("attack", ["--batch-size", "-3"], "--batch-size must be"),
    ("active train", ["--lr", "nan"], "--lr must be"),
    ("active train", ["--weight-decay", "-1"], "--weight-decay must be"),
    ("active train", ["--mint-grad-scale", "2"], "--mint-grad-scale must be"),
    ("active train", ["--lambda-mint", "0"], "--lambda-mint must be"),
    ("active train", ["--lambda-task", "-1"], "--lambda-task must be"),
    ("active train", ["--patience", "-1"], "--patience must be"),
    ("active train", ["--val-members", "0"], "--val-members must be"),
    ("active train", ["--val-external", "0"], "--val-external must be"),
    ("demo", ["--epochs", "0"], "--epochs must be"),
    ("factors", ["--bootstrap", "-1"], "--bootstrap must be"),
    ("factors", ["--seed", "-5"], "--seed must be"),
]


@pytest.mark.parametrize(("verb", "extra", "expect"), OPTIONS, ids=[f"{v} {' '.join(e)}" for v, e, _ in OPTIONS])
def test_option_value_out_of_range_is_one_line(refused, tmp_path, verb, extra, expect):
    line = refused(_argv(tmp_path, verb) + extra)
    assert expect in line


# --------------------------------------------------------------------------------------------
# items 9 and 10: config values get the type argparse gives the option; item 15: YAML errors in one line

CONFIG = [
    ("train", "epochs: [1, 2]\n", "epochs must be a whole number, got a list [1, 2]"),
    ("train", "epochs: 2.5\n", "epochs must be a whole number, got 2.5"),
    ("train", "epochs: '1x'\n", "epochs must be a whole number, got '1x'"),
    ("train", "weight_decay: -1\n", "weight-decay must be a finite number >= 0"),
    ("train", "model: null\n", "model is empty (null)"),
    ("train", "model: [tiny-cnn, objcls-cnn]\n", "model must be a single value"),
    ("train", "model: {name: tiny-cnn}\n", "model must be a single value"),
    ("train", "model: true\n", "model must be a string, got the boolean true"),
    ("train", "batch_size: true\n", "batch_size must be a whole number, got the boolean true"),
    ("train", "batch-size: 0\n", "batch-size must be"),
    ("train", 'resume: "no"\n', "resume must be true or false"),
    ("train", "resume: 1\n", "resume must be true or false"),
    ("train", 'debug: "yes"\n', "debug must be true or false"),
    ("train", "lr: [0.1]\n", "lr must be a number"),
    ("train", "lr: .nan\n", "lr must be a finite number > 0, got nan"),
    ("train", "lr: fast\n", "lr must be a number, got 'fast'"),
    ("train", "seed: 4294967296\n", "seed must be a whole number in [0, 4294967295]"),
    ("train", "image-size: 100000\n", "image-size must be"),
    ("train", "epoch: 3\n", "unknown option(s) epoch for 'train'; did you mean epochs?"),
    ("train", "config: other.yaml\n", "cannot name another --config"),
    ("train", "epochs: [1\n", "c.yaml, line 2, column 1: expected ',' or ']'"),
    ("train", "epochs: 1\n  lr: 2\n", "c.yaml, line 2, column"),
    ("train", "- epochs\n", "not a mapping"),
    (
        "train",
        "epochs: !!python/object/apply:os.system [echo]\n",
        "c.yaml, line 1, column 9: could not determine a constructor",
    ),
    ("train", "epochs: 1\x00\n", "unacceptable character #x0000"),
    ("train", "epochs: 1\n\tlr: 2\n", "c.yaml, line 2, column 1"),
    ("sweep", "detector: svm\n", "detector must be one of auto, mlp, cnn, got 'svm'"),
    ("sweep", "known-fraction: 1.5\n", "known-fraction must be"),
    ("attack", "fixed-variance: maybe\n", "fixed-variance must be one of auto, yes, no"),
    ("test", "fdr: 0\n", "fdr must be"),
    ("active train", "backbone-arg: {dropout: 0}\n", "backbone-arg must be a single value"),
    ("layers", "model_ref: tiny-cnn\n", "MODEL is given on the command line"),
]


@pytest.mark.parametrize(("verb", "text", "expect"), CONFIG, ids=[f"{v}: {t.strip()}" for v, t, _ in CONFIG])
def test_config_value_of_the_wrong_type_is_one_line(refused, tmp_path, verb, text, expect):
    line = refused(_argv(tmp_path, verb) + ["--config", _yaml(tmp_path, text)])
    assert expect in line
    assert "c.yaml" in line  # the message names the file


def test_config_values_get_the_type_argparse_gives():
    parser = build_parser()

    def parse(text, *argv, verb=("train",)):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(text)
        try:
            return _apply_config(parser, [*verb, "--config", f.name, *argv])[0]
        finally:
            os.unlink(f.name)

    args = parse("lr: 1e-3\nepochs: 2.0\nseed: '7'\nmodel: tiny-cnn\nresume: false\nweight_decay: 0\n")
    assert args.lr == 0.001 and isinstance(args.lr, float)  # YAML 1.1 reads 1e-3 as a string; argparse as a float
    assert args.epochs == 2 and isinstance(args.epochs, int) and args.seed == 7 and args.resume is False
    assert isinstance(args.weight_decay, float)
    assert parse("epochs: 2\n", "--epochs", "3").epochs == 3  # the command line wins
    assert parse("fixed-variance: no\n", verb=("attack",)).fixed_variance == "no"  # YAML's boolean no
    assert parse("layer: 3\n", verb=("fit",)).layer == "3"
    args = parse("backbone-arg: [dropout=0, width=2]\n", verb=("active", "train"))
    assert args.backbone_arg == ["dropout=0", "width=2"]
    assert parse("resume: true\n").resume is True


def test_debug_true_in_the_config_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _yaml(tmp_path, "debug: true\nlr: .nan\n")
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        main(_argv(tmp_path, "train") + ["--config", cfg])
    cfg = _yaml(tmp_path, "debug: true\n")
    with pytest.raises(ConfigError, match="--weight-decay must be"):
        main(_argv(tmp_path, "train") + ["--config", cfg, "--weight-decay", "-1"])


# --------------------------------------------------------------------------------------------
# item 9: paths


def _file(tmp_path, name="afile"):
    path = tmp_path / name
    path.write_text("not a directory\n")
    return path


def _dir(tmp_path, name="adir"):
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    return path


def _query(tmp_path):
    """active query on an (irrelevant) model folder and one existing image file."""
    return ["active", "query", str(_dir(tmp_path, "model")), str(_file(tmp_path, "a.png"))]


PATHS = [
    ("out is a file", lambda t: _argv(t, "train", out=str(_file(t))), "is a file, not a directory"),
    ("out under a file", lambda t: _argv(t, "train", out=str(_file(t) / "run")), "which is a file"),
    ("sweep out is a file", lambda t: _argv(t, "sweep", out=str(_file(t))), "is a file"),
    ("active out under a file", lambda t: _argv(t, "active train", out=str(_file(t) / "x")), "which is a file"),
    ("factors out is a file", lambda t: _argv(t, "factors", out=str(_file(t))), "is a file"),
    (
        "splits is a directory",
        lambda t: _argv(t, "train") + ["--splits", str(_dir(t))],
        "--splits '%s' is a directory, not a file",
    ),
    ("splits does not exist", lambda t: _argv(t, "train") + ["--splits", str(t / "splits.jsno")], "does not exist"),
    (
        "weights is a directory",
        lambda t: _argv(t, "sweep") + ["--model", "tiny-cnn", "--weights", str(_dir(t))],
        "--weights '%s' is a directory",
    ),
    ("data-root does not exist", lambda t: _argv(t, "layers") + ["--data-root", str(t / "nowhere")], "does not exist"),
    ("data-root is a file", lambda t: _argv(t, "layers") + ["--data-root", str(_file(t))], "is a file"),
    ("config is a directory", lambda t: _argv(t, "train") + ["--config", str(_dir(t))], "is a directory"),
    ("config does not exist", lambda t: _argv(t, "train") + ["--config", str(t / "c.yml")], "does not exist"),
    ("query --csv DIR", lambda t: _query(t) + ["--csv", str(_dir(t))], "--csv '%s' is a directory; give a file name"),
    ("query --json DIR", lambda t: _query(t) + ["--json", str(_dir(t))], "--json '%s' is a directory"),
    ("query --csv under a file", lambda t: _query(t) + ["--csv", str(_file(t) / "a.csv")], "is a file"),
    ("report of a folder with no report.json", lambda t: ["report", str(_dir(t))], "report.json' does not exist"),
]


@pytest.mark.parametrize(("make", "expect"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS])
def test_bad_path_is_one_line_before_anything_is_written(refused, tmp_path, make, expect):
    argv = make(tmp_path)
    line = refused(argv)
    assert (expect % (tmp_path / "adir") if "%s" in expect else expect) in line


def test_unwritable_out_is_one_line(refused, tmp_path):
    locked = _dir(tmp_path, "locked")
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod does not stop this process from writing")
        line = refused(_argv(tmp_path, "train", out=locked / "run"))
        assert "permission denied" in line and str(locked) in line
    finally:
        os.chmod(locked, 0o700)


# --------------------------------------------------------------------------------------------
# item 9: a --query file of indices that overflow int64 or are not integers


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("1" * 31 + "\n", "holds index 1111111111111111111111111111111; the pool has 60 samples"),
        ("3\n-" + "9" * 25 + "\n", "the pool has 60 samples"),
        ("3\n--5\n", "'--5' is not a sample index"),
        ("3\n\u00b2\n", "is not a sample index"),  # a superscript two: isdigit() but not int()
    ],
    ids=["31 digits", "-25 digits", "double minus", "superscript"],
)
def test_query_file_with_impossible_indices(refused, tmp_path, text, expect):
    from mintaudit.data import load_dataset, make_splits

    data = _npz(tmp_path)
    make_splits(load_dataset(data), members=20, external=20, test=20).save(tmp_path / "run" / "splits.json")
    (tmp_path / "idx.txt").write_text(text, encoding="utf-8")
    line = refused(
        [
            "test",
            "--dataset",
            data,
            "--out",
            str(tmp_path / "run"),
            "--query",
            str(tmp_path / "idx.txt"),
            "--method",
            "loss",
            "--quiet",
        ]
    )
    assert expect in line


def test_out_of_memory_is_one_line(refused, monkeypatch):
    from mintaudit import workdir

    def huge(*args, **kwargs):
        raise MemoryError("Unable to allocate 16.3 TiB for an array")

    monkeypatch.setattr(workdir, "describe_layers", huge)
    line = refused(["layers", "tiny-cnn", "--dataset", "digits", "--image-size", "4096"])
    assert "out of memory" in line and "16.3 TiB" in line and "--image-size" in line

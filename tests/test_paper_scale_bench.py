"""``benchmarks/paper_scale.py``: its sizes, options and plain answer (the run itself is a benchmark, not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def paper():
    sys.path.insert(0, str(BENCH))  # the script imports _bench as a sibling, as it does when run
    try:
        spec = importlib.util.spec_from_file_location("paper_scale_bench", BENCH / "paper_scale.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_the_full_run_has_the_papers_mnist_sizes_and_20000_known_members(paper):
    sizes = paper.split_sizes(quick=False)
    assert sizes == {"members": 25000, "external": 35000, "test": 10000}
    args = paper.parse_args([])
    assert round(args.known_fraction * sizes["members"]) == 20000
    assert sizes["members"] + sizes["external"] <= 60000 and sizes["test"] <= 10000  # Fashion-MNIST's parts
    assert args.work == "/tmp/mintaudit-paper-scale" and args.threads == 2 and args.target_accuracy == 0.99


def test_quick_is_smaller_and_works_in_its_own_folder(paper):
    assert paper.split_sizes(quick=True) == {"members": 5000, "external": 10000, "test": 5000}
    args = paper.parse_args(["--quick", "--threads", "1"])
    assert args.work == "/tmp/mintaudit-paper-scale-quick" and args.threads == 1
    assert paper.parse_args(["--work", "x"]).work == "x"


@pytest.mark.parametrize("bad", [["--threads", "0"], ["--known-fraction", "1"], ["--target-accuracy", "0"]])
def test_bad_options_are_refused(paper, bad, capsys):
    with pytest.raises(SystemExit) as e:
        paper.parse_args(bad)
    assert e.value.code == 2 and "must" in capsys.readouterr().err


def test_the_answer_is_plain_either_way(paper):
    assert paper.answer(0.70, 20000).startswith("Yes: with 20,000 known members")
    no = paper.answer(0.55, 20000)
    assert no.startswith("No: with 20,000 known members") and "0.170 below the published 0.72" in no


def test_the_tap_modes_keep_l7_full_and_pool_the_conv_taps(paper):
    from mintaudit.signals import parse_tap_modes

    default, per = parse_tap_modes(paper.TAP_MODE)
    assert default == "pooled" and per == {"fc_relu": "full"}
    assert paper.TAPS.split(",") == ["block1.relu2", "block2.relu2", "block3.relu2", "fc_relu"]

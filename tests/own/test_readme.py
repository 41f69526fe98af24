"""The README's and the tutorials' marked Python blocks run as written (on digits, a few seconds each).

A block marked ``<!-- readme-test: NAME -->`` right above a ```` ```python ```` fence is executed
here; every marked block in README.md and docs/tutorials/*.md must have a test below.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "tutorials").glob("*.md"))]
_MARKED = re.compile(r"<!-- readme-test: ([\w-]+) -->\n```python\n(.*?)```", re.S)
#: The marked blocks these tests execute, by page (relative to the repository root).
EXECUTED = {
    "README.md": {"audit"},
    "docs/tutorials/own-model.md": {"own-model"},
    "docs/tutorials/amint-loop.md": {"amint-loop"},
}


def _block(name: str, page: str = "README.md") -> str:
    text = (ROOT / page).read_text()
    found = {m.group(1): m.group(2) for m in _MARKED.finditer(text)}
    assert name in found, f"{page} has no python block marked readme-test: {name}"
    return found[name]


def _run(name: str, page: str) -> dict:
    scope: dict = {}
    exec(compile(_block(name, page), f"{page}:{name}", "exec"), scope)  # noqa: S102 - our own docs
    return scope


@pytest.fixture
def own_model_path(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "own_model"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("model", None)


def test_every_marked_block_is_executed_by_a_test():
    marked = {}
    for page in PAGES:
        names = [m.group(1) for m in _MARKED.finditer(page.read_text())]
        assert len(names) == len(set(names)), f"{page.name}: a block name is used twice"
        if names:
            marked[page.relative_to(ROOT).as_posix()] = set(names)
    assert marked == EXECUTED


@pytest.mark.parametrize("page, name", [("README.md", "audit"), ("docs/tutorials/own-model.md", "own-model")])
def test_audit_example_runs(own_model_path, capsys, page, name):
    result = _run(name, page)["result"]
    assert result.check.members_accuracy > 0.9 and result.check.test_accuracy > 0.8
    assert {r.method for r in result.rows} == {"passive-mint", "loss"}
    assert (own_model_path / "runs/own-api/report.json").is_file()
    assert (own_model_path / "runs/own-api/report.html").is_file()
    assert result.report["model"]["preprocess"]["applied_by"].startswith("the caller")


def test_amint_loop_tutorial_runs_two_epochs(own_model_path, capsys):
    scope = _run("amint-loop", "docs/tutorials/amint-loop.md")
    meta = scope["meta"]
    assert meta["backbone"]["name"] == "model:build" and meta["input"]["mean"] == [0.0]
    probs = scope["torch"].sigmoid(scope["membership"])
    assert probs.shape == (4,) and bool(((probs > 0) & (probs < 1)).all())

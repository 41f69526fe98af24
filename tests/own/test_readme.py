"""The README's "Audit your own model" examples run as written (on digits, a few seconds each)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- readme-test: {re.escape(name)} -->\n```python\n(.*?)```", text, re.S)
    assert m, f"README.md has no python block marked readme-test: {name}"
    return m.group(1)


@pytest.fixture
def own_model_path(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "own_model"))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("model", None)


def test_readme_audit_example_runs(own_model_path, capsys):
    scope: dict = {}
    exec(compile(_block("audit"), "README.md:audit", "exec"), scope)  # noqa: S102 - our own README
    result = scope["result"]
    assert result.check.members_accuracy > 0.9 and result.check.test_accuracy > 0.8
    assert {r.method for r in result.rows} == {"passive-mint", "loss"}
    assert (own_model_path / "runs/own-api/report.json").is_file()
    assert (own_model_path / "runs/own-api/report.html").is_file()
    assert result.report["model"]["preprocess"]["applied_by"].startswith("the caller")


def test_readme_amint_loop_example_runs_two_epochs(own_model_path, capsys):
    scope: dict = {}
    exec(compile(_block("amint-loop"), "README.md:amint-loop", "exec"), scope)  # noqa: S102
    meta = scope["meta"]
    assert meta["backbone"]["name"] == "model:build" and meta["input"]["mean"] == [0.0]
    probs = scope["torch"].sigmoid(scope["membership"])
    assert probs.shape == (4,) and bool(((probs > 0) & (probs < 1)).all())

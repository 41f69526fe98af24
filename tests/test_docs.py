"""The docs' generated pages and the files they are generated from (``make docs`` builds the site itself)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks():
    return _load(ROOT / "docs" / "hooks.py", "mintaudit_docs_hooks")


def test_the_cli_page_has_every_verb_of_the_parser(hooks):
    from mintaudit.cli_args import build_parser

    page = hooks._gen_cli().render()
    verbs = [a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"][0].choices
    for verb in verbs:
        assert f"## mintaudit {verb}\n" in page
    assert "## mintaudit active train\n" in page and "usage: mintaudit active train" in page


def test_the_config_page_lists_the_options_of_each_verb(hooks):
    page = hooks._gen_cli().render_config()
    sweep = page.split("## sweep\n", 1)[1].split("\n## ", 1)[0]
    assert "| `tap-budget` |" in sweep and "| `fusion` | `none` \\| `outputs` \\| `both` |" in sweep
    assert "| `config` |" not in page and "| `help` |" not in page


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.stem)
def test_each_result_file_says_where_its_figures_come_from(path):
    doc = json.loads(path.read_text())
    assert doc["schema"] == "mintaudit/benchmark@1" and doc["benchmark"] == path.stem
    assert doc["figures"] and re.fullmatch(r"[0-9a-f]{7,12}(-dirty)?", doc["commit"])
    assert doc["date"] and doc["machine"] and doc["command"].startswith("python benchmarks/")
    script = doc["command"].split()[1]
    assert (ROOT / script).is_file(), f"{path.name} names {script}, which does not exist"


def test_the_benchmark_page_renders_every_result(hooks, tmp_path):
    (tmp_path / "b.json").write_text(
        json.dumps(
            {
                "schema": "mintaudit/benchmark@1",
                "benchmark": "b",
                "figures": {"auc": 0.61234, "layer": "L7", "missing": None},
                "details": {"summary": "a summary", "tables": ["| a |\n|---|\n| 1 |"]},
                "commit": "abc1234",
                "date": "2026-12-07",
                "machine": "x",
                "command": "python benchmarks/b.py",
            }
        )
    )
    page = hooks.render_results(tmp_path)
    assert "## b\n" in page and "| `auc` | 0.6123 |" in page and "| `missing` | n/a |" in page
    assert "**a summary**" in page and "| a |" in page and "written by the script" in page
    real = hooks.render_results()
    assert all(f"## {p.stem}\n" in real for p in RESULTS.glob("*.json"))


def test_the_readme_fits_a_screen_and_its_links_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for link in re.findall(r"\]\(((?:docs/|[A-Z]+\.md)[^)#]*)", text):
        assert (ROOT / link).is_file(), f"README.md links to {link}, which does not exist"


def test_every_page_in_the_nav_exists():
    nav = re.findall(r":\s+([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert len(nav) >= 20
    missing = [p for p in nav if not (ROOT / "docs" / p).is_file()]
    assert not missing

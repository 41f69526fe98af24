"""mkdocs hooks: pages generated at build time from the code and the committed results.

- ``reference/cli.md``: every verb's ``--help``, rendered from the parser (``docs/gen_cli.py``).
- ``reference/config.md``: every verb's YAML keys, from the same parser.
- ``benchmarks.md``: one section per ``benchmarks/results/*.json`` (written by
  ``benchmarks/_bench.py``'s ``emit_result``, or transcribed from older RESULT lines).

Nothing is fetched; the hook reads files of this repository only.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MARK_CLI = "<!-- generated: cli -->"
MARK_BENCH = "<!-- generated: benchmarks -->"
MARK_CONFIG = "<!-- generated: config -->"


def _gen_cli():
    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    spec = importlib.util.spec_from_file_location("mintaudit_docs_gen_cli", Path(__file__).with_name("gen_cli.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _value(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_results(folder: Path = RESULTS) -> str:
    """Markdown for every result file, sorted by name: provenance, figures, setup and tables."""
    parts = []
    for path in sorted(folder.glob("*.json")):
        doc = json.loads(path.read_text())
        details = doc.get("details") or {}
        parts.append(f"## {doc.get('benchmark', path.stem)}\n")
        origin = "transcribed from an earlier RESULT line" if doc.get("transcribed") else "written by the script"
        parts.append(
            f"`{doc.get('command') or 'n/a'}`  \n"
            f"commit `{doc.get('commit') or 'n/a'}`, {doc.get('date') or 'n/a'}, {doc.get('machine') or 'n/a'}"
            f"{', torch ' + str(doc['torch']) if doc.get('torch') else ''}; {origin} "
            f"(`benchmarks/results/{path.name}`).\n"
        )
        if details.get("summary"):
            parts.append(f"**{details['summary']}**\n")
        if details.get("setup"):
            parts.append(f"Setup: {details['setup']}\n")
        figures = doc.get("figures") or {}
        if figures:
            parts.append("| figure | value |\n|---|---|")
            parts.append("\n".join(f"| `{k}` | {_value(v)} |" for k, v in figures.items()) + "\n")
        for table in details.get("tables") or []:
            if isinstance(table, str):
                parts.append(table.strip() + "\n")
    if not parts:
        return "No result files yet: run a script in `benchmarks/`.\n"
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:
    src = page.file.src_path.replace("\\", "/")
    if src == "reference/cli.md" and MARK_CLI in markdown:
        return markdown.replace(MARK_CLI, _gen_cli().render())
    if src == "reference/config.md" and MARK_CONFIG in markdown:
        return markdown.replace(MARK_CONFIG, _gen_cli().render_config())
    if src == "benchmarks.md" and MARK_BENCH in markdown:
        return markdown.replace(MARK_BENCH, render_results())
    return markdown

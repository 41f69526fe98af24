"""Run a how-to page's one Python block and compare what it prints with what the page says it prints."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def run_page(relative: str, capsys) -> None:
    """Execute ``docs/<relative>``'s single ```` ```python ```` block; its output must equal the page's "It prints `...`"."""
    page = DOCS / relative
    text = page.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, f"{relative}: expected one Python block, found {len(blocks)}"
    exec(compile(blocks[0], str(page), "exec"), {"__name__": "docs_example"})  # noqa: S102 - our own page
    printed = capsys.readouterr().out.strip()
    said = re.search(r"It prints `([^`]*)`", text).group(1)
    assert printed == said

"""docs/howto/references.md: its Python block (LiRA and RMIA with the user's recipe) runs and prints what the page says."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "howto" / "references.md"


def test_the_references_page_runs(capsys):
    text = PAGE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(PAGE), "exec"), {"__name__": "docs_example"})  # noqa: S102 - our own page
    printed = capsys.readouterr().out.strip()
    said = re.search(r"It prints `([^`]*)`", text).group(1)
    assert printed == said

"""docs/howto/references.md: its Python block (LiRA and RMIA with the user's recipe) runs and prints what the page says."""

from __future__ import annotations

from docpages import run_page


def test_the_references_page_runs(capsys):
    run_page("howto/references.md", capsys)

"""docs/howto/python-inputs.md: its Python block runs as written and prints what the page says."""

from __future__ import annotations

from docpages import run_page


def test_the_python_inputs_page_runs(capsys):
    run_page("howto/python-inputs.md", capsys)

"""Reports: the ``mintaudit/report@1`` JSON document, its HTML page and its terminal table."""

from mintaudit.report.html import render_html
from mintaudit.report.schema import (
    METHODS,
    PROTOCOLS,
    SCHEMA,
    Method,
    Protocol,
    add_result,
    load_report,
    new_report,
    write_report,
)
from mintaudit.report.terminal import format_table

__all__ = [
    "METHODS",
    "PROTOCOLS",
    "SCHEMA",
    "Method",
    "Protocol",
    "add_result",
    "format_table",
    "load_report",
    "new_report",
    "render_html",
    "write_report",
]

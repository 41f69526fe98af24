"""Reports: the ``mintaudit/report@2`` JSON document (typed: ``Report`` and its sections), its HTML page and its terminal table."""

from mintaudit.report.document import Report
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
from mintaudit.report.sections import Section, register_section
from mintaudit.report.terminal import format_table

__all__ = [
    "METHODS",
    "PROTOCOLS",
    "SCHEMA",
    "Method",
    "Protocol",
    "Report",
    "Section",
    "add_result",
    "format_table",
    "load_report",
    "new_report",
    "register_section",
    "render_html",
    "write_report",
]

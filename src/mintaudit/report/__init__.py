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
from mintaudit.report.merge import add_verdict, check_record, merge_into, merge_rows, query_digest
from mintaudit.report.schema import set_verdict
from mintaudit.report.verdict_text import blind_text, share_text, verdict_check_lines
from mintaudit.report.factors_html import factor_plots, render_factors_html


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
    "add_verdict",
    "check_record",
    "merge_into",
    "merge_rows",
    "query_digest",
    "set_verdict",
    "blind_text",
    "share_text",
    "verdict_check_lines",
    "factor_plots",
    "render_factors_html",
]

"""The report's sections: the :class:`Section` base, its registry, and the built-ins (DP, blind baseline, slices).

A new section is one file (a ``@register_section`` dataclass, see :mod:`mintaudit.report.sections.base`)
plus one template partial (``report/templates/sections/<name>.html.j2``, or ``template_source``).
"""

from mintaudit.report.sections.base import (
    ReportView,
    Section,
    UnknownSection,
    register_section,
    registered_sections,
    section_class,
    section_from_dict,
    section_template,
    set_section,
    unregister_section,
)
from mintaudit.report.sections.dp import DpSection, dp_audit_of, set_dp_audit
from mintaudit.report.sections.blind import BlindSection
from mintaudit.report.sections.slices import SlicesSection

__all__ = [
    "BlindSection",
    "DpSection",
    "ReportView",
    "Section",
    "SlicesSection",
    "UnknownSection",
    "dp_audit_of",
    "register_section",
    "registered_sections",
    "section_class",
    "section_from_dict",
    "section_template",
    "set_dp_audit",
    "set_section",
    "unregister_section",
]

"""The one Jinja2 environment of the HTML pages: templates in ``report/templates``, autoescaping on.

The environment is made on first use (nothing happens at import time) and kept. Templates hold
the markup; the code hands them plain data (strings and already formatted numbers). The only
values output unescaped are :class:`markupsafe.Markup` ones, which the page code makes from the
SVG strings that :mod:`mintaudit.report.svg` builds with its own escaping.
"""

from __future__ import annotations

import functools
import html
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["render_page"]


def _as_html(value: Any) -> Any:
    """Every ``{{ value }}`` as escaped text, with the entities of :func:`html.escape` (``&#x27;``, ``&quot;``).

    Autoescaping would escape it too, with markupsafe's entities (``&#39;``, ``&#34;``); escaping here
    keeps the pages byte for byte what they were before templates (reports compared by text stay equal).
    Markup (macro output, the SVG plots) passes unchanged.
    """
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value)))


def _plugin_source(name: str) -> str | None:
    """The markup of a registered section's partial given as ``template_source`` (a section outside the package)."""
    from mintaudit.report.sections import registered_sections, section_template

    for cls in registered_sections():
        if cls.template_source is not None and section_template(cls) == name:
            return cls.template_source
    return None


def _section_partial(name: str) -> tuple[str, None, Any] | None:
    source = _plugin_source(name)
    if source is None:
        return None
    return source, None, lambda: _plugin_source(name) == source  # reloaded when the registry changes it


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.FunctionLoader(_section_partial), jinja2.PackageLoader("mintaudit.report", "templates")]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_as_html,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(template: str, **data: Any) -> str:
    """Render ``report/templates/<template>`` with ``data``; a missing value raises (StrictUndefined)."""
    return _environment().get_template(template).render(**data)

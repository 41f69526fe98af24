"""The typed report (schema ``mintaudit/report@2``): metadata, rows, verdicts and sections by name.

``report.json`` stays a JSON document that every reader of ``mintaudit/report@1`` can read: the
metadata (``created``, ``dataset``, ``model``, ``config``, ``command``, any other top-level key),
``results``, ``verdict`` and ``verdicts`` are where they were. What is new is ``"sections"``: one
entry per part of the report, each ``{"name", "version", ...}`` (:mod:`mintaudit.report.sections`).

Reading a ``mintaudit/report@1`` document converts it: its top-level ``dp_audit`` becomes the
``dp`` section; the blind baseline (in each verdict) and the slices (in each row) stay with the
verdict or row they belong to, so the one merge rule replaces them together, and their sections
gather them at each write.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from mintaudit.errors import CorruptFileError
from mintaudit.report.sections import (  # the package: its built-in sections registered
    Section,
    UnknownSection,
    registered_sections,
    section_class,
    section_from_dict,
)

__all__ = ["SCHEMA", "SCHEMA_V1", "SCHEMAS", "Report", "upgrade"]

SCHEMA = "mintaudit/report@2"
SCHEMA_V1 = "mintaudit/report@1"
SCHEMAS: tuple[str, ...] = (SCHEMA_V1, SCHEMA)
"""The schemas :meth:`Report.from_dict` reads; it always writes :data:`SCHEMA`."""

# report@1's top-level fields that became sections: field -> (section name, the section's field)
_V1_FIELDS = {"dp_audit": ("dp", "audit")}
_TOP = ("schema", "results", "verdict", "verdicts", "sections")


@dataclasses.dataclass
class Report:
    """A report: ``meta`` (every top-level key but the ones below, in order), ``rows`` (``results``),
    ``verdict`` (the latest), ``verdicts`` (every kept one; None when the document had no such list)
    and ``sections`` by name (:class:`~mintaudit.report.sections.Section`, or ``UnknownSection`` kept as read).
    """

    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    verdict: dict[str, Any] | None = None
    verdicts: list[dict[str, Any]] | None = None
    sections: dict[str, Section | UnknownSection] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, where: str = "report.json") -> Report:
        """Read a report@2 document, a report@1 one (converted), or one a writer is building (no schema yet).

        Raises:
            CorruptFileError: another schema, or a ``sections`` entry that cannot be read.
        """
        if not isinstance(doc, Mapping):
            raise CorruptFileError(f"{where}: a report must be a JSON object; given {type(doc).__name__}")
        schema = doc.get("schema")
        if schema is not None and schema not in SCHEMAS:
            raise CorruptFileError(
                f"{where} has schema {schema!r}, expected one of {list(SCHEMAS)}; "
                "load it with the mintaudit version that wrote it, or regenerate it"
            )
        meta = {k: copy.deepcopy(v) for k, v in doc.items() if k not in _TOP}
        stored = doc.get("sections") or {}
        if not isinstance(stored, Mapping):
            raise CorruptFileError(f"{where}: 'sections' must be a dict of name -> section; regenerate it")
        sections = {str(n): section_from_dict(str(n), d, where=where) for n, d in stored.items()}
        for field, (name, attr) in _V1_FIELDS.items():  # report@1 (or a dict built the @1 way): a section now
            if doc.get(field) is not None and not isinstance(sections.get(name), UnknownSection):
                sc = section_class(name)
                if sc is not None:
                    sections[name] = sc.from_dict({attr: meta.pop(field)})
        verdicts = doc.get("verdicts")
        report = cls(
            meta=meta,
            rows=[copy.deepcopy(r) for r in doc.get("results") or []],
            verdict=copy.deepcopy(doc.get("verdict")),
            verdicts=copy.deepcopy(list(verdicts)) if isinstance(verdicts, list) else None,
            sections=sections,
        )
        report.gather()
        return report

    def gather(self) -> None:
        """Let every registered section gather its data from the rows, verdicts and metadata (see ``Section.gather``)."""
        for sc in registered_sections():
            stored = self.sections.get(sc.name)
            if isinstance(stored, UnknownSection):
                continue  # a newer version: kept as read
            found = sc.gather(self, stored)
            if found is None:
                self.sections.pop(sc.name, None)
                continue
            extra = getattr(stored, "extra_keys_", None)
            if extra and found is not stored and not hasattr(found, "extra_keys_"):
                found.extra_keys_ = extra  # type: ignore[attr-defined]  # a later writer's keys: kept
            self.sections[sc.name] = found

    def to_dict(self) -> dict[str, Any]:
        """The ``mintaudit/report@2`` document (a deep copy): report@1's fields where they were, plus ``sections``."""
        self.gather()
        meta = copy.deepcopy(self.meta)
        head = {k: meta.pop(k) for k in ("created", "mintaudit_version", "dataset", "model") if k in meta}
        doc: dict[str, Any] = {"schema": SCHEMA, **head, "results": copy.deepcopy(self.rows)}
        doc["verdict"] = copy.deepcopy(self.verdict)
        if self.verdicts is not None:
            doc["verdicts"] = copy.deepcopy(self.verdicts)
        doc.update(meta)
        doc["sections"] = {name: s.to_dict() for name, s in self.sections.items()}
        return doc

    def shown(self) -> Iterator[Section]:
        """The registered sections this report holds, in page order (what the page includes)."""
        for sc in registered_sections():
            s = self.sections.get(sc.name)
            if isinstance(s, Section):
                yield s

    @property
    def dataset(self) -> dict[str, Any]:
        d = self.meta.get("dataset")
        return d if isinstance(d, dict) else {}

    @property
    def model(self) -> dict[str, Any]:
        m = self.meta.get("model")
        return m if isinstance(m, dict) else {}

    @property
    def kept_verdicts(self) -> list[dict[str, Any]]:
        """Every kept verdict (a report of the earlier layout: its one ``verdict``), oldest first."""
        kept = [v for v in self.verdicts or [] if isinstance(v, dict)]
        if not kept and isinstance(self.verdict, dict):
            kept = [self.verdict]
        return kept


def upgrade(doc: Mapping[str, Any], *, where: str = "report.json") -> dict[str, Any]:
    """``doc`` (report@1, report@2, or a report being built) as a ``mintaudit/report@2`` document."""
    return Report.from_dict(doc, where=where).to_dict()

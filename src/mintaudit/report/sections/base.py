"""A part of the report as a typed value: the :class:`Section` base, its registry, and the sections kept unread.

A section is one dataclass (its data, written under ``report.json``'s ``"sections"`` as
``{"name", "version", **fields}``) plus one template partial (the markup the page includes for
it). Adding one is one file::

    @register_section
    @dataclass
    class Canaries(Section):
        name: ClassVar[str] = "canaries"
        template_source: ClassVar[str | None] = "<section><h2>Canaries</h2><p>{{ s.view.n }}</p></section>"
        n: int = 0

The page includes, in ``order``, the partial of every registered section the report holds (or
gathers, see :meth:`Section.gather`); the partial reads its data as ``s.view``. A section of a
name no registered class has, or of a newer version than the registered one, is kept as an
:class:`UnknownSection`: written back as it was read, never dropped, not shown.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Protocol

from mintaudit.errors import CorruptFileError, EvaluationError

__all__ = [
    "ReportView",
    "Section",
    "UnknownSection",
    "register_section",
    "registered_sections",
    "section_class",
    "section_from_dict",
    "section_template",
    "set_section",
    "unregister_section",
]

_REGISTRY: dict[str, type[Section]] = {}


class ReportView(Protocol):
    """What a section reads of the report (:class:`mintaudit.report.document.Report` has it)."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    verdict: dict[str, Any] | None

    @property
    def model(self) -> dict[str, Any]: ...

    @property
    def kept_verdicts(self) -> list[dict[str, Any]]: ...


@dataclasses.dataclass
class Section:
    """One part of the report: a name, a version, typed data and the template partial that shows it.

    Class attributes (set by each subclass):
        name: its key under ``report.json``'s ``"sections"`` (lowercase, ``a-z0-9_-``).
        version: the layout of its data; a reader keeps a newer version it cannot read unread.
        template: the partial, relative to ``report/templates`` (default ``sections/<name>.html.j2``).
        template_source: the partial's markup itself, for a section defined outside the package.
        place: ``"front"`` (with the answer, before the data and model) or ``"details"`` (folded below).
        order: the position among the sections of its place (lower first).
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    template: ClassVar[str | None] = None
    template_source: ClassVar[str | None] = None
    place: ClassVar[Literal["front", "details"]] = "details"
    order: ClassVar[int] = 100

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "version", **fields}``: what ``report.json`` holds for it (a deep copy).

        Keys read by :meth:`from_dict` that are not fields (added by a later writer of the same
        version) are written back too: a rewrite loses nothing.
        """
        fields = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        extra = copy.deepcopy(getattr(self, "extra_keys_", {}))
        return {**extra, "name": self.name, "version": self.version, **fields}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Section:
        """The section from its ``to_dict()``; other keys are kept aside (``extra_keys_``) and written back."""
        known = {f.name for f in dataclasses.fields(cls)}
        section = cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in known})
        extra = {k: copy.deepcopy(v) for k, v in data.items() if k not in known and k not in ("name", "version")}
        if extra:
            section.extra_keys_ = extra  # type: ignore[attr-defined]
        return section

    @classmethod
    def gather(cls, report: ReportView, stored: Section | None) -> Section | None:
        """The section of ``report``, given the one stored in it (None when it stores none).

        The default keeps the stored one. A section whose data live in the rows or verdicts (slices,
        the blind baseline) gathers them here at each write, so it never disagrees with them.
        """
        return stored

    def view(self, report: ReportView) -> Mapping[str, Any] | None:
        """What its partial shows (``s.view``), or None to show nothing. Default: its ``to_dict()``."""
        return self.to_dict()


@dataclasses.dataclass
class UnknownSection:
    """A section this version cannot read (an unregistered name or a newer version): kept verbatim on rewrite."""

    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("name"))

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


def register_section(cls: type[Section]) -> type[Section]:
    """Register a :class:`Section` subclass (a class decorator); a later class of the same name replaces it.

    Raises:
        EvaluationError: ``cls`` is not a dataclass subclass of Section, or its name or version is invalid.
    """
    if not (isinstance(cls, type) and issubclass(cls, Section) and "__dataclass_fields__" in vars(cls)):
        raise EvaluationError(f"register_section takes a @dataclass subclass of Section; given {cls!r}")
    name = cls.name
    if not (isinstance(name, str) and name and all(c.islower() or c.isdigit() or c in "_-" for c in name)):
        raise EvaluationError(f"a section's name must be lowercase letters, digits, '_' or '-'; given {name!r}")
    if not (isinstance(cls.version, int) and cls.version >= 1):
        raise EvaluationError(f"section {name!r}: version must be an integer >= 1; given {cls.version!r}")
    if cls.place not in ("front", "details"):
        raise EvaluationError(f"section {name!r}: place must be 'front' or 'details'; given {cls.place!r}")
    _REGISTRY[name] = cls
    return cls


def unregister_section(name: str) -> type[Section] | None:
    """Remove the class registered as ``name`` (a plug-in's or a test's); return it, or None when there was none."""
    return _REGISTRY.pop(name, None)


def set_section(report: dict[str, Any], section: Section) -> None:
    """Store ``section`` in a report document (``report["sections"][name]``, changed in place), replacing its namesake."""
    report.setdefault("sections", {})[section.name] = section.to_dict()


def registered_sections() -> list[type[Section]]:
    """Every registered section class, in page order (place, then ``order``, then registration)."""
    ranked = list(enumerate(_REGISTRY.values()))
    ranked.sort(key=lambda ic: (ic[1].place != "front", ic[1].order, ic[0]))
    return [c for _, c in ranked]


def section_class(name: str) -> type[Section] | None:
    """The registered class of ``name``, or None."""
    return _REGISTRY.get(name)


def section_template(cls: type[Section]) -> str:
    """The template name of ``cls``'s partial."""
    return cls.template or f"sections/{cls.name}.html.j2"


def section_from_dict(name: str, data: Any, *, where: str = "report.json") -> Section | UnknownSection:
    """Read one entry of ``"sections"``: the registered class's value, else an :class:`UnknownSection`.

    Raises:
        CorruptFileError: the entry is not a dict, or its version is not an integer >= 1.
    """
    if not isinstance(data, Mapping):
        raise CorruptFileError(
            f"{where}: sections[{name!r}] must be a dict; given {type(data).__name__}; regenerate it"
        )
    version = data.get("version")
    if not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
        raise CorruptFileError(
            f"{where}: sections[{name!r}]['version'] must be an integer >= 1; given {version!r}; regenerate it"
        )
    entry = {**copy.deepcopy(dict(data)), "name": name}
    cls = _REGISTRY.get(name)
    if cls is None or version > cls.version:
        return UnknownSection(entry)
    try:
        return cls.from_dict(entry)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(f"{where}: sections[{name!r}] cannot be read ({exc}); regenerate it") from None

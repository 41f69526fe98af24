"""report@2: the typed report and its sections (a new one from one file, report@1 converted, unknown ones kept)."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from mintaudit import protocols
from mintaudit.errors import CorruptFileError, EvaluationError
from mintaudit.report import Report, Section, format_table, load_report, register_section, render_html, write_report
from mintaudit.report.document import SCHEMA, SCHEMA_V1, upgrade
from mintaudit.report.merge import merge_reports
from mintaudit.report.sections import BlindSection, DpSection, UnknownSection, set_section, unregister_section


@dataclasses.dataclass
class Canaries(Section):
    """A section as a plug-in writes it: a dataclass and its partial, in this one file."""

    name: ClassVar[str] = "canaries-test"
    place: ClassVar[Literal["front", "details"]] = "front"
    template_source: ClassVar[str | None] = (
        '<section id="canaries"><h2>Canaries</h2><p>{{ s.view.n }} canaries: {{ s.view.note }}</p></section>\n'
    )

    n: int = 0
    note: str = ""


@pytest.fixture
def canaries():
    register_section(Canaries)
    yield Canaries
    unregister_section(Canaries.name)


def _raw(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_a_section_from_one_file_reaches_report_json_and_html(canaries, audit_report, tmp_path) -> None:
    set_section(audit_report, Canaries(n=7, note="<b>hand-set</b>"))
    write_report(audit_report, tmp_path)
    doc = _raw(tmp_path / "report.json")
    assert doc["schema"] == SCHEMA
    assert doc["sections"]["canaries-test"] == {
        "name": "canaries-test",
        "version": 1,
        "n": 7,
        "note": "<b>hand-set</b>",
    }
    page = (tmp_path / "report.html").read_text()
    assert "7 canaries: &lt;b&gt;hand-set&lt;/b&gt;" in page  # its partial is autoescaped like the built-ins
    assert page.index('<section id="canaries">') < page.index("<h2>Data</h2>")  # place "front": before the data
    typed = Report.from_dict(load_report(tmp_path))
    assert typed.sections["canaries-test"] == Canaries(n=7, note="<b>hand-set</b>")
    assert [s.name for s in typed.shown()][:1] == ["canaries-test"]
    assert all(isinstance(s, protocols.Section) for s in typed.shown())  # the engine's protocol
    # without its class (an older mintaudit): kept as read, not shown
    unregister_section(Canaries.name)
    again = load_report(tmp_path)
    assert isinstance(Report.from_dict(again).sections["canaries-test"], UnknownSection)
    assert again["sections"]["canaries-test"] == doc["sections"]["canaries-test"]
    assert "canaries" not in render_html(again)


def _report_at_1(audit_report: dict[str, Any]) -> dict[str, Any]:
    """A report as mintaudit wrote it before report@2: top-level dp_audit, no sections, an extra key."""
    v1 = {k: v for k, v in copy.deepcopy(audit_report).items() if k != "sections"}
    v1["schema"] = SCHEMA_V1
    v1["model"]["dp"] = {"epsilon_spent": 0.8, "epsilon_target": 1.0, "delta": 1e-5, "accountant": "rdp"}
    v1["dp_audit"] = {"method": "loss", "m": 20, "correct": 2, "guesses": 2, "epsilon": 0.3, "delta": 1e-5}
    v1["dp_audit"].update(confidence=0.95, model={"dp": None}, file="audit-dp.json")
    v1["demo_verdicts"] = [{"query": "test", "reject": False}]
    return v1


def test_a_report_at_1_loads_and_is_written_as_at_2_with_nothing_lost(audit_report, tmp_path) -> None:
    v1 = _report_at_1(audit_report)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.json").write_text(json.dumps(v1))
    loaded = load_report(tmp_path / "old")
    assert loaded["schema"] == SCHEMA and "dp_audit" not in loaded
    assert {k: loaded[k] for k in v1 if k not in ("schema", "dp_audit")} == {
        k: v for k, v in v1.items() if k not in ("schema", "dp_audit")
    }  # results, verdict, verdicts, metadata and the unknown key where they were
    assert loaded["sections"]["dp"] == {"name": "dp", "version": 1, "audit": v1["dp_audit"]}
    blind = loaded["sections"]["blind"]["verdicts"]
    assert [b["blind"] for b in blind] == [v["blind"] for v in v1["verdicts"]]
    assert [b["method"] for b in blind] == ["loss", "rmia"]
    assert loaded["sections"]["slices"]["results"] and not loaded["sections"]["slices"]["missing"]
    assert list(loaded["sections"]) == ["dp", "blind", "slices"]
    write_report(loaded, tmp_path / "new")
    assert _raw(tmp_path / "new" / "report.json") == loaded  # written back as read: nothing added, nothing lost
    page = (tmp_path / "new" / "report.html").read_text()
    for words in (
        "Audited model (DP-SGD, rdp accountant)",
        "One-run canary audit (loss, 20 canaries",
        "<h2>Slices</h2>",
    ):
        assert words in page
    assert "<h2>Blind baseline</h2>" in page and "cannot tell the query from the null" in page
    assert "one-run audit (loss, 20 canaries): epsilon lower bound 0.300" in format_table(loaded)


def test_sections_are_included_only_when_the_report_has_them(audit_report) -> None:
    bare = {k: copy.deepcopy(v) for k, v in audit_report.items() if k not in ("verdict", "verdicts")}
    for row in bare["results"]:
        row.pop("slices", None)
    page = render_html(bare)
    assert "Differential privacy" not in page and "<h2>Slices</h2>" not in page and "Blind baseline" not in page
    assert upgrade(bare)["sections"] == {}
    full = render_html(audit_report)
    assert "Differential privacy" not in full and "<h2>Slices</h2>" in full and "Blind baseline" in full


def test_the_dp_section_gathers_the_claim_and_keeps_the_audit_through_a_merge(audit_report) -> None:
    old = upgrade(_report_at_1(audit_report))
    new = {k: copy.deepcopy(v) for k, v in old.items() if k not in ("results", "verdict", "verdicts", "sections")}
    merged = upgrade(merge_reports(old, {**new, "results": [], "sections": {}}))  # a later verb's own header
    assert merged["sections"]["dp"] == old["sections"]["dp"] and merged["sections"]["blind"] == old["sections"]["blind"]
    claim_only = upgrade({**new, "results": []})
    assert claim_only["sections"] == {"dp": {"name": "dp", "version": 1, "audit": None}}
    assert isinstance(Report.from_dict(claim_only).sections["dp"], DpSection)
    assert "Audited model (DP-SGD" in render_html(claim_only) and "One-run canary audit" not in render_html(claim_only)


def test_unknown_sections_are_kept_on_rewrite_and_merge(audit_report, tmp_path) -> None:
    doc = upgrade(audit_report)
    future = {"name": "future", "version": 3, "payload": [1, {"a": None}]}
    newer_dp = {"name": "dp", "version": 99, "claims": ["from a newer mintaudit"]}
    doc["sections"]["blind"]["note"] = "a field a later writer added"  # same version, one more key: kept too
    doc["sections"].update(future=future, dp=newer_dp)
    (tmp_path / "report.json").write_text(json.dumps(doc))
    loaded = load_report(tmp_path)
    assert loaded["sections"]["future"] == future and loaded["sections"]["dp"] == newer_dp
    write_report(loaded, tmp_path)
    rewritten = _raw(tmp_path / "report.json")
    assert rewritten["sections"]["future"] == future and rewritten["sections"]["dp"] == newer_dp
    assert rewritten["sections"]["blind"]["note"] == "a field a later writer added"
    assert "Differential privacy" not in (tmp_path / "report.html").read_text()  # a newer DP layout is not drawn
    header = {k: v for k, v in loaded.items() if k in ("schema", "dataset", "model", "config", "command")}
    merged = upgrade(merge_reports(loaded, {**header, "results": [], "sections": {}}))
    assert merged["sections"]["future"] == future and merged["sections"]["dp"] == newer_dp
    assert isinstance(Report.from_dict(merged).sections["blind"], BlindSection)


@pytest.mark.parametrize(
    ("sections", "words"),
    [
        ({"dp": [1]}, "sections['dp'] must be a dict"),
        ({"dp": {"name": "dp", "version": "1"}}, "sections['dp']['version'] must be an integer >= 1"),
        ([1, 2], "'sections' must be a dict"),
    ],
)
def test_a_broken_sections_entry_is_refused_in_one_line(refused, audit_report, tmp_path, sections, words) -> None:
    doc = {**upgrade(audit_report), "sections": sections}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text(json.dumps(doc))
    line = refused(["report", str(tmp_path / "run" / "report.json")])
    assert words in line and "regenerate it" in line
    with pytest.raises(CorruptFileError, match="report.json"):
        load_report(tmp_path / "run")


def test_register_section_refuses_what_it_cannot_show() -> None:
    class Plain(Section):  # not a dataclass
        name: ClassVar[str] = "plain"

    @dataclasses.dataclass
    class Shouting(Section):
        name: ClassVar[str] = "Shouting"

    @dataclasses.dataclass
    class Nowhere(Section):
        name: ClassVar[str] = "nowhere"
        place: ClassVar[Any] = "sidebar"

    for cls, words in ((Plain, "@dataclass subclass"), (Shouting, "lowercase"), (Nowhere, "place must be")):
        with pytest.raises(EvaluationError, match=words):
            register_section(cls)
    with pytest.raises(EvaluationError, match="subclass of Section"):
        register_section(dict)  # type: ignore[arg-type]

"""report.html leads with the answer: the verdict first, then the best method of each family, the details folded."""

from __future__ import annotations

import html
import re

import pytest

from mintaudit.report import render_html
from mintaudit.report._format import metric, result_names
from mintaudit.report.front_html import FAMILIES, families_view, family_of


def _sections(page: str) -> list[str]:
    """The top-level blocks of <main> in order: the class or id of each <section>, the summary of each fold."""
    main = page[page.index("<main>") : page.index("</main>")]
    blocks = re.findall(
        r'<section(?: class="([^"]*)")?(?: id="([^"]*)")?>(?:<h2>([^<]*)</h2>)?|'
        r'<details class="fold[^"]*"><summary><h2>([^<]*)</h2>',
        main,
    )
    return [f"fold:{fold}" if fold else (sid or title or cls) for cls, sid, title, fold in blocks]


def _first_section(page: str) -> str:
    start = page.index("<section")
    assert start == page.index('<section class="verdict" id="verdict">'), "the verdict is not the first section"
    return page[start : page.index('<section id="families">')]


def test_the_page_opens_with_the_verdict_then_the_families_then_the_folded_details(audit_report) -> None:
    order = _sections(render_html(audit_report))
    assert order[:2] == ["verdict", "families"]
    folds = [s for s in order if s.startswith("fold:")]
    assert folds == [
        "fold:How to read this",
        "fold:Results",
        "fold:Passive vs active MINT",
        "fold:ROC curves",
        "fold:Score distributions",
        "fold:Where in the model",
        "fold:Blind baseline",
        "fold:Slices",
        "fold:How this was made",
    ]
    assert order.index(folds[0]) > order.index("families")


def test_the_verdict_gives_the_answer_method_p_share_samples_and_blind_baseline(audit_report) -> None:
    v = audit_report["verdict"]
    assert v["conclusion"] == "evidence" and v["method"] == "rmia"  # the real checks ran (see conftest)
    first = _first_section(render_html(audit_report))
    latest = first[: first.index("Earlier verdicts")]
    facts = dict(re.findall(r"<tr><th>([^<]+)</th><td>(.*?)</td></tr>", latest))
    assert list(facts) == ["Question", "Method", "p-value", "Share used", "Samples needed", "Blind baseline"]
    assert latest.index('<span class="badge yes">Evidence of use</span>') < latest.index(v["sentence"][:60])
    assert "rmia" in facts["Method"] and "Method chosen: rmia, the best validation AUC" in facts["Method"]
    assert f"p = {v['p_value']:.3g} (n_null = 200)" in facts["p-value"]
    share = v["usage_share"]
    assert f"{100 * share['ci95'][0]:.1f}%, {100 * share['ci95'][1]:.1f}%]" in facts["Share used"]
    assert f"{v['samples_needed']['n']:,} members" in facts["Samples needed"]
    assert f"cross-validated AUC {v['blind']['auc']:.3f}" in facts["Blind baseline"]
    # every statistic stays, folded under the key figures
    evidence = latest[latest.index('<details class="evidence">') :]
    for text in ("Mann-Whitney U", "Exceedances", "Null reference", "Per sample", "<svg"):
        assert text in evidence, text


def test_earlier_verdicts_are_folded_under_the_latest(audit_report) -> None:
    first = _first_section(render_html(audit_report))
    earlier = first[first.index("Earlier verdicts") :]
    assert earlier.count('<details class="other">') == 1
    summary = re.search(r'<details class="other"><summary>(.*?)</summary>', earlier).group(1)
    assert summary == '<span class="badge no">No evidence of use</span> test (60 samples, loss)'
    assert html.escape(audit_report["verdicts"][0]["sentence"]) in earlier
    # one verdict only: no earlier ones
    audit_report["verdicts"] = audit_report["verdicts"][1:]
    assert "Earlier verdicts" not in render_html(audit_report)


def test_without_a_verdict_one_sentence_says_how_to_get_one(audit_report) -> None:
    audit_report["verdict"], audit_report["verdicts"] = None, []
    first = _first_section(render_html(audit_report))
    text = re.sub(r"<[^>]+>", "", first[first.index('<p class="verdict-text">') :])
    assert text.strip().startswith("No verdict yet: ") and text.count(". ") == 0
    # the report's own --out folder, quoted for the shell
    assert "<code>mintaudit test --out &#x27;runs/my audit&#x27; --query suspects.txt</code>" in first
    assert "badge none" in first and "badge yes" not in first and 'badge no"' not in first


@pytest.mark.parametrize("command", ["mintaudit sweep --out=runs/a", ["mintaudit", "demo"], None, "unbalanced 'quote"])
def test_the_hint_names_the_out_folder_when_the_command_has_one(audit_report, command) -> None:
    audit_report.update(verdict=None, verdicts=[], command=command)
    out = "runs/a" if command == "mintaudit sweep --out=runs/a" else "OUT"
    assert f"<code>mintaudit test --out {out} --query suspects.txt</code>" in render_html(audit_report)


def test_one_row_per_family_with_its_best_auc_and_intervals(audit_report) -> None:
    results = audit_report["results"]
    rows = families_view(results, result_names(results))
    assert [r["family"] for r in rows] == [f for f, _ in FAMILIES]
    by = {r["family"]: r for r in rows}
    # passive MINT: the better held-out tap, not the plain model's training-members row
    assert (by["Passive MINT"]["name"], by["Passive MINT"]["protocol"], by["Passive MINT"]["of"]) == (
        "L2",
        "heldout-members",
        3,
    )
    assert by["aMINT"]["protocol"] == "training-members" and by["gMINT"]["name"] == "G1"
    attacks = [r for r in results if family_of(r["method"]) == "Attacks"]
    best = max(attacks, key=lambda r: metric(r, "auc"))
    assert by["Attacks"]["name"] == best["label"] == "RMIA" and by["Attacks"]["of"] == 2
    assert by["Attacks"]["auc"]["value"] == f"{metric(best, 'auc'):.3f}"
    lo, hi = best["ci95"]["tpr_at_fpr"]["0.01"]
    assert by["Attacks"]["tpr"] == {"value": f"{metric(best, 'tpr_at_fpr', '0.01'):.3f}", "ci": f"[{lo:.3f}, {hi:.3f}]"}
    section = render_html(audit_report).split('<section id="families">')[1].split("</section>")[0]
    assert section.count("<tr><th>") == 5  # the header and four families
    assert "<b>RMIA</b>" in section and by["Attacks"]["tpr"]["ci"] in section


def test_families_skip_what_is_missing_and_rows_without_an_auc(audit_report) -> None:
    results = [r for r in audit_report["results"] if r["method"] in ("loss", "gmint")]
    next(r for r in results if r["method"] == "gmint")["metrics"]["auc"] = None  # the gMINT row has no AUC
    assert [r["family"] for r in families_view(results, result_names(results))] == ["Attacks"]
    assert families_view([], []) == []
    assert [family_of(m) for m in ("calibrated-mint", "gmint", "amint", "lira", "my-plugin", None)] == [
        "Passive MINT",
        "gMINT",
        "aMINT",
        "Attacks",
        "Attacks",
        "Attacks",
    ]


def test_the_details_keep_every_row_slice_plot_and_the_configuration(audit_report) -> None:
    page = render_html(audit_report)
    results = page[page.index("<summary><h2>Results</h2>") :].split("</details>")[0]
    assert results.count("<tr") == 1 + len(audit_report["results"])
    assert page.count("<svg") >= 1 + 2 + len(audit_report["results"])  # verdict, ROC per protocol, histograms
    assert "<summary>L1</summary>" in page and "class 2" in page  # slices
    made = page[page.index("<summary><h2>How this was made</h2>") :]
    assert "&quot;detector&quot;: &quot;cnn&quot;" in made and "mintaudit attack --out" in made


def test_hostile_strings_in_the_verdicts_and_the_hint_appear_only_escaped(audit_report) -> None:
    hostile = "<script>alert(1)</script>&\"'"
    audit_report["verdicts"][0]["query"]["source"] = hostile
    audit_report["verdicts"][0]["method"] = hostile
    audit_report["results"][-1]["label"] = hostile
    page = render_html(audit_report)
    assert "<script" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;") >= 3
    audit_report.update(verdict=None, verdicts=[], command=["mintaudit", "sweep", "--out", hostile])
    page = render_html(audit_report)
    assert "<script" not in page
    assert (
        "<code>mintaudit test --out &#x27;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#x27;&quot;&#x27;&quot;&#x27;"
        in page
    )

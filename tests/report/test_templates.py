"""The HTML pages come from Jinja2 templates with autoescaping: hostile strings appear only escaped."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mintaudit.evaluation import SampleInfo, evaluate_scores
from mintaudit.report import PROTOCOLS, add_result, new_report, render_html
from mintaudit.report.factors_html import render_factors_html

SCRIPT = "<script>alert(1)</script>"
QUOTES = "&\"'<>"  # every character HTML escapes
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_QUOTES = "&amp;&quot;&#x27;&lt;&gt;"  # html.escape's entities, as the pages had before templates


def _result(
    seed: int, *, method: str = "passive-mint", protocol: str = "heldout-members", sliced: bool = False, **extra: Any
) -> dict:
    rng = np.random.default_rng(seed)
    m, n = rng.normal(0.3 * seed, 1, 200), rng.normal(0, 1, 200)
    info = {}
    if sliced:
        info = {
            "member_info": SampleInfo(rng.integers(0, 3, 200), rng.random(200) < 0.8),
            "nonmember_info": SampleInfo(rng.integers(0, 3, 200), rng.random(200) < 0.8),
        }
    ev = evaluate_scores(m, n, threshold=0.1 * seed, n_bootstrap=20, seed=seed, **info)
    signal = "activations" if method in ("passive-mint", "amint") else "outputs"
    return {"method": method, "signal": signal, "protocol": protocol, **extra, **ev.to_dict()}


def full_report(name: str = "toy", layer: str = "net.2", command: str = "mintaudit sweep --out 'a b'") -> dict:
    """A report with every section: verdict, results of both protocols, aMINT vs passive, slices, bounds."""
    r = new_report(
        dataset={"name": name, "members": 200, "seed": 0, "classes": [0, 1]},
        model={"name": "mlp", "task_accuracy": 0.9, "note": None},
        config={"detector": "mlp", "epochs": 2, "layer": layer},
        command=command,
    )
    for depth in (1, 2, 3):
        add_result(
            r,
            _result(
                depth, layer=layer if depth == 2 else f"net.{depth}", depth=depth, label=f"L{depth}", detector="mlp"
            ),
        )
    add_result(r, _result(2, method="loss", label=layer, sliced=True))
    add_result(
        r,
        _result(
            3, protocol="training-members", audited_model="plain", setup="middle", aud=0.8, layer=layer, detector="mlp"
        ),
    )
    add_result(
        r,
        _result(
            4,
            method="amint",
            protocol="training-members",
            layer=layer,
            label="aMINT middle",
            setup="middle",
            audited_model="amint",
            mint_grad_scale=0.5,
            aud=0.78,
            calibrated_accuracy=0.7,
            calibrated_accuracy_ci95=[0.65, 0.75],
            detector="amint-head",
        ),
    )
    r["results"][0]["epsilon_lower_bound"] = {**r["results"][0]["epsilon_lower_bound"], "note": f"why {layer}"}
    from mintaudit.evaluation import dataset_test, sample_decisions

    rng = np.random.default_rng(0)
    q, null = rng.normal(1, 1, 50), rng.normal(size=300)
    v = dataset_test(q, null).to_dict()
    v.update(
        method="passive-mint",
        signal="activations",
        layer=layer,
        detector="mlp",
        query={"source": "heldout-members", "description": f"members {name}", "n": 50},
        null_reference={"source": f"non-members of {name}", "n": 300},
        per_sample={**sample_decisions(q, null).to_dict(), "csv": f"{name}.csv"},
        error_rate=f"rate {name}",
        assumption=f"assume {name}",
    )
    r["verdict"] = v
    return r


def factors_doc(name: str = "toy", tap: str = "relu1", command: str = "mintaudit factors --out 'a b'") -> dict:
    """A ``mintaudit/factors@1`` document as the study writes it (two factors, aMINT on one), made by hand."""
    rows, effects = [], []
    for factor, values, base in (("epochs", [1, 2, 4], 2), ("augment", [False, True], False)):
        for i, v in enumerate(values):
            amint = factor == "epochs"
            rows.append(
                {
                    "factor": factor,
                    "value": v,
                    "is_base": v == base,
                    "key": f"{tap}-{factor}-{i}",
                    "members": 100 + i,
                    "task_accuracy": 0.8 + 0.02 * i,
                    "train_accuracy": 0.9 + 0.02 * i,
                    "gap": 0.1,
                    "passive_tap": tap,
                    "passive_val_auc": 0.6 + 0.01 * i,
                    "passive_auc": 0.6 + 0.05 * i,
                    "passive_auc_ci95": [0.55 + 0.05 * i, 0.65 + 0.05 * i],
                    "passive_tpr_at_1pct_fpr": 0.02 * i,
                    "passive_tpr_ci95": [0.0, 0.04 * i],
                    "loss_auc": 0.55 + 0.03 * i,
                    "loss_auc_ci95": [0.5, 0.6 + 0.03 * i],
                    "loss_tpr_at_1pct_fpr": 0.01,
                    "loss_tpr_ci95": None,
                    "amint_auc": 0.7 + 0.05 * i if amint else None,
                    "amint_auc_ci95": [0.65, 0.8] if amint else None,
                    "amint_tpr_at_1pct_fpr": 0.1 if amint else None,
                    "amint_tpr_ci95": None,
                    "trained_now": i == 0,
                }
            )
        effects.append(
            {
                "factor": factor,
                "from": values[0],
                "to": values[-1],
                "passive_delta_auc": 0.1,
                "passive_delta_auc_ci95": [0.02, 0.18],
                "loss_delta_auc": -0.01,
                "loss_delta_auc_ci95": None,
                **({"amint_delta_auc": 0.1} if factor == "epochs" else {}),
                "task_delta_accuracy": 0.04,
                "gap_delta": 0.0,
                "passive_direction": "increase" if factor == "epochs" else "unclear",
                "sentence": f"Taking it from low to high on {name}.",
            }
        )
    return {
        "schema": "mintaudit/factors@1",
        "mintaudit_version": "0.1.0",
        "created": "2026-12-01T00:00:00Z",
        "model": f"model {name}",
        "dataset": {"name": name, "classes": 10, "members": [1, 2]},
        "base": {"epochs": 2, "dropout": 0.25, "augment": False},
        "protocol": {
            "passive": f"passive on {name}",
            "best_tap": f"best tap {tap}",
            "loss": "loss",
            "amint": f"amint {name}",
            "effect_interval": "paired bootstrap",
        },
        "rows": rows,
        "effects": effects,
        "runs": {"models": 4, "trained": ["a"], "member_epochs": 12, "seconds": 3.5},
        "config": {"profile": "tiny", "note": name},
        "command": command,
    }


def _text_outside_svg(page: str) -> str:
    return re.sub(r"<svg.*?</svg>", "", page, flags=re.S)


@pytest.mark.parametrize(
    "render",
    [
        lambda s: render_html(full_report(s, s, f"mintaudit {s}")),
        lambda s: render_factors_html(factors_doc(s, s, f"mintaudit {s}")),
    ],
    ids=["report", "factors"],
)
def test_hostile_strings_appear_only_escaped(render) -> None:
    page = render(SCRIPT + QUOTES)
    assert "<script" not in page and QUOTES not in page
    assert page.count(ESCAPED_SCRIPT + ESCAPED_QUOTES) >= 5  # title, dataset name, command, config, table ...
    # in the markup outside the plots, every '<' opens a tag we wrote and every '&' starts an entity
    text = _text_outside_svg(page)
    assert not re.search(r"<(?![a-zA-Z/!])", text)
    assert not re.search(r"&(?![a-zA-Z]+;|#x?[0-9a-fA-F]+;)", text)
    # the title is escaped once, not twice
    assert re.search(f"<title>[^<]*{re.escape(ESCAPED_SCRIPT)}", page) and "&amp;lt;script" not in page


def test_every_protocol_is_explained() -> None:
    guide = render_html(new_report(dataset={}, model={}, config={}, command="x"))
    for protocol in PROTOCOLS:
        assert f"<li><b>{protocol}</b>: " in guide


def test_templates_ship_with_the_package() -> None:
    import mintaudit.report

    folder = Path(mintaudit.report.__file__).parent / "templates"
    assert {p.name for p in folder.glob("*.j2")} >= {"base.html.j2", "report.html.j2", "factors.html.j2"}
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"report/templates/*.j2"' in pyproject and '"jinja2>=3.1"' in pyproject


def test_no_hand_placed_escape_in_the_page_code() -> None:
    import mintaudit.report.factors_html as factors_html
    import mintaudit.report.html as html

    assert "escape(" not in Path(html.__file__).read_text()
    # factors_html keeps html.escape only inside its SVG axis (SVG is built as text, like svg.py)
    source = Path(factors_html.__file__).read_text()
    assert source.count("escape(") == 1 and "_CSS" not in source


def test_html_and_schema_import_one_way() -> None:
    import ast

    import mintaudit.report.html as html

    imported = {n.module for n in ast.walk(ast.parse(Path(html.__file__).read_text())) if isinstance(n, ast.ImportFrom)}
    assert "mintaudit.report.schema" not in imported and "mintaudit.report" not in imported

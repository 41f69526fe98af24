"""The factors study's effects: the change from a factor's lowest to its highest setting, with a bootstrap interval.

Part of :mod:`mintaudit.studies.factors`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mintaudit.evaluation import auc_score
from mintaudit.studies.factors.config import FACTOR_TEXT, FactorsConfig, value_text

__all__ = ["factor_effect"]


def _delta_ci(
    lo: dict[str, np.ndarray], hi: dict[str, np.ndarray], prefix: str, n_bootstrap: int, seed: int
) -> tuple[float, list[float] | None, bool]:
    """(AUC(hi) - AUC(lo), its 95% percentile bootstrap interval, paired?) from per-sample scores.

    Members and non-members are resampled separately; a side whose sample ids are the same at
    both points is resampled once for both (paired), otherwise each point's is resampled on its own.
    """

    def auc(m: np.ndarray, n: np.ndarray) -> float:
        return auc_score(np.r_[np.ones(len(m)), np.zeros(len(n))], np.r_[m, n])

    lm, ln, hm, hn = (d[f"{prefix}_{side}"] for d in (lo, hi) for side in ("members", "nonmembers"))
    point = auc(hm, hn) - auc(lm, ln)
    same_m = np.array_equal(lo["member_ids"], hi["member_ids"])
    same_n = np.array_equal(lo["nonmember_ids"], hi["nonmember_ids"])
    if n_bootstrap == 0:
        return point, None, same_m and same_n
    rng = np.random.default_rng([seed, 4])
    deltas = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        im = rng.integers(0, len(lm), len(lm))
        jm = im if same_m else rng.integers(0, len(hm), len(hm))
        i_n = rng.integers(0, len(ln), len(ln))
        jn = i_n if same_n else rng.integers(0, len(hn), len(hn))
        deltas[b] = auc(hm[jm], hn[jn]) - auc(lm[im], ln[i_n])
    lo_q, hi_q = np.percentile(deltas, [2.5, 97.5])
    return point, [float(lo_q), float(hi_q)], same_m and same_n


def factor_effect(
    factor: str, rows: list[dict[str, Any]], scores: dict[str, dict[str, np.ndarray]], config: FactorsConfig
) -> dict[str, Any]:
    lo, hi = rows[0], rows[-1]
    out: dict[str, Any] = {"factor": factor, "from": lo["value"], "to": hi["value"]}
    for name, prefix in (("passive", "mint"), ("loss", "loss")):
        a, b = lo[f"{name}_auc"], hi[f"{name}_auc"]
        _, ci, paired = _delta_ci(scores[lo["key"]], scores[hi["key"]], prefix, config.n_bootstrap, config.seed)
        out[f"{name}_delta_auc"] = b - a
        out[f"{name}_delta_auc_ci95"] = ci
        out[f"{name}_from_auc"], out[f"{name}_to_auc"] = a, b
        out["paired"] = paired
        out[f"{name}_direction"] = _direction(ci)
    if lo.get("amint_auc") is not None and hi.get("amint_auc") is not None:
        out["amint_delta_auc"] = hi["amint_auc"] - lo["amint_auc"]
        out["amint_overlap"] = _overlap(lo.get("amint_auc_ci95"), hi.get("amint_auc_ci95"))
    out["task_delta_accuracy"] = hi["task_accuracy"] - lo["task_accuracy"]
    out["gap_delta"] = hi["gap"] - lo["gap"]
    out["sentence"] = _sentence(out)
    return out


def _direction(ci: list[float] | None) -> str:
    if ci is None:
        return "unknown"
    return "increase" if ci[0] > 0 else "decrease" if ci[1] < 0 else "unclear"


def _overlap(a: Any, b: Any) -> bool | None:
    if not (isinstance(a, list) and isinstance(b, list) and all(np.isfinite(a + b))):
        return None
    return not (a[1] < b[0] or b[1] < a[0])


def _sentence(e: dict[str, Any]) -> str:
    f = e["factor"]
    name = FACTOR_TEXT[f][0]
    a, b = value_text(f, e["from"]), value_text(f, e["to"])
    d, ci = e["passive_delta_auc"], e["passive_delta_auc_ci95"]
    verb = {"increase": "raised", "decrease": "lowered"}.get(e["passive_direction"])
    change = f"{verb} passive-MINT AUC by {abs(d):.3f}" if verb else f"changed passive-MINT AUC by {d:+.3f}"
    text = f"Taking {name} from {a} to {b} {change} ({e['passive_from_auc']:.3f} to {e['passive_to_auc']:.3f}"
    if ci is not None:
        text += f"; 95% bootstrap interval of the difference {ci[0]:+.3f} to {ci[1]:+.3f})"
        text += {"increase": ": a clear increase.", "decrease": ": a clear decrease."}.get(
            e["passive_direction"], ": the interval includes 0, so no clear effect at this sample size."
        )
    else:
        text += "; no interval: bootstrap off)."
    lci = e["loss_delta_auc_ci95"]
    text += f" The LOSS attack moved by {e['loss_delta_auc']:+.3f}"
    text += f" ({lci[0]:+.3f} to {lci[1]:+.3f})." if lci is not None else "."
    text += f" Task accuracy moved by {e['task_delta_accuracy']:+.3f} and the train-test gap by {e['gap_delta']:+.3f}."
    if "amint_delta_auc" in e:
        ov = e.get("amint_overlap")
        how = (
            ""
            if ov is None
            else (" (the two AUC intervals overlap)" if ov else " (the two AUC intervals do not overlap)")
        )
        text += f" aMINT AUC moved by {e['amint_delta_auc']:+.3f}{how}."
    return text

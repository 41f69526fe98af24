"""Verdicts: "were these samples used to train this model?" (``mintaudit test``), per sample and for the set."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mintaudit._io import atomic_write_json
from mintaudit.data import ImageDataset, Splits, null_split
from mintaudit.errors import ConfigError
from mintaudit.preprocess import DEFAULT_PREPROCESS
from mintaudit.models import model_fingerprint
from mintaudit.passive import SweepConfig, audit_tap, mint_scores, passive_split
from mintaudit.report import load_report, write_report
from mintaudit.signals import extract_signals, plan_tap_modes
from mintaudit.taps import select_layers

from mintaudit.attacks import ATTACKS
from mintaudit.workdir.audit import detector_protocol
from mintaudit.workdir.choice import choose_default, score_attack
from mintaudit.workdir.model import model_spec, report_for, resolve_model
from mintaudit.workdir.query import QUERY_ROLES, resolve_query
from mintaudit.workdir.verdict_checks import add_verdict_checks

__all__ = ["QUERY_ROLES", "null_split", "verdict"]


@dataclasses.dataclass(frozen=True)
class _Case:
    """What every scoring path of one verdict shares: the work directory, the data, the query, the null, the options."""

    out: Path
    ds: ImageDataset
    splits: Splits
    config: SweepConfig
    command: list[str] | None
    q_ds: ImageDataset
    q_ids: np.ndarray
    q_info: dict[str, Any]
    null_idx: np.ndarray
    fdr: float
    alpha: float
    decision: str
    null_fraction: float


@dataclasses.dataclass(frozen=True)
class _Scored:
    """One method's side of a verdict: the model it scored with, what it is (``about``), and its scores."""

    net: nn.Module
    name: str
    info: dict[str, Any]
    about: dict[str, Any]
    q_scores: np.ndarray
    null_scores: np.ndarray
    member_ids: np.ndarray  # held-out members, for the checks (usage share, samples needed)
    member_scores: np.ndarray


_NULL_SOURCE = (
    "non-member test samples: a seeded half of the test split, never used to train the model, fit the "
    "MINT model, choose its layer or set a threshold"
)


def verdict(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    query: str,
    method: str | None = None,
    layer: str | None = None,
    fuse_outputs: bool = False,
    fdr: float = 0.05,
    alpha: float = 0.05,
    decision: str = "mann-whitney",
    model: str | None = None,
    weights: str | None = None,
    config: SweepConfig | None = None,
    null_fraction: float = 0.5,
    command: list[str] | None = None,
    show_progress: bool | None = None,
    allow_weak_model: bool = False,
    setup: str = "middle",
    query_header: bool = False,
) -> dict[str, Any]:
    """Were the ``query`` samples, or some of them, used to train the audited model? Test it and write the verdict.

    The query's membership scores are compared with a *null reference*: a seeded half of the
    non-member test split (:func:`null_split`), never used to fit the MINT model, choose its
    layer or set a threshold, and never overlapping the query (refused). Each query sample gets
    a conformal p-value and flags under Benjamini-Hochberg at ``fdr`` and at the plain level
    ``alpha``; the whole set gets the dataset-level test
    (:func:`mintaudit.evaluation.dataset_test`) and its one-sentence verdict. Valid when query
    samples that are not members are exchangeable with the null reference.

    Writes ``OUT/verdict.csv`` (sample_id, score, p_value, flagged_bh, flagged_alpha, n_null),
    the verdict into ``OUT/report.json`` (made when missing) and ``OUT/report.html``.

    Args:
        query: ``heldout-members`` (members the MINT model never saw: a positive control),
            ``test`` (the test split's non-null half: a negative control), a file of pool
            indices (``.txt`` / ``.csv``, one per line, first column; or ``.npy``), or new
            samples as ``npz:PATH`` / ``folder:PATH`` (same image shape and classes).
        method: ``passive-mint`` (a MINT model on ``layer``), ``loss`` (minus the loss), any
            attack of the registry (:data:`mintaudit.attacks.ATTACKS`: ``rmia``, ``lira``, ...;
            its scores as ``mintaudit attack`` computes them, from the reference models it
            cached; never trained here) or ``amint`` (the membership probability of the
            delivered aMINT model ``OUT/amint/<setup>``; ``heldout-members`` are then training
            members its head saw, as in the published protocol). Default (``None``, no
            ``layer``): the row of the report with the best *validation* AUC, measured on the
            auditor's own data only (:func:`~mintaudit.workdir.choice.choose_method`); the
            verdict's ``choice`` records it, its candidates and their validation AUCs.
        layer: the passive-MINT tap (name, index, glob) or ``outputs`` (output signals only);
            implies ``method="passive-mint"``; default: chosen as above.
        fuse_outputs: with an explicit ``layer``, also feed the output signals.
        fdr, alpha, decision: see :func:`~mintaudit.evaluation.sample_decisions` and
            :func:`~mintaudit.evaluation.dataset_test`.
        config: the passive split and MINT model options (same as the sweep's, so the saved
            or refitted MINT model is the one the sweep measured).
        null_fraction: the share of the test split forming the null reference.
        setup: with ``amint``, which delivered model (the folder name under ``OUT/amint``).
        query_header: the first line of a query file of indices is a header (else every line is read).

    Returns:
        The verdict dict stored as ``report["verdict"]``.
    """
    from mintaudit.evaluation import DECISIONS

    config = config or SweepConfig()
    if method is not None and method not in ("passive-mint", "amint") and method not in ATTACKS:
        raise ConfigError(f"--method must be passive-mint, amint or an attack ({', '.join(ATTACKS)}); given {method!r}")
    if method is None and layer is not None:
        method = "passive-mint"
    if decision not in DECISIONS:
        raise ConfigError(f"--decision must be one of {', '.join(DECISIONS)}; given {decision!r}")
    if not (0.0 < fdr <= 1.0 and 0.0 < alpha < 1.0):
        raise ConfigError(f"--fdr must lie in (0, 1] and --alpha in (0, 1); given {fdr} and {alpha}; e.g. 0.05")
    if method not in (None, "passive-mint") and (layer is not None or fuse_outputs):
        raise ConfigError(f"--layer and --fuse-outputs apply to --method passive-mint only; drop them for {method}")
    if layer is None and fuse_outputs:
        raise ConfigError("--fuse-outputs needs --layer; without --layer the report's best result decides")
    out = Path(out_dir)
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    null_idx, test_pool = null_split(splits, fraction=null_fraction, seed=config.seed)
    q_ds, q_ids, q_info = resolve_query(query, ds, split, test_pool, header=query_header)
    _refuse_overlap(
        q_ds,
        q_ids,
        ds,
        null_idx,
        "the null reference",
        "the null must never contain query samples; use --query test for non-members outside it",
    )
    case = _Case(out, ds, splits, config, command, q_ds, q_ids, q_info, null_idx, fdr, alpha, decision, null_fraction)
    if method == "amint":
        from mintaudit.active import membership_scores
        from mintaudit.workdir.amint import load_delivered

        if model is not None or weights is not None:
            raise ConfigError("--model and --weights do not apply to --method amint; it reads OUT/amint/SETUP")
        amodel, meta = load_delivered(out, ds, splits, setup)
        _refuse_overlap(
            q_ds,
            q_ids,
            ds,
            splits.external,
            "the external samples the aMINT head was trained on",
            "their scores are pushed towards 'non-member'; query other samples",
        )
        if q_info["source"] == "heldout-members":
            q_info = {
                **q_info,
                "description": "training members; the aMINT head was trained on them too (the "
                "published protocol): a positive control",
            }
        about = {
            "method": "amint",
            "signal": "activations",
            "layer": "+".join(meta["taps"]),
            "detector": f"amint-head ({setup})",
        }
        null_scores, q_scores = membership_scores(amodel, ds, null_idx), membership_scores(amodel, q_ds, q_ids)
        scored = _Scored(
            amodel.backbone,
            meta["backbone"]["name"],
            {},
            about,
            q_scores=q_scores,
            null_scores=null_scores,
            member_ids=split.heldout_members,
            member_scores=membership_scores(amodel, ds, split.heldout_members),
        )
        return _finish_verdict(dataclasses.replace(case, q_info=q_info), scored)
    net, name, info = resolve_model(
        out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model
    )
    report_path = out / "report.json"
    report = load_report(report_path) if report_path.is_file() else {"results": []}
    attack_done: dict[str, Any] = {}
    if method is None:
        method, layer_name, choice, attack_done = choose_default(
            out,
            net,
            ds,
            splits,
            split,
            report,
            other_data=q_ds is not ds,
            model=model,
            weights=weights,
            show_progress=show_progress,
        )
        fuse = layer_name is None or choice["signal"] == "activations+outputs"
    else:
        choice = {"chosen": method, "given": True, "sentence": f"Method given with --method {method}."}
    if method not in ("passive-mint", "loss"):  # a registry attack
        return _attack_verdict(
            case, net, name, info, split, report, method, choice, attack_done.get(method), model, weights, show_progress
        )
    if method == "passive-mint":
        _refuse_overlap(
            q_ds,
            q_ids,
            ds,
            np.concatenate([split.known_members, split.external]),
            "the MINT model's training data (known members and external samples)",
            "their scores say nothing about membership; query other samples, or use --method loss",
        )
    if choice.get("given"):
        layer_name, fuse = _verdict_layer(out, net, layer, fuse_outputs) if method == "passive-mint" else (None, False)
    layers = [layer_name] if layer_name is not None else []
    base_idx = np.unique(split.all_indices())
    # the tap is stored as the sweep stored it (same --tap-mode / --tap-budget): a cache of another mode is not reused
    modes = plan_tap_modes(net, ds, base_idx, layers, config.tap_mode, config.tap_budget, config.dtype)
    store = {
        "batch_size": config.batch_size,
        "dtype": config.dtype,
        "show_progress": show_progress,
        "tap_mode": modes or None,
        "tap_budget": config.tap_budget,
    }
    cache = _find_cache(out / "cache", net, ds, layers, base_idx, modes) or extract_signals(
        net, ds, base_idx, layers, out / "cache", **store
    )  # type: ignore[arg-type]
    if q_ds is not ds:
        q_cache = extract_signals(net, q_ds, q_ids, layers, out / "cache", **store)  # type: ignore[arg-type]
    elif np.isin(q_ids, cache.indices).all():
        q_cache = cache
    else:
        q_cache = _find_cache(out / "cache", net, ds, layers, q_ids, modes) or extract_signals(
            net, ds, np.sort(q_ids), layers, out / "cache", **store
        )  # type: ignore[arg-type]

    if method == "loss":

        def score(c: Any, ids: np.ndarray) -> np.ndarray:  # in float64 from the logits: no ties at zero loss
            from mintaudit.attacks import loss_scores

            o, rows = c.outputs(), c.rows(ids)
            return loss_scores(o["logits"][rows].astype(np.float64), o["labels"][rows])

        about = {"method": "loss", "signal": "outputs", "layer": "outputs", "detector": "none (minus the loss)"}
    else:
        det = _verdict_detector(out, net, ds, splits, split, cache, layer_name, fuse, config, show_progress)

        def score(c: Any, ids: np.ndarray) -> np.ndarray:
            return mint_scores(det, c, layer_name, fuse, ids)

        signal = "outputs" if layer_name is None else ("activations+outputs" if fuse else "activations")
        about = {"method": "passive-mint", "signal": signal, "layer": layer_name or "outputs", "detector": det.kind_}
    about["choice"] = choice

    null_scores, q_scores = score(cache, null_idx), score(q_cache, q_ids)
    member_scores = score(cache, split.heldout_members)
    scored = _Scored(net, name, info, about, q_scores, null_scores, split.heldout_members, member_scores)
    return _finish_verdict(case, scored)


def _attack_verdict(
    case: _Case,
    net: nn.Module,
    name: str,
    info: dict[str, Any],
    split: Any,
    report: dict[str, Any],
    method: str,
    choice: dict[str, Any],
    scores: Any,
    model: str | None,
    weights: str | None,
    show_progress: bool | None,
) -> dict[str, Any]:
    """The verdict scored by the registry attack ``method``, from the reference models ``mintaudit attack`` cached."""
    out, ds, splits, q_ds, q_ids, null_idx = case.out, case.ds, case.splits, case.q_ds, case.q_ids, case.null_idx
    if q_ds is not ds:
        raise ConfigError(
            f"--method {method} scores samples of the audited data set only (its scores are calibrated "
            "on them); for new samples (npz:/folder:) use --method passive-mint or loss"
        )
    _refuse_overlap(
        q_ds,
        q_ids,
        ds,
        np.concatenate([split.known_members, split.external]),
        "the attack's calibration and reference data (known members and external samples)",
        "their scores say nothing about membership; query other samples, or use --method loss",
    )
    scored = np.concatenate([split.heldout_members, split.test])
    inside = np.isin(q_ids, scored).all()
    if scores is None or not inside:
        spec = model_spec(out, ds, model, weights)
        scores = score_attack(
            method,
            out,
            net,
            spec,
            ds,
            splits,
            split,
            report,
            extra=None if inside else q_ids,
            show_progress=show_progress,
        )
    pool = dict(zip(scored.tolist(), np.r_[scores.members, scores.nonmembers].tolist()))
    null_scores = np.array([pool[i] for i in null_idx.tolist()], dtype=np.float64)
    q_scores = (
        np.array([pool[i] for i in q_ids.tolist()], dtype=np.float64)
        if inside
        else np.asarray(scores.extra, dtype=np.float64)
    )
    member_scores = np.array([pool[i] for i in split.heldout_members.tolist()], dtype=np.float64)
    about = {
        "method": method,
        "signal": "outputs",
        "layer": "outputs",
        "choice": choice,
        "detector": f"{method} attack ({scores.info.get('n_reference', 0)} reference models)",
    }
    return _finish_verdict(
        case, _Scored(net, name, info, about, q_scores, null_scores, split.heldout_members, member_scores)
    )


def _finish_verdict(case: _Case, scored: _Scored) -> dict[str, Any]:
    """Per-sample p-values and flags, the dataset-level test, ``verdict.csv`` and the report, from the scores."""
    from mintaudit.evaluation import dataset_test, sample_decisions
    from mintaudit.report import add_verdict, query_digest
    from mintaudit.report import set_verdict

    out, config, command, q_ids, q_info = case.out, case.config, case.command, case.q_ids, case.q_info
    q_scores, null_scores, null_idx = scored.q_scores, scored.null_scores, case.null_idx
    per_sample = sample_decisions(q_scores, null_scores, fdr=case.fdr, alpha=case.alpha)
    test = dataset_test(q_scores, null_scores, alpha=case.alpha, decision=case.decision)  # type: ignore[arg-type]
    csv_path = _write_verdict_csv(out / "verdict.csv", q_ids, q_scores, per_sample)
    result = {
        **test.to_dict(),
        **scored.about,
        "query": {**q_info, "n": int(len(q_ids)), "sha256": query_digest(str(q_info.get("source")), q_ids)},
        "null_reference": {
            "source": _NULL_SOURCE,
            "n": int(len(null_idx)),
            "fraction_of_test": case.null_fraction,
            "seed": config.seed,
        },
        "per_sample": {**per_sample.to_dict(), "csv": csv_path.name},
        "command": " ".join(command or []),
    }
    add_verdict_checks(result, q_ds=case.q_ds, q_ids=q_ids, ds=case.ds, null_idx=null_idx, q_scores=q_scores, null_scores=null_scores, member_ids=scored.member_ids, member_scores=scored.member_scores, seed=config.seed)  # fmt: skip
    report_path = out / "report.json"
    report = (
        load_report(report_path)
        if report_path.is_file()
        else report_for(
            out, case.ds, case.splits, scored.name, scored.net, scored.info, config.to_dict(), command or []
        )
    )
    set_verdict(report, result)  # checked
    add_verdict(report, result)  # kept per (query content, method): another query's verdict stays
    write_report(report, out)
    return result


def _refuse_overlap(
    q_ds: ImageDataset, q_ids: np.ndarray, ds: ImageDataset, other: np.ndarray, what: str, fix: str
) -> None:
    """SplitError when query samples are among ``other`` (pool indices; by image content for new samples)."""
    from mintaudit.errors import SplitError

    if q_ds is ds:
        shared = np.intersect1d(q_ids, other)
    else:
        keys = {ds.images[i].tobytes() for i in other}
        shared = np.array([i for i in q_ids if q_ds.images[i].tobytes() in keys], dtype=np.int64)
    if len(shared):
        examples = ", ".join(str(i) for i in shared[:5]) + (", ..." if len(shared) > 5 else "")
        raise SplitError(f"--query shares {len(shared)} sample(s) with {what} ({examples}); {fix}")


def _verdict_layer(out: Path, net: nn.Module, layer: str | None, fuse_outputs: bool) -> tuple[str | None, bool]:
    """(tap or None for the output signals alone, fuse outputs?) of a passive-MINT verdict."""
    if layer == "outputs":
        return None, True
    if layer is not None:
        return select_layers(net, layer)[0], bool(fuse_outputs)
    report_path = out / "report.json"
    results = load_report(report_path)["results"] if report_path.is_file() else []
    fitted = [
        r
        for r in results
        if r.get("method") == "passive-mint" and isinstance((r.get("fit") or {}).get("val_auc"), (int, float))
    ]
    if not fitted:
        return None, True
    best = max(fitted, key=lambda r: r["fit"]["val_auc"])
    if best.get("layer") in (None, "outputs"):
        return None, True
    return str(best["layer"]), best.get("signal") == "activations+outputs"


def _find_cache(
    root: Path, net: nn.Module, ds: ImageDataset, layers: list[str], indices: np.ndarray, modes: dict[str, str]
) -> Any:
    """An existing activation cache under ``root`` of this model and data holding ``layers`` (stored in ``modes``) and ``indices``, or None."""
    from mintaudit.errors import CacheError
    from mintaudit.signals import SignalCache

    model_fp, data_fp = model_fingerprint(net), ds.fingerprint()
    for manifest in sorted(Path(root).glob("*/manifest.json")):
        if manifest.parent.name.startswith("."):
            continue
        try:
            cache = SignalCache.open(manifest.parent)
        except CacheError:
            continue
        m = cache.manifest
        if (
            (m.get("model_fingerprint"), m.get("data_fingerprint")) != (model_fp, data_fp)
            or m.get("signal", "activations") != "activations"
            or not set(layers) <= set(m.get("layers", []))
            or m.get("preprocess", DEFAULT_PREPROCESS.to_dict()) != ds.preprocess_record
        ):
            continue
        if any(cache.tap_mode(layer) != modes[layer] for layer in layers):
            continue
        if np.isin(indices, cache.indices).all():
            return cache
    return None


def _verdict_detector(
    out: Path,
    net: nn.Module,
    ds: ImageDataset,
    splits: Splits,
    split: Any,
    cache: Any,
    layer: str | None,
    fuse: bool,
    config: SweepConfig,
    show_progress: bool | None,
) -> Any:
    """The MINT model of ``layer``: the one saved in ``OUT/detectors`` when fitted on the same protocol, else fitted now (and saved)."""
    import dataclasses

    from mintaudit.detectors import MintDetector

    det_dir = out / "detectors" / ("outputs" if layer is None else layer + ("+outputs" if fuse else ""))
    protocol = detector_protocol(net, ds, splits, config, layer, fuse)
    try:
        if json.loads((det_dir / "protocol.json").read_text()) == json.loads(json.dumps(protocol)):
            return MintDetector.load(det_dir)
    except (OSError, ValueError):
        pass
    quick = dataclasses.replace(config, n_bootstrap=0)
    _, det = audit_tap(cache, split, layer, quick, fuse_outputs=fuse, show_progress=show_progress)
    det.save(det_dir)
    atomic_write_json(det_dir / "protocol.json", protocol)
    return det


def _write_verdict_csv(path: Path, ids: np.ndarray, scores: np.ndarray, d: Any) -> Path:
    from mintaudit._io import atomic_write_text

    lines = ["sample_id,score,p_value,flagged_bh,flagged_alpha,n_null"]
    lines += [
        f"{int(i)},{s:.9g},{p:.9g},{int(b)},{int(a)},{d.n_null}"
        for i, s, p, b, a in zip(ids, scores, d.p_values, d.flagged_bh, d.flagged_alpha)
    ]
    return atomic_write_text(path, "\n".join(lines) + "\n")

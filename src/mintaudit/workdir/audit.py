"""The audit verbs of a work directory: extract, fit, sweep, gMINT sweep, attack, and re-rendering the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from mintaudit._io import atomic_write_json
from mintaudit.attacks import AttackConfig, run_attacks
from mintaudit.data import ImageDataset, Splits
from mintaudit.errors import ConfigError
from mintaudit.gradient import GradientSweepConfig, SetupSpec, parse_budgets, resolve_setups, run_gradient_sweep
from mintaudit.models import model_fingerprint
from mintaudit.sizes import check_split
from mintaudit.passive import SweepConfig, audit_tap, extract_taps, passive_split
from mintaudit.report import add_result, format_table, load_report
from mintaudit.report import check_record, merge_into
from mintaudit.signals import extract_signals
from mintaudit.taps import select_layers

from mintaudit.sweeps import sweep_model
from mintaudit.workdir.model import model_spec, report_for, resolve_model, resolve_taps

__all__ = [
    "extract",
    "fit_tap",
    "sweep",
    "sweep_model",
    "gradient_sweep",
    "render",
    "detector_protocol",
    "attack",
    "reference_population",
]


def _check_record(out: Path, ds: ImageDataset, splits: Splits, net: nn.Module) -> None:
    """Another model, preprocessing, data or split than OUT's report: refused before any work (see report.merge)."""
    dataset = {"fingerprint": ds.fingerprint(), "members": len(splits.members), "external": len(splits.external)}
    dataset.update(test=len(splits.test), seed=splits.seed)
    check_record(
        out, {"model": {"fingerprint": model_fingerprint(net), "preprocess": ds.preprocess_record}, "dataset": dataset}
    )


def extract(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    model: str | None = None,
    weights: str | None = None,
    taps: str = "published",
    batch_size: int = 256,
    dtype: str = "float32",
    show_progress: bool | None = None,
    tap_mode: str | None = None,
    tap_budget: int | None = None,
) -> Path:
    """Extract the taps and output signals of every split sample into ``out_dir/cache``; return the cache path.

    ``tap_mode`` / ``tap_budget``: what each tap stores (see :mod:`mintaudit.signals.reduce`).
    """
    net, name, _ = resolve_model(out_dir, ds, model=model, weights=weights)
    layers = [layer for _, layer in resolve_taps(net, name, taps)]
    idx = np.unique(np.concatenate([splits.members, splits.external, splits.test]))
    cache = extract_signals(
        net,
        ds,
        idx,
        layers,
        Path(out_dir) / "cache",
        batch_size=batch_size,
        dtype=dtype,  # type: ignore[arg-type]
        show_progress=show_progress,
        tap_mode=tap_mode,
        tap_budget=tap_budget,
    )
    return cache.path


def fit_tap(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    layer: str,
    model: str | None = None,
    weights: str | None = None,
    config: SweepConfig | None = None,
    fuse_outputs: bool = False,
    command: list[str] | None = None,
    show_progress: bool | None = None,
    allow_weak_model: bool = False,
) -> dict[str, Any]:
    """Fit one passive MINT model on ``layer``, save it under ``out_dir/detectors``, and add its result to the report."""
    config = config or SweepConfig()
    out = Path(out_dir)
    check_split(passive_split(splits, known_fraction=config.known_fraction, seed=config.seed))
    net, name, info = resolve_model(
        out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model
    )
    _check_record(out, ds, splits, net)
    matched = select_layers(net, layer)
    if len(matched) != 1:
        raise ConfigError(
            f"--layer {layer!r} matches {len(matched)} layers ({', '.join(matched[:4])}...); "
            "fit takes one: give its full name, or use 'mintaudit sweep --taps' for several"
        )
    layer_name = matched[0]
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    cache = extract_taps(
        net, ds, np.unique(split.all_indices()), [layer_name], out / "cache", config, show_progress=show_progress
    )
    result, det = audit_tap(cache, split, layer_name, config, fuse_outputs=fuse_outputs, show_progress=show_progress)
    det_dir = det.save(out / "detectors" / (layer_name + ("+outputs" if fuse_outputs else "")))
    atomic_write_json(det_dir / "protocol.json", detector_protocol(net, ds, splits, config, layer_name, fuse_outputs))
    report = report_for(out, ds, splits, name, net, info, config.to_dict(), command or [])
    add_result(report, result)
    merge_into(out, report)  # the one merge rule: a row of the same key is replaced, others kept
    return result.to_dict()


def sweep(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    model: str | None = None,
    weights: str | None = None,
    taps: str = "published",
    config: SweepConfig | None = None,
    command: list[str] | None = None,
    show_progress: bool | None = None,
    allow_weak_model: bool = False,
) -> dict[str, Any]:
    """The passive-MINT layer sweep; writes ``report.json`` and ``report.html`` in ``out_dir`` and returns the report."""
    config = config or SweepConfig()
    out = Path(out_dir)
    check_split(passive_split(splits, known_fraction=config.known_fraction, seed=config.seed))
    net, name, info = resolve_model(
        out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model
    )
    _check_record(out, ds, splits, net)
    tap_pairs = resolve_taps(net, name, taps)
    report = sweep_model(
        net,
        name,
        info,
        ds,
        splits,
        tap_pairs,
        out / "cache",
        config,
        run_config={"taps": taps},
        command=command,
        show_progress=show_progress,
    )
    return merge_into(out, report)  # earlier rows of other keys, the verdicts and the DP audit are kept


def gradient_sweep(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    model: str | None = None,
    weights: str | None = None,
    setups: str | Sequence[SetupSpec] = "entry,middle,output,combined",
    budgets: str | Sequence[float] = "1,0.1,0.01",
    config: GradientSweepConfig | None = None,
    command: list[str] | None = None,
    show_progress: bool | None = None,
    allow_weak_model: bool = False,
) -> dict[str, Any]:
    """Gradient MINT over setups x data budgets, plus the LOSS baseline; writes the reports in ``out_dir``.

    The gMINT results join an existing ``report.json`` under the one merge rule
    (:mod:`mintaudit.report.merge`): a row of the same key (setup, budget, reduction, ...) is
    replaced in place, others are kept, so passive and gradient MINT sit in one table; a report of
    another model or data is refused. The LOSS row is the one ``sweep`` and ``attack`` write too
    (:mod:`mintaudit.attacks.loss`), recomputed in its place.
    """
    config = config or GradientSweepConfig()
    out = Path(out_dir)
    net, name, info = resolve_model(
        out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model
    )
    _check_record(out, ds, splits, net)
    budget_list = parse_budgets(budgets)
    run_config = {
        **config.to_dict(),
        "signal": "gradients",
        "budgets": budget_list,
        "setups": {key: layers for key, _, layers in resolve_setups(net, setups)},
        "command": " ".join(command or []),
    }
    results = run_gradient_sweep(
        net, ds, splits, setups, budget_list, out / "cache", config, show_progress=show_progress
    )
    report = report_for(out, ds, splits, name, net, info, run_config, command or [])
    if (out / "report.json").is_file():
        report["config"] = {"gmint": run_config}  # beside the sweep's configuration, not over it
    for r in results:
        add_result(report, r)
    return merge_into(out, report)


def render(report_path: str | Path) -> tuple[Path, Path, str]:
    """Re-render the HTML page of a report JSON next to it (``X/other.json`` -> ``X/other.html``;
    a folder: its ``report.json`` -> ``report.html``); return both paths and the terminal table.

    The JSON itself is only read, and no other file is written over.
    """
    from mintaudit._io import atomic_write_text
    from mintaudit.report import render_html

    json_path = Path(report_path)
    if json_path.is_dir():
        json_path = json_path / "report.json"
    report = load_report(json_path)
    html = render_html(report)
    if json_path.suffix.lower() == ".json":
        html_path = json_path.with_suffix(".html")
    else:
        html_path = json_path.with_name(json_path.name + ".html")
    return json_path, atomic_write_text(html_path, html), format_table(report)


def detector_protocol(
    net: nn.Module, ds: ImageDataset, splits: Splits, config: SweepConfig, layer: str | None, fuse: bool
) -> dict[str, Any]:
    """What a saved MINT model was fitted on: reused by ``verdict`` only when all of it matches."""
    return {
        "schema": "mintaudit/detector-protocol@1",
        "model_fingerprint": model_fingerprint(net),
        "data_fingerprint": ds.fingerprint(),
        "splits_fingerprint": splits.fingerprint(),
        "known_fraction": config.known_fraction,
        "seed": config.seed,
        "dtype": config.dtype,
        "detector": asdict(config.detector),
        "layer": layer,
        "fuse_outputs": fuse,
        **{k: v for k, v in config.to_dict().items() if k in ("tap_mode", "tap_budget")},
    }


def reference_population(ds: ImageDataset, splits: Splits, population: str, seed: int) -> np.ndarray | None:
    """The reference models' population of ``mintaudit attack --population``: None for ``external`` (half the
    external samples), else a seeded sample, twice the members, of the training samples no split uses."""
    if population != "unused":
        return None
    taken = np.zeros(len(ds), dtype=bool)
    taken[np.concatenate([splits.members, splits.external, splits.test])] = True
    if ds.official_test is not None:
        taken |= ds.official_test
    unused = np.flatnonzero(~taken)
    if len(unused) < 2:
        raise ConfigError("no unused training samples for reference models; use --population external")
    # twice the members, so that each reference model (trained on a half) sees as many samples as the audited one
    size = min(len(unused), 2 * len(splits.members))
    return np.sort(np.random.default_rng(seed).choice(unused, size=size, replace=False))


def attack(
    out_dir: str | Path,
    ds: ImageDataset,
    splits: Splits,
    *,
    methods: list[str],
    model: str | None = None,
    weights: str | None = None,
    config: AttackConfig | None = None,
    known_fraction: float = 0.5,
    population: Literal["external", "unused"] = "external",
    command: list[str] | None = None,
    show_progress: bool | None = None,
    allow_weak_model: bool = False,
) -> dict[str, Any]:
    """Baseline attacks on the passive-MINT sets, added to ``out_dir/report.json`` (earlier rows of the same attacks replaced).

    Reference models are trained with the audited model's architecture and cached under
    ``out_dir/cache/attacks``; see :mod:`mintaudit.attacks.run` for which samples each set uses.
    ``population="unused"`` trains them on a seeded sample (twice the members) of the data set's
    training samples that no split uses, so that each reference model sees as many samples as
    the audited model did.
    """
    config = config or AttackConfig()
    out = Path(out_dir)
    check_split(passive_split(splits, known_fraction=known_fraction, seed=config.seed))
    net, name, info = resolve_model(
        out, ds, model=model, weights=weights, splits=splits, allow_weak_model=allow_weak_model
    )
    _check_record(out, ds, splits, net)
    spec = model_spec(out, ds, model, weights)
    split = passive_split(splits, known_fraction=known_fraction, seed=config.seed)
    pop = reference_population(ds, splits, population, config.seed)
    # the audited model's signals in out/cache, where the sweeps keep theirs: LOSS reads the same outputs cache
    results = run_attacks(
        net,
        spec,
        ds,
        split,
        methods,
        out / "cache" / "attacks",
        config,
        population=pop,
        signals_root=out / "cache",
        show_progress=show_progress,
    )
    run_config = {"attacks": config.to_dict(), "attack_population": population}
    report = report_for(
        out, ds, splits, name, net, info, {"known_fraction": known_fraction, **run_config}, command or []
    )
    if (out / "report.json").is_file():
        report["config"] = run_config  # beside the sweep's configuration, not over it
    for r in results:
        add_result(report, r)
    return merge_into(out, report)

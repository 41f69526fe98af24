"""Audit a model on the user's own data, from Python: ``mintaudit.audit(model, members=..., external=..., test=...)``.

Each set is a ``torch.utils.data.DataLoader`` (or any iterable of ``(x, y)`` batches), a map-style
``Dataset`` yielding ``(x, y)``, or a pair of tensors ``(x, y)``: the samples as the model takes
them, already transformed by the user's own preprocessing. The audit is the command line's
sweep (``mintaudit sweep``): the sanity gate first, then passive MINT on each tap (and on the
output signals) and the LOSS baseline, on the same protocol (known members against external
samples to fit, held-out members against the test samples to score). Results are typed
(:class:`AuditResult`) and render with the report writer.

Example:
    >>> import mintaudit
    >>> result = mintaudit.audit(model, members=train_loader, external=other_loader, test=test_loader,
    ...                          taps=["layer3", "fc"], work_dir="runs/mine")  # doctest: +SKIP
    >>> result.best().metrics["auc"]  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mintaudit.data.splits import Splits
from mintaudit.data.pixels import pixel_pool
from mintaudit.data.tensors import TensorPool, collect_samples
from mintaudit.detectors import DetectorConfig
from mintaudit.errors import ConfigError
from mintaudit.gate import ModelCheck, check_model_accuracy
from mintaudit.models import check_model
from mintaudit.passive import Fusion, SweepConfig
from mintaudit.preprocess import Preprocess
from mintaudit.probe import probe_preprocessing
from mintaudit.workdir.audit import sweep_model
from mintaudit.report import write_report
from mintaudit.signals import DEFAULT_TAP_BUDGET, parse_tap_budget
from mintaudit.taps import select_layers

__all__ = ["audit", "AuditResult", "ResultRow"]


@dataclass(frozen=True)
class ResultRow:
    """One result of an audit (a row of the report's results table)."""

    method: str
    signal: str
    layer: str
    metrics: dict[str, Any]
    ci95: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResultRow:
        return cls(d["method"], d.get("signal", ""), d.get("layer", ""), d["metrics"], d.get("ci95", {}), d)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class AuditResult:
    """What :func:`audit` found: the gate's check, the result rows, and the whole report (``mintaudit/report@1``)."""

    check: ModelCheck
    rows: list[ResultRow]
    report: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return self.report

    def best(self, method: str = "passive-mint") -> ResultRow:
        """The row of ``method`` with the highest AUC."""
        rows = [r for r in self.rows if r.method == method]
        if not rows:
            raise ConfigError(f"no {method!r} result in this audit; methods: {sorted({r.method for r in self.rows})}")
        return max(rows, key=lambda r: r.metrics["auc"])

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.html`` into ``out_dir``."""
        return write_report(self.report, out_dir)


def audit(
    model: nn.Module,
    *,
    members: Any,
    external: Any,
    test: Any,
    taps: str | list[str | int] | None = None,
    num_classes: int | None = None,
    name: str = "model",
    fusion: Fusion = "both",
    known_fraction: float = 0.5,
    detector: DetectorConfig | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    work_dir: str | Path | None = None,
    allow_weak_model: bool = False,
    show_progress: bool | None = None,
    tap_mode: str | dict[str, str] | None = None,
    tap_budget: int | str | None = None,
    preprocess: Preprocess | None = None,
    accept_preprocessing: bool = False,
) -> AuditResult:
    """Passive MINT and the LOSS baseline on the user's own model and data.

    Args:
        model: the audited classifier, returning logits (B, K); it is not modified.
        members: the samples it was trained on; external: non-members the auditor holds (to fit the
            MINT models beside the known members); test: non-members to score against the held-out
            members. Each a DataLoader / iterable of ``(x, y)`` batches, a Dataset of ``(x, y)``, or ``(x, y)``
            tensors, with ``x`` already transformed as the model expects.
        taps: layers to audit (names, indices or a glob, as ``mintaudit layers`` lists them); None audits the
            output signals only.
        num_classes: K (default: the model's logit width).
        name: the model's name in the report.
        fusion, known_fraction, detector, n_bootstrap, seed, batch_size: as ``mintaudit sweep``.
        work_dir: where the signal cache lives (and is reused); default a temporary folder, removed after.
        allow_weak_model: audit even a model at chance on its members (the report says so).
        tap_mode: what each tap stores: ``"full"``, ``"pooled"`` (per-channel mean and max), ``"grid:4"``, or per
            tap (``{"layer3": "grid:4"}`` or ``"layer3=grid:4,fc=full"``); None lets ``tap_budget`` pick.
        tap_budget: bytes per sample per tap (an int, or ``"64K"``, ``"1M"``); default 512 KiB
            (:data:`mintaudit.signals.DEFAULT_TAP_BUDGET`). A reduced tap's rows carry ``tap_mode``.
        preprocess: the sets hold raw pixels (whole values 0-255, e.g. uint8 tensors (N, C, H, W)) and this
            :class:`~mintaudit.Preprocess` turns them into the model's input; the preprocessing probe
            (:mod:`mintaudit.probe`) then checks it against the usual alternatives on the members.
        accept_preprocessing: go on when the probe finds a clearly better preprocessing (the report says so).

    Returns:
        An :class:`AuditResult`; ``result.write(folder)`` writes ``report.json`` and ``report.html``.

    Raises:
        WeakModelError: the model is at chance on its members (its inputs are likely wrong).
        DataError: a set that is not ``(x, y)`` images with integer labels.
        ModelError: the model fails on the inputs, returns a tuple, or logits of the wrong width.
    """
    parts = [collect_samples(d, role) for d, role in ((members, "members"), (external, "external"), (test, "test"))]
    shapes = {p[0].shape[1:] for p in parts}
    if len(shapes) != 1:
        raise ConfigError(
            f"members, external and test hold inputs of different shapes {sorted(shapes)}; transform them alike"
        )
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    was_training = model.training
    model.eval()
    try:
        if preprocess is not None:  # raw pixels: read through the declared preprocessing, then probed
            raw = pixel_pool(f"{name}-data", x, y, max(int(y.max()) + 1, 1), preprocess)
            k = num_classes if num_classes is not None else _logit_width(model, raw.batch(np.arange(2)).numpy())
            pool = pixel_pool(f"{name}-data", x, y, int(k), preprocess)
        else:
            k = num_classes if num_classes is not None else _logit_width(model, x[:2])
            pool = TensorPool(f"{name}-data", x, y, int(k))
        check_model(model, pool.image_shape, pool.num_classes)
        sizes = [len(p[0]) for p in parts]
        cuts = np.cumsum([0, *sizes])
        splits = Splits(pool.name, pool.fingerprint(), int(seed), *(np.arange(cuts[i], cuts[i + 1]) for i in range(3)))
        probe = None
        if preprocess is not None:
            probe = probe_preprocessing(
                model, pool, splits.members, accept=accept_preprocessing, seed=seed, declared_by="preprocess="
            )
        check = check_model_accuracy(model, pool, splits.members, splits.test, allow_weak_model=allow_weak_model)
        layers = [] if taps is None else select_layers(model, taps)
        tap_pairs = [(f"L{i}", layer) for i, layer in enumerate(layers, start=1)]
        if not tap_pairs and fusion == "none":
            raise ConfigError("no taps and fusion 'none' leave nothing to audit; give taps=[...] or fusion='outputs'")
        budget = DEFAULT_TAP_BUDGET if tap_budget is None else parse_tap_budget(tap_budget, name="tap_budget")
        config = SweepConfig(
            detector=detector or DetectorConfig(seed=seed),
            fusion=fusion,
            known_fraction=known_fraction,
            n_bootstrap=n_bootstrap,
            batch_size=batch_size,
            seed=seed,
            tap_mode=_mode_text(tap_mode),
            tap_budget=budget,
        )
        info = {"check": check.to_dict(), **({"probe": probe} if probe is not None else {})}
        with tempfile.TemporaryDirectory(prefix="mintaudit-") as tmp:
            root = Path(work_dir) / "cache" if work_dir is not None else Path(tmp) / "cache"
            report = sweep_model(
                model,
                name,
                info,
                pool,
                splits,
                tap_pairs,
                root,
                config,
                run_config={"taps": layers, "api": "mintaudit.audit"},
                command=["python", "mintaudit.audit"],
                show_progress=show_progress,
            )
    finally:
        model.train(was_training)
    return AuditResult(check, [ResultRow.from_dict(r) for r in report["results"]], report)


def _mode_text(tap_mode: str | dict[str, str] | None) -> str | None:
    """A tap_mode mapping as the ``layer=mode,...`` text SweepConfig keeps (a config is plain JSON)."""
    if tap_mode is None or isinstance(tap_mode, str):
        return tap_mode
    if not isinstance(tap_mode, dict):
        raise ConfigError(f"tap_mode must be a mode string or a dict layer -> mode, given {type(tap_mode).__name__}")
    return ",".join(f"{layer}={mode}" for layer, mode in tap_mode.items())


def _logit_width(model: nn.Module, x: np.ndarray) -> int:
    """K, read off one forward; a model that fails or returns no (B, K) tensor gets check_model's one-line error."""
    import torch

    from mintaudit._tensor import device_of

    try:
        with torch.no_grad():
            out = model(torch.from_numpy(x).to(device_of(model)))
    except Exception:  # noqa: BLE001 - check_model names what went wrong
        out = None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        check_model(model, tuple(x.shape[1:]), 0)  # raises with the reason
    return int(out.shape[1])  # type: ignore[union-attr]

"""Passive MINT: audit a frozen classifier from its activations, one tap at a time.

Protocol ``heldout-members`` (docs/explanation/protocols.md): the members are split (seeded) into
*known* members, which the auditor uses with the external samples to fit the MINT model, and
*held-out* members, which the MINT model never sees; the audit is scored on held-out members
against the non-member test split, balanced by subsampling.

Example (a tiny, untrained model on 100 digits a role; a real audit trains the model first):
    >>> import tempfile
    >>> from mintaudit.data import load_dataset, make_splits
    >>> from mintaudit.detectors import DetectorConfig
    >>> from mintaudit.models import ModelSpec, build_model, published_taps
    >>> ds = load_dataset("digits")
    >>> splits = make_splits(ds, members=100, external=100, test=100, seed=0)
    >>> model = build_model(ModelSpec("tiny-cnn", 1, ds.num_classes, (8, 8)))
    >>> config = SweepConfig(detector=DetectorConfig(epochs=3), n_bootstrap=0)
    >>> results = run_sweep(model, ds, splits, published_taps("tiny-cnn"), tempfile.mkdtemp(), config, show_progress=False)
    >>> [(r.label, r.method, r.protocol) for r in results]
    [('L1', 'passive-mint', 'heldout-members'), ('L2', 'passive-mint', 'heldout-members'), ('LOSS', 'loss', 'heldout-members')]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import nn

from mintaudit._progress import progress
from mintaudit.attacks.loss import loss_audit, loss_result
from mintaudit.data._base import ImageDataset
from mintaudit.data.splits import PassiveSplit, Splits, passive_split
from mintaudit.detectors import DETECTOR_KINDS, Detector, DetectorConfig, DetectorFactory, MintDetector, detector_kind
from mintaudit.errors import ConfigError
from mintaudit.evaluation import Evaluation, SampleInfo, evaluate_scores
from mintaudit.results import Result
from mintaudit.signals import (
    DEFAULT_TAP_BUDGET,
    RowView,
    SignalCache,
    extract_signals,
    output_features,
    parse_tap_modes,
    plan_tap_modes,
    sample_infos,
)

__all__ = [
    "PassiveSplit",
    "SweepConfig",
    "check_detector_modes",
    "extract_taps",
    "passive_split",
    "audit_tap",
    "mint_scores",
    "loss_baseline",
    "run_sweep",
]

Fusion = Literal["none", "outputs", "both"]


@dataclass(frozen=True)
class SweepConfig:
    """Options of the passive sweep."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    fusion: Fusion = "none"
    known_fraction: float = 0.5
    n_bootstrap: int = 1000
    batch_size: int = 256
    dtype: Literal["float32", "float16"] = "float32"
    seed: int = 0
    tap_mode: str | None = None
    tap_budget: int = DEFAULT_TAP_BUDGET

    def __post_init__(self) -> None:
        if self.fusion not in ("none", "outputs", "both"):
            raise ConfigError(f"fusion must be one of none, outputs, both; got {self.fusion!r}")
        if isinstance(self.tap_budget, bool) or not isinstance(self.tap_budget, int) or self.tap_budget < 1:
            raise ConfigError(f"tap_budget must be a whole number of bytes >= 1, got {self.tap_budget!r}; e.g. 65536")
        default, per = parse_tap_modes(self.tap_mode)
        check_detector_modes(self.detector.kind, [m for m in (default, *per.values()) if m])

    def to_dict(self) -> dict[str, Any]:
        """The options; the tap storage ones only when not the defaults (so earlier configs read the same)."""
        d = asdict(self)
        if self.tap_mode is None:
            del d["tap_mode"]
        if self.tap_budget == DEFAULT_TAP_BUDGET:
            del d["tap_budget"]
        return d


def check_detector_modes(kind: str, modes: Sequence[str]) -> None:
    """Refuse a detector kind that reads maps (``cnn``) on a ``pooled`` tap, which holds vectors (N, 2C).

    Raises:
        ConfigError: naming the fix (``--detector mlp`` or ``--tap-mode grid:k``).
    """
    if "pooled" in modes and kind != "auto" and kind in DETECTOR_KINDS and detector_kind(kind).maps:
        raise ConfigError(
            f"the {kind} detector reads activation maps, and a pooled tap stores vectors (2 values per "
            "channel); use --detector mlp (or auto), or keep maps with --tap-mode grid:k (e.g. grid:4)"
        )


def _evaluate(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    threshold: float,
    cfg: SweepConfig,
    infos: tuple[SampleInfo, SampleInfo] | None = None,
) -> Evaluation:
    m_info, n_info = infos or (None, None)
    return evaluate_scores(
        member_scores,
        nonmember_scores,
        threshold=threshold,
        n_bootstrap=cfg.n_bootstrap,
        seed=cfg.seed,
        member_info=m_info,
        nonmember_info=n_info,
    )


def _prob(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def audit_tap(
    cache: SignalCache,
    split: PassiveSplit,
    layer: str | None,
    config: SweepConfig,
    *,
    fuse_outputs: bool = False,
    label: str | None = None,
    depth: int | None = None,
    show_progress: bool | None = None,
    detector: DetectorFactory | None = None,
) -> tuple[Result, Detector]:
    """Fit a MINT model on one tap (and/or the output signals) and score the held-out sets.

    Args:
        cache: signals of every sample of ``split``.
        split: the passive roles.
        layer: the tap; None audits the output signals alone ("model outcome" AAD).
        config: sweep options (detector, bootstrap...).
        fuse_outputs: also feed the output signals to the detector.
        label, depth: the tap's short name (``L3``) and 1-based depth, copied into the result.
        detector: the MINT model to fit: a :class:`~mintaudit.detectors.Detector`, or a callable of
            no arguments returning a new one (e.g. a class); default: a :class:`MintDetector` with
            ``config.detector``.

    Returns:
        (the :class:`~mintaudit.results.Result`, the fitted detector).
    """
    if layer is None and not fuse_outputs:
        raise ConfigError("audit_tap needs a layer, or fuse_outputs=True to audit the outputs alone")
    mode = cache.tap_mode(layer) if layer is not None else "full"
    if detector is None:
        check_detector_modes(config.detector.kind, [mode])
    out = cache.outputs()
    feats = output_features(out["logits"], out["labels"])
    fit_rows = cache.rows(np.concatenate([split.known_members, split.external]))
    y = np.r_[np.ones(len(split.known_members)), np.zeros(len(split.external))].astype(np.int64)
    member_rows, nonmember_rows = cache.rows(split.heldout_members), cache.rows(split.test)
    X = cache.activations(layer) if layer is not None else feats
    extra = feats if (fuse_outputs and layer is not None) else None
    t0 = time.perf_counter()
    if mode.startswith("grid:") and config.detector.kind == "mlp":  # the mlp reads a grid as it is, flattened
        config = replace(config, detector=replace(config.detector, pooling="flatten"))
    det = _detector(detector, config, show_progress)
    det.fit(RowView(X, fit_rows), y, None if extra is None else extra[fit_rows])
    scores_m = _prob(det.decision_function(RowView(X, member_rows), None if extra is None else extra[member_rows]))
    scores_n = _prob(
        det.decision_function(RowView(X, nonmember_rows), None if extra is None else extra[nonmember_rows])
    )
    signal = "outputs" if layer is None else ("activations+outputs" if fuse_outputs else "activations")
    result = Result.from_evaluation(
        _evaluate(scores_m, scores_n, 0.5, config, sample_infos(cache, split.heldout_members, split.test)),
        method="passive-mint",
        signal=signal,
        # members the MINT model was fitted on: the aMINT papers' setting, reported as such
        protocol="training-members" if np.isin(split.heldout_members, split.known_members).all() else "heldout-members",
        layer=layer if layer is not None else "outputs",
        label=label or (layer if layer is not None else "outputs"),
        depth=depth,
        detector=getattr(det, "kind_", type(det).__name__),
        fit={
            "seconds": round(time.perf_counter() - t0, 2),
            "best_epoch": getattr(det, "best_epoch_", None),
            "val_auc": getattr(det, "val_auc_", None),
            "n_known_members": len(split.known_members),
            "n_external": len(split.external),
        },
        extra={"tap_mode": mode} if mode != "full" else {},
    )
    return result, det


def _detector(detector: DetectorFactory | None, config: SweepConfig, show_progress: bool | None) -> Detector:
    """The detector to fit: the one given, a new one from the factory given, or the default MintDetector."""
    if detector is None:
        return MintDetector.from_config(config.detector, show_progress=show_progress)
    made = detector
    if isinstance(detector, type) or not hasattr(detector, "fit"):  # a factory
        if not callable(detector):
            raise ConfigError(f"detector must be a Detector or a factory returning one; given {detector!r}")
        made = detector()
    missing = [m for m in ("fit", "decision_function", "save", "load") if not callable(getattr(made, m, None))]
    if missing:
        raise ConfigError(
            f"detector must have fit, decision_function, save and load (mintaudit.detectors.Detector); "
            f"{type(made).__name__} lacks {', '.join(missing)}: pass a detector, or a factory returning one"
        )
    return made


def mint_scores(det: Detector, cache: SignalCache, layer: str | None, fuse: bool, ids: np.ndarray) -> np.ndarray:
    """P(member) of a fitted MINT model for pool ``ids`` of ``cache``, float64 (N,), read in chunks of rows.

    Args:
        det: the fitted detector (e.g. the second value of :func:`audit_tap`).
        cache: a signal cache holding ``ids``.
        layer: the tap the detector was fitted on; None = the output signals alone.
        fuse: the detector was fitted on the tap fused with the output signals.
        ids: int (N,) pool indices.
    """
    rows = cache.rows(ids)
    out = cache.outputs()
    feats = output_features(out["logits"], out["labels"])
    X = cache.activations(layer) if layer is not None else feats
    extra = feats if (fuse and layer is not None) else None
    logits = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), 512):
        chunk = rows[start : start + 512]
        order = np.argsort(chunk)
        x = np.empty((len(chunk), *X.shape[1:]), dtype=np.float32)
        x[order] = X[chunk[order]]
        logits[start : start + len(chunk)] = det.decision_function(x, None if extra is None else extra[chunk])
    return 1.0 / (1.0 + np.exp(-logits))


def loss_baseline(cache: SignalCache, split: PassiveSplit, config: SweepConfig) -> Result:
    """The LOSS attack (Yeom et al.) on the same held-out sets, from ``cache``'s logits.

    A thin call into :func:`mintaudit.attacks.loss.loss_result`, the one LOSS row of every
    command: float64 minus the loss, threshold tuned on known members vs external samples.
    """
    return loss_result(cache, split, n_bootstrap=config.n_bootstrap, seed=config.seed)


def extract_taps(
    model: nn.Module,
    dataset: ImageDataset,
    indices: np.ndarray,
    layers: Sequence[str],
    cache_root: str | Path,
    config: SweepConfig,
    *,
    show_progress: bool | None = None,
) -> SignalCache:
    """The signal cache of ``layers`` under ``config`` (batch size, dtype, tap modes and budget).

    Each tap's storage mode is settled first, from one sample's forward pass, and checked against
    the detector (``cnn`` refuses ``pooled``), so a refused mode or budget writes nothing.
    """
    modes = plan_tap_modes(model, dataset, indices, list(layers), config.tap_mode, config.tap_budget, config.dtype)
    check_detector_modes(config.detector.kind, list(modes.values()))
    return extract_signals(
        model,
        dataset,
        indices,
        list(layers),
        cache_root,
        batch_size=config.batch_size,
        dtype=config.dtype,
        show_progress=show_progress,
        tap_mode=modes,
        tap_budget=config.tap_budget,
    )


def run_sweep(
    model: nn.Module,
    dataset: ImageDataset,
    splits: Splits,
    taps: Sequence[tuple[str, str]],
    cache_root: str | Path,
    config: SweepConfig | None = None,
    *,
    show_progress: bool | None = None,
) -> list[Result]:
    """The object-classification study's sweep: one MINT model per tap, plus the LOSS baseline.

    Args:
        model: the frozen audited model (not modified).
        dataset: the pool; splits: the member / external / test indices.
        taps: (label, layer name) pairs, in depth order (e.g. L1..L7 of objcls-cnn).
        cache_root: where the signal cache lives (reused when model, data and indices match).
        config: sweep options; ``fusion`` = ``none`` (activations only), ``outputs`` (activations
            fused with output signals) or ``both`` (each tap twice), plus an outputs-only row
            whenever fusion is asked for; ``tap_mode`` / ``tap_budget``: what each tap stores
            (:mod:`mintaudit.signals.reduce`; a reduced tap's rows carry ``tap_mode``).

    Returns:
        :class:`~mintaudit.results.Result` values (``to_dict()`` gives the report rows): per tap
        (and fusion setting), the outputs-only MINT row when fused, and the LOSS baseline last.
    """
    config = config or SweepConfig()
    split = passive_split(splits, known_fraction=config.known_fraction, seed=config.seed)
    cache = extract_taps(
        model,
        dataset,
        np.unique(split.all_indices()),
        [layer for _, layer in taps],
        cache_root,
        config,
        show_progress=show_progress,
    )
    fuse_settings = {"none": [False], "outputs": [True], "both": [False, True]}[config.fusion]
    jobs: list[tuple[str | None, str | None, int | None, bool]] = [
        (label, layer, depth, fuse) for fuse in fuse_settings for depth, (label, layer) in enumerate(taps, start=1)
    ]
    if config.fusion != "none":
        jobs.append(("outputs", None, None, True))
    results = []
    for label, layer, depth, fuse in progress(jobs, desc="sweep", enabled=show_progress, unit="tap"):
        result, _ = audit_tap(
            cache, split, layer, config, fuse_outputs=fuse, label=label, depth=depth, show_progress=show_progress
        )
        results.append(result)
    # the one LOSS row (mintaudit.attacks.loss), from the outputs-only cache every command shares
    results.append(
        loss_audit(
            model,
            dataset,
            split,
            cache_root,
            batch_size=config.batch_size,
            n_bootstrap=config.n_bootstrap,
            seed=config.seed,
            show_progress=show_progress,
        )
    )
    return results

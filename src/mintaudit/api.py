"""Audit a model on the user's own data, from Python: ``mintaudit.audit(model, members=..., external=..., test=...)``.

Each set is a ``torch.utils.data.DataLoader`` (or a list or any iterable of ``(x, y)`` batches), a
map-style ``Dataset`` yielding ``(x, y)``, or a pair of tensors ``(x, y)``; items may be Hugging Face
style dicts (``{"pixel_values", "labels"}``). The samples are the model's inputs, already transformed
by the user's own preprocessing, or raw pixels with ``preprocess=``. The audit is the command line's
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

import contextlib
import numbers
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mintaudit.data.splits import Splits
from mintaudit.data.roles import check_role_sizes, read_roles
from mintaudit._logits import logits_of
from mintaudit._pyapi import check_arguments, check_module
from mintaudit.detectors import DetectorConfig
from mintaudit._tensor import device_of, resolve_device, use_device
from mintaudit.distributed import require_group
from mintaudit.distributed import scope as distributed_scope
from mintaudit.errors import ConfigError, WeakModelError
from mintaudit.gate import ModelCheck, check_model_accuracy
from mintaudit.models import check_model
from mintaudit.passive import Fusion, SweepConfig
from mintaudit.preprocess import Preprocess
from mintaudit.probe import probe_preprocessing
from mintaudit.sweeps import sweep_model
from mintaudit._pyattacks import AttackSession, attack_config, attack_methods, python_verdict, run_python_attacks
from mintaudit.report import add_result, write_report
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
    """What :func:`audit` found: the gate's check, the result rows, and the whole report (``mintaudit/report@2``)."""

    check: ModelCheck
    rows: list[ResultRow]
    report: dict[str, Any] = field(repr=False)
    session: AttackSession | None = field(default=None, repr=False, compare=False)

    def verdict(self, query: Any, method: str = "rmia", **options: Any) -> dict[str, Any]:
        """Were the ``query`` samples used to train the model? ``mintaudit test --method METHOD`` on this audit.

        Args:
            query: ``"heldout-members"`` (a positive control), ``"test"`` (the test set's non-null half, a
                negative control), a 1-d array of pool ids (members, external, test in the order read), or new
                samples: ``(x, y)`` or a DataLoader of model inputs, scored beside the test samples by the same
                (cached) reference models; copies of the null, known-member or external samples are refused.
            method: an attack of ``methods=[...]`` (or any registry attack; its reference models are then
                trained by the same ``build`` and ``trainer``).
            options: ``fdr``, ``alpha``, ``decision``, ``null_fraction`` as for ``mintaudit test``.

        Returns:
            The verdict: ``p_value``, ``decision``, ``sentence``, per-sample p-values and flags.
        """
        if self.session is None:
            raise ConfigError(
                "verdict() needs an audit with attacks: audit(..., methods=['rmia'], build=..., trainer=...)"
            )
        return python_verdict(self.session, query, method, **options)

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
    methods: list[str] | None = None,
    build: Any = None,
    trainer: Any = None,
    references: int = 2,
    trainer_batch_size: int = 64,
    trainer_version: str | None = None,
    device: str | torch.device | None = None,
    distributed: bool = False,
) -> AuditResult:
    """Passive MINT and the LOSS baseline on the user's own model and data.

    Everything the caller passes is read and checked before the model runs (see
    ``docs/howto/python-inputs.md``); a refusal is one line, a :class:`~mintaudit.errors.MintauditError`.

    Args:
        model: the audited classifier, a ``torch.nn.Module`` (a ``transformers`` model as it is); it is not
            modified. Its output is read by one rule (:func:`mintaudit._logits.logits_of`): the logits tensor
            (B, K), a ``ModelOutput`` or dict with a ``"logits"`` entry, or a tuple whose first item is the logits.
        members: the samples it was trained on; external: non-members the auditor holds (to fit the
            MINT models beside the known members); test: non-members to score against the held-out
            members. Each a pair ``(x, y)`` of tensors or arrays; a DataLoader, list or other iterable of batches
            or samples; or a map-style Dataset of samples. An item is ``(x, y)`` or a dict such as
            ``{"pixel_values": x, "labels": y}`` or ``{"image": x, "label": y}``; ``x`` is one sample (C, H, W) or a
            batch (N, C, H, W), ``y`` integer class indices. ``x`` is the model's input, float, already transformed,
            unless ``preprocess`` is given. Each role needs at least 20 samples per side of an AUC row, and no
            input may appear in two roles (the same object, or identical rows).
        taps: layers to audit (names, indices or a glob, as ``mintaudit layers`` lists them); None audits the
            output signals only.
        num_classes: K (default: the model's logit width).
        name: the model's name in the report.
        fusion: fuse the output signals into the MINT model (``"none"``, ``"outputs"``, ``"both"``), as
            ``mintaudit sweep``.
        known_fraction: the share of members known to the auditor (the rest are held out), as ``mintaudit sweep``.
        detector: the MINT model (:class:`~mintaudit.detectors.DetectorConfig`); None: ``kind="auto"``, as ``mintaudit sweep``.
        n_bootstrap: bootstrap resamples of the 95% intervals.
        seed: seeds the split of the members, the MINT models and the intervals.
        batch_size: batch size of extraction and of the MINT models.
        work_dir: where the signal cache lives (and is reused); default a temporary folder, removed after.
        allow_weak_model: audit even a model at chance on its members (the report says so).
        tap_mode: what each tap stores: ``"full"``, ``"pooled"`` (per-channel mean and max), ``"grid:4"``, or per
            tap (``{"layer3": "grid:4"}`` or ``"layer3=grid:4,fc=full"``); None lets ``tap_budget`` pick.
        tap_budget: bytes per sample per tap (an int, or ``"64K"``, ``"1M"``); default 512 KiB
            (:data:`mintaudit.signals.DEFAULT_TAP_BUDGET`). A reduced tap's rows carry ``tap_mode``.
        preprocess: give it to pass raw pixels instead (whole numbers 0-255: uint8 or float tensors, arrays, NCHW or
            NHWC, or PIL images): :class:`mintaudit.Preprocess` scales and normalises them as the model was
            trained, and the report records it. The preprocessing probe (:mod:`mintaudit.probe`) then compares it
            with the usual alternatives on the members and refuses a clearly worse one, naming the better one.
        accept_preprocessing: go on when the probe finds a clearly better preprocessing (``model.probe`` says so).
        methods: attacks to run besides the sweep (which always gives ``passive-mint`` and ``loss``): any of
            :data:`mintaudit.attacks.ATTACKS` (``"rmia"``, ``"lira"``, ``"calibrated-loss"``...), on the same sets
            as ``mintaudit attack``; their rows join ``result.rows``. None: the sweep only.
        build: ``build() -> nn.Module``, a fresh untrained model of your architecture (reference models).
        trainer: your recipe, ``trainer(model, loader) -> model``; the loader yields ``(x, y)`` batches of one
            reference model's training samples (``trainer_batch_size``, shuffled by a seeded generator) and torch
            is seeded before each call. None: the package's Adam loop.
        references: reference models per kind (R); ``trainer`` is called once per model trained.
        trainer_batch_size: the batch size of the trainer's loader.
        trainer_version: a name for your recipe in the reference cache key (default: a hash of its source).
            With attacks, the result keeps the model, the samples and the cache (a temporary folder without
            ``work_dir``, removed with the result) for :meth:`AuditResult.verdict`.
        device: where the model runs and the MINT models train (``"cpu"``, ``"cuda"``, ``"cuda:N"``, as
            ``--device``); the model is moved there for each pass and back after. None: the model's own device
            (the MINT models on the CPU).
        distributed: run over the process group (torchrun's, or one the caller initialised), each rank
            extracting its share, as the command line does under torchrun. False: this process computes alone,
            whatever group is initialised (a script under its own torchrun gets the same result on every rank).

    Returns:
        An :class:`AuditResult`; ``result.write(folder)`` writes ``report.json`` and ``report.html``.

    Raises:
        WeakModelError: the model is at chance on its members (its inputs are likely wrong).
        DataError: a set that cannot be read, is empty or too small, holds raw or mis-scaled inputs (without
            ``preprocess``), strings, bools or fractions as labels, or PIL images without ``preprocess``.
        SplitError: two roles that are the same object or share identical inputs.
        ModelError: not an ``nn.Module``, weights on the meta device, a forward that fails on the inputs, or an
            output with no logits by the rule above, or of the wrong width.
        ConfigError: a number out of range (``n_bootstrap``, ``seed``, ``batch_size``, ``known_fraction``,
            ``num_classes``), a bad ``fusion``, ``tap_mode`` or ``tap_budget``, an unknown ``device``, ``distributed=True``
            without a process group.
    """
    check_module(model)
    run_device = None if device is None else resolve_device(device)  # an unknown device: refused before any work
    if distributed:
        require_group()
    _check_num_classes(num_classes)
    check_arguments(
        "audit",
        {
            "n_bootstrap": ("bootstrap", n_bootstrap),
            "seed": ("seed", seed),
            "batch_size": ("batch_size", batch_size),
            "known_fraction": ("known_fraction", known_fraction),
        },
    )
    attacks = attack_methods(methods, build, trainer, references)
    attack_cfg = (
        attack_config(
            references,
            build,
            trainer,
            trainer_batch_size=trainer_batch_size,
            trainer_version=trainer_version,
            n_bootstrap=n_bootstrap,
            batch_size=batch_size,
            seed=seed,
        )
        if attacks
        else None
    )
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
    data = read_roles(members, external, test, preprocess=preprocess, batch_size=batch_size)
    check_role_sizes(data.sizes, known_fraction)
    scope = contextlib.ExitStack()  # the run's device and whether it is distributed; both restored below
    scope.enter_context(distributed_scope(distributed))
    scope.enter_context(use_device(run_device))
    was_training = model.training
    model.eval()
    try:
        k = num_classes if num_classes is not None else _logit_width(model, data.example())
        pool = data.pool(f"{name}-data", int(k))
        check_model(model, pool.image_shape, pool.num_classes)
        splits = Splits(pool.name, pool.fingerprint(), int(seed), *data.ranges())
        probe = None
        if preprocess is not None:  # raw pixels read through a declared preprocessing: is it the model's?
            probe = probe_preprocessing(
                model, pool, splits.members, accept=accept_preprocessing, seed=seed, declared_by="preprocess="
            )
        check = check_model_accuracy(model, pool, splits.members, splits.test, allow_weak_model=True)
        if check.weak and not allow_weak_model:
            raise WeakModelError(_weak_message(check, preprocess))
        check = replace(check, weak_model_allowed=bool(allow_weak_model))
        info = {"check": check.to_dict(), **({"probe": probe} if probe is not None else {})}
        tmp = tempfile.TemporaryDirectory(prefix="mintaudit-")  # kept with the result when attacks can be asked again
        session = None
        try:
            root = Path(work_dir) / "cache" if work_dir is not None else Path(tmp.name) / "cache"
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
            if attack_cfg is not None:
                attacked = AttackSession(model, pool, splits, attack_cfg, known_fraction, root, tuple(attacks), tmp)
                for row in run_python_attacks(attacked, show_progress):
                    add_result(report, row)
                # the recipe, as mintaudit attack records it
                report.setdefault("config", {})["attacks"] = attack_cfg.to_dict()
                session = attacked  # only now: a failed attack leaves no temporary folder behind
        finally:
            if session is None or work_dir is not None:
                tmp.cleanup()
    finally:
        model.train(was_training)
        scope.close()
    return AuditResult(check, [ResultRow.from_dict(r) for r in report["results"]], report, session)


def _check_num_classes(num_classes: Any) -> None:
    if num_classes is not None and (
        not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) or num_classes < 2
    ):
        raise ConfigError(
            f"audit(): num_classes must be a whole number >= 2, got {num_classes!r}; or None (the logits' width)"
        )


def _weak_message(check: ModelCheck, preprocess: Preprocess | None) -> str:
    """The gate's refusal, in the words of a Python caller (no command-line flags)."""
    if preprocess is None:
        cause = "inputs not transformed as in training (or give raw pixels with preprocess=mintaudit.Preprocess(...))"
    else:
        cause = f"preprocess={preprocess!r} is not the model's training transform"
    return (
        f"the audited model classifies its own members at accuracy {check.members_accuracy:.3f}, chance is "
        f"{check.chance:.3f}: it cannot see its inputs, so an audit would be noise; likely causes: {cause}, labels "
        "in another order than the model's classes, or the wrong model; allow_weak_model=True audits it anyway"
    )


def _mode_text(tap_mode: str | dict[str, str] | None) -> str | None:
    """A tap_mode mapping as the ``layer=mode,...`` text SweepConfig keeps (a config is plain JSON)."""
    if tap_mode is None or isinstance(tap_mode, str):
        return tap_mode
    if not isinstance(tap_mode, dict):
        raise ConfigError(f"tap_mode must be a mode string or a dict layer -> mode, given {type(tap_mode).__name__}")
    return ",".join(f"{layer}={mode}" for layer, mode in tap_mode.items())


def _logit_width(model: nn.Module, x: torch.Tensor) -> int:
    """K, read off one forward (logits by :func:`~mintaudit._logits.logits_of`); a failure gets check_model's line."""
    try:
        with torch.no_grad():
            out = logits_of(model(x.to(device_of(model))))
    except Exception:  # noqa: BLE001 - check_model names what went wrong
        out = None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        check_model(model, tuple(x.shape[1:]), 0)  # raises with the reason
    return int(out.shape[1])  # type: ignore[union-attr]

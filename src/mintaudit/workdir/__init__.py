"""The work-directory layer: the verbs of the command line as public functions over ``OUT/``.

A *work directory* holds everything one audit produces, so every later step reuses the earlier
ones: ``splits.json``, ``model/`` (weights, description, per-epoch checkpoint), ``cache/``
(signals), ``detectors/``, ``report.json`` and ``report.html``, and ``<verb>.config.json``
(the resolved configuration of each command run there). It sits above the protocols (passive
MINT, gMINT, attacks, aMINT scoring, the verdict's statistics) and below the command line.

- :mod:`~mintaudit.workdir.data`: the pool as the audited model's view, and the splits;
- :mod:`~mintaudit.workdir.model`: the audited model (trained here or the user's), the sanity gate, the report header;
- :mod:`~mintaudit.workdir.audit`: extract, fit, sweep, gMINT sweep, attack, re-render;
- :mod:`~mintaudit.workdir.verdict`: ``mintaudit test``;
- :mod:`~mintaudit.workdir.choice`: ``mintaudit test``'s default method, by validation AUC (also ``benchmarks/power.py``);
- :mod:`~mintaudit.workdir.demo`: ``mintaudit demo``;
- :mod:`~mintaudit.workdir.amint`: ``mintaudit active train|eval|query`` (aMINT in a work directory).

The command line reaches this layer through the names below (``from mintaudit import workdir``), never
through its modules.

Example:
    >>> from mintaudit.workdir import demo
    >>> report = demo("runs/demo")  # doctest: +SKIP
"""

from __future__ import annotations

from mintaudit.workdir.data import default_sizes, prepare_data, describe_splits
from mintaudit.workdir.model import (
    spec_for,
    train_model,
    resolve_model,
    describe_layers,
    resolve_taps,
    report_for,
    model_spec,
)
from mintaudit.workdir.audit import (
    extract,
    fit_tap,
    sweep,
    sweep_model,
    gradient_sweep,
    render,
    detector_protocol,
    attack,
)
from mintaudit.workdir.verdict import QUERY_ROLES, null_split, verdict
from mintaudit.workdir.demo import DEMO_ATTACKS, demo, demo_lines
from mintaudit.workdir.target import model_preprocess
from mintaudit.workdir.dpaudit import AUDIT_DP_METHODS, audit_dp
from mintaudit.workdir.amint import (
    ActiveRunConfig,
    ActiveSplit,
    active_eval,
    active_query,
    active_split,
    active_train,
    amint_result,
)
from mintaudit.workdir.target import TargetRef
from mintaudit.workdir.oneshot import answer_lines, audit_run, check_references, row_line
from mintaudit.workdir.record import (
    absolute_locator,
    archive_record,
    check_options,
    check_report,
    data_part,
    load_record,
    locator_sha256,
    model_part,
    trained_model_part,
    weights_sha256,
    write_record,
)


__all__ = [
    "default_sizes",
    "prepare_data",
    "describe_splits",
    "spec_for",
    "train_model",
    "resolve_model",
    "describe_layers",
    "model_preprocess",
    "resolve_taps",
    "report_for",
    "model_spec",
    "extract",
    "fit_tap",
    "sweep",
    "sweep_model",
    "gradient_sweep",
    "render",
    "detector_protocol",
    "attack",
    "QUERY_ROLES",
    "null_split",
    "verdict",
    "DEMO_ATTACKS",
    "demo",
    "demo_lines",
    "AUDIT_DP_METHODS",
    "audit_dp",
    "ActiveRunConfig",
    "ActiveSplit",
    "active_eval",
    "active_query",
    "active_split",
    "active_train",
    "amint_result",
    "TargetRef",
    "answer_lines",
    "audit_run",
    "check_references",
    "row_line",
    "absolute_locator",
    "archive_record",
    "check_options",
    "check_report",
    "data_part",
    "load_record",
    "locator_sha256",
    "model_part",
    "trained_model_part",
    "weights_sha256",
    "write_record",
]

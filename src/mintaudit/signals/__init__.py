"""Audit signals (AAD): activations of taps, per-sample gradients and output signals, cached on disk."""

from mintaudit.signals.outputs import output_features, sample_infos
from mintaudit.signals.reader import RowView, SignalCache, SignalKind
from mintaudit.signals.writer import extract_signals, stream_signals
from mintaudit.signals.reduce import (
    DEFAULT_TAP_BUDGET,
    TAP_MODE_HELP,
    choose_mode,
    parse_tap_budget,
    parse_tap_mode,
    parse_tap_modes,
    plan_tap_modes,
    reduce_activations,
    resolve_tap_modes,
    stored_shape,
)
from mintaudit.signals.gradients import (
    REDUCTIONS,
    SETUPS,
    check_reductions,
    extract_gradients,
    gradient_layers,
    gradient_vectors,
    per_sample_gradients,
    reduce_per_filter,
    weighted_layers,
)

__all__ = [
    "RowView",
    "SignalCache",
    "SignalKind",
    "extract_signals",
    "output_features",
    "sample_infos",
    "stream_signals",
    "REDUCTIONS",
    "SETUPS",
    "check_reductions",
    "extract_gradients",
    "gradient_layers",
    "gradient_vectors",
    "per_sample_gradients",
    "reduce_per_filter",
    "weighted_layers",
    "DEFAULT_TAP_BUDGET",
    "TAP_MODE_HELP",
    "choose_mode",
    "parse_tap_budget",
    "parse_tap_mode",
    "parse_tap_modes",
    "plan_tap_modes",
    "reduce_activations",
    "resolve_tap_modes",
    "stored_shape",
]

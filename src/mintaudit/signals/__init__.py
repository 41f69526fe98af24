"""Audit signals (AAD): activations of taps and output signals, cached on disk."""

from mintaudit.signals.cache import SignalCache, extract_signals, output_features

__all__ = ["SignalCache", "extract_signals", "output_features"]

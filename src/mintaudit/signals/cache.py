"""The signal cache's names under their old import path.

The writer (:func:`stream_signals`, :func:`extract_signals`) lives in :mod:`mintaudit.signals.writer`,
the reader (:class:`SignalCache` and its manifest checks) in :mod:`mintaudit.signals.reader`, the
output signals in :mod:`mintaudit.signals.outputs`.
"""

from __future__ import annotations

from mintaudit.signals.outputs import output_features, true_label_loss
from mintaudit.signals.reader import SignalCache, SignalKind
from mintaudit.signals.writer import BatchFn, extract_signals, stream_signals

__all__ = [
    "SignalCache",
    "SignalKind",
    "BatchFn",
    "extract_signals",
    "output_features",
    "stream_signals",
    "true_label_loss",
]

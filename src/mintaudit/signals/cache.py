"""Streaming extraction of audit signals (AAD) into an on-disk cache of memory-mapped arrays.

One pass over the samples reads the per-layer signals of a model (activations of taps here;
per-sample gradients in :mod:`mintaudit.signals.gradients`) plus its output signals (logits
and the loss on the true label). Both kinds go through ONE streaming writer
(:func:`stream_signals`): rows are written to ``.npy`` files in large blocks with plain file
writes (never mapped into memory, and by a background thread while the next batch computes), so
memory does not grow with the number of samples; they are read back as memory maps. Under
``torchrun`` each rank extracts its own contiguous block of the rows and writes it into the
shared files at its place; rank 0 writes the manifest once all ranks are done, so the cache is
the same, row for row, as a single-process extraction. A cache directory is keyed by the model,
the data, the sample indices, the layers, the dtype and the kind of signal (with its options), and is
reused only when all of them match; it is built under a temporary name and renamed when
complete. Its ``manifest.json`` says which kind of signal it holds, so an activation cache and
a gradient cache are never confused.

The writer lives in :mod:`mintaudit.signals.writer`, the reader (:class:`SignalCache` and its
manifest checks) in :mod:`mintaudit.signals.reader`, the output signals in
:mod:`mintaudit.signals.outputs`; this module gathers their names so ``mintaudit.signals.cache``
keeps working as an import path.
"""

from __future__ import annotations

from mintaudit.signals.outputs import output_features, true_label_loss
from mintaudit.signals.reader import SignalCache, SignalKind
from mintaudit.signals.writer import BatchFn, extract_signals, stream_signals

__all__ = [
    "SignalCache", "SignalKind", "BatchFn", "extract_signals", "output_features", "stream_signals", "true_label_loss",
]

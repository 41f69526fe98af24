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
- :mod:`~mintaudit.workdir.demo`: ``mintaudit demo``.

``mintaudit.pipeline`` re-exports all of it under the names it always had.
"""

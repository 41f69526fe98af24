"""What makes a model auditable: training factors varied one at a time, each point audited.

Around a fixed, seeded *base* configuration of the audited model, one factor at a time takes
each of its grid values, everything else unchanged: ``epochs`` (how often each member is
seen), ``members_per_class`` (training-set size), ``dropout``, ``weight_decay``, ``augment``
(random flip + crop) and ``label_smoothing`` (cross-entropy vs label smoothing). Every point
of the grid is trained, then measured:

- task accuracy on the test split, train accuracy on its members, and their gap;
- passive MINT (protocol ``heldout-members``) at its *best tap*, chosen among a short list of
  taps fused with the output signals, plus the output signals alone, by the MINT model's
  validation AUC (measured on the auditor's own MINT-training data, never on the test side);
- the LOSS attack (minus the loss) on the same held-out members and non-members;
- optionally aMINT (protocol ``training-members``) where the factor applies to its trainer.

The sets: one class-stratified member pool (``members_per_class`` of each class, a seeded
order), external samples and a test split, shared by every point. A point with ``k`` members
per class trains on the first ``k`` of each class's order (nested subsets). Passive MINT knows
``known_fraction`` of the point's members; the audit is scored on the rest (held-out members)
against as many non-members, a seeded prefix of the test split, so both sides are balanced by
construction and the bootstrap of a difference can pair the samples two points share.

A work directory receives::

    OUT/factors.json, OUT/factors.html          the table, the effects, one plot per factor
    OUT/plots/<factor>.svg                      each plot alone (for papers and READMEs)
    OUT/factors/splits.json                     the shared member pool / external / test
    OUT/factors/models/<key>/                   a trained model (model.safetensors + model.json),
                                                its cached audit (audit-<key>.json, scores-<key>.npz)
    OUT/factors/amint/<key>/                    aMINT models and their rows, when asked for

``<key>`` is a fingerprint of (model spec, train config, member indices, data fingerprint), so
a rerun trains, and audits, only what changed.

The study lives in four modules: ``config`` (factors, base point, grid, profiles), ``points``
(the sets; one point trained and audited, both cached), ``effects`` (lowest to highest setting,
with a bootstrap interval) and ``run`` (the grid, ``factors.json`` / ``factors.html``, the
terminal table).

Example:
    >>> from mintaudit.studies.factors import factors_config, run_factors
    >>> doc = run_factors("runs/factors-tiny", factors_config("tiny"))  # doctest: +SKIP
"""

from mintaudit.studies.factors.config import (
    AMINT_FACTORS,
    FACTORS,
    PROFILES,
    SCHEMA,
    BaseConfig,
    FactorsConfig,
    factors_config,
    parse_grid,
)
from mintaudit.studies.factors.points import member_pool, model_key
from mintaudit.studies.factors.run import format_factors_table, run_factors

__all__ = [
    "FACTORS",
    "AMINT_FACTORS",
    "PROFILES",
    "SCHEMA",
    "BaseConfig",
    "FactorsConfig",
    "factors_config",
    "parse_grid",
    "member_pool",
    "model_key",
    "run_factors",
    "format_factors_table",
]

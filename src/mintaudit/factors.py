"""What makes a model auditable: the factors study, re-exported from :mod:`mintaudit.studies.factors`.

The study lives beside the work-directory layer, in :mod:`mintaudit.studies.factors`; this module
keeps ``from mintaudit.factors import factors_config, run_factors`` working.

Example:
    >>> from mintaudit.factors import factors_config, run_factors
    >>> doc = run_factors("runs/factors-tiny", factors_config("tiny"))  # doctest: +SKIP
"""

from __future__ import annotations

from mintaudit.studies.factors import (
    AMINT_FACTORS,
    FACTORS,
    PROFILES,
    SCHEMA,
    BaseConfig,
    FactorsConfig,
    factors_config,
    format_factors_table,
    member_pool,
    model_key,
    parse_grid,
    run_factors,
)

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

"""The factors study: re-exported from :mod:`mintaudit.studies.factors`, where it lives (``mintaudit factors``, older imports)."""

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

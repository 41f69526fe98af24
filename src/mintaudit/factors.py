"""The factors study: re-exported from :mod:`mintaudit.studies.factors`, where it lives (``mintaudit factors``, older imports)."""

from __future__ import annotations

from mintaudit.studies import factors as _study
from mintaudit.studies.factors import *  # noqa: F403 - the study's public names, under the old path

__all__ = list(_study.__all__)

"""Registers every executor of the study (importing this module is enough)."""
from __future__ import annotations

from . import analysis_runs, metric_runs, nr_runs, sr_runs  # noqa: F401

__all__: list[str] = []

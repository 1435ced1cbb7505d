"""Comparing runs from many machines: a run folder read for comparison with its normalised thread
sweep (runs), the same-work check (work), fingerprints diffed (machines) and the comparison page
(page)."""

from coresweep.compare.page import compare_runs
from coresweep.compare.work import IncomparableError

__all__ = ["IncomparableError", "compare_runs"]

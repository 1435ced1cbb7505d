"""Comparing runs from many machines: a run folder read for comparison with its normalised thread
sweep (runs), the same-work check (work), fingerprints diffed (machines), the comparison page
(page), and a run folder moved between machines as one archive (archive)."""

from coresweep.compare.archive import export_run, import_run
from coresweep.compare.page import compare_runs
from coresweep.compare.work import IncomparableError

__all__ = ["IncomparableError", "compare_runs", "export_run", "import_run"]

"""Reports: papermill batch runs into a run folder (batch), self-contained HTML (html), the per-run
summary (summary), the index of every run (index), and where files are (paths)."""

from coresweep.report.batch import prepare_batch, rerender, run_batch
from coresweep.report.html import external_references, render_html
from coresweep.report.index import write_index
from coresweep.report.summary import finish_run, write_summary

__all__ = ["external_references", "finish_run", "prepare_batch", "render_html", "rerender",
           "run_batch", "write_index", "write_summary"]

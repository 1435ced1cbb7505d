"""Reports: papermill batch runs into a run folder, self-contained HTML, the per-run summary and
the index of every run."""

from coresweep.report.batch import (  # noqa: E402
    external_references,
    finish_run,
    prepare_batch,
    render_html,
    rerender,
    run_batch,
    summary_frame,
    write_index,
    write_summary,
)

__all__ = ["external_references", "finish_run", "prepare_batch", "render_html", "rerender",
           "run_batch", "summary_frame", "write_index", "write_summary"]

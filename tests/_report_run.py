"""One `coresweep run params/quick.yaml` per test session, shared by test_notebooks.py and
test_browser.py (and test_report.py): the four notebooks executed with papermill on the tiny
model, rendered to HTML, with the summary and reports/index.html, in a temporary reports folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_CACHE: dict[str, object] = {}


def quick_run(tmp_path_factory) -> dict:
    """{'run_dir': Path, 'index': Path, 'wall_s': float} of the session's quick run."""
    if "run" in _CACHE:
        return _CACHE["run"]  # type: ignore[return-value]
    from coresweep.report import run_batch, write_index

    os.environ.setdefault("CORESWEEP_CACHE", str(REPO / ".cache" / "test-models"))
    root = tmp_path_factory.mktemp("reports")
    write_index(root)  # a reports folder (it holds coresweep's index): runs in it are listed
    run_dir = root / "quick-run"
    t0 = time.monotonic()
    out = run_batch(REPO / "params" / "quick.yaml", out=run_dir, progress=False,
                    log=lambda m: None)
    _CACHE["run"] = {"run_dir": out, "index": root / "index.html",
                     "wall_s": time.monotonic() - t0}
    return _CACHE["run"]  # type: ignore[return-value]

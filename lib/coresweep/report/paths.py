"""Where things are: the notebooks, the reports folder, and the one function that names the files
of a run folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.studies.common import project_root

NOTEBOOK_DIR_ENV = "CORESWEEP_NOTEBOOKS"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}:{s % 60:02d}"


def notebook_dir() -> Path:
    """Where the notebooks are: $CORESWEEP_NOTEBOOKS, or notebooks/ of the project checkout."""
    env = os.environ.get(NOTEBOOK_DIR_ENV)
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[3], project_root()):
        if (base / "notebooks").is_dir() and any((base / "notebooks").glob("*.ipynb")):
            return base / "notebooks"
    raise CoresweepError(
        "cannot find the notebooks folder (notebooks/*.ipynb); run from the coresweep checkout "
        f"or set {NOTEBOOK_DIR_ENV}"
    )


def reports_root() -> Path:
    return project_root() / "reports"


def new_folder(parent: str | Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name-2``, ``name-3``... when taken (two commands
    in the same second each get their own folder; mkdir is the atomic claim)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        path = parent / (name if n == 1 else f"{name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise CoresweepError(f"{parent}: {name} and 9998 numbered variants already exist")


def run_file(run_dir: str | Path, kind: str, study_id: str | None = None) -> Path:
    """The one place that names a run folder's files: kind is "ipynb", "html" (per study),
    "batch", "summary.md", "summary.csv", "recommendation.md" or "machine"."""
    d = Path(run_dir)
    if kind in ("ipynb", "html"):
        return d / f"{study_id}.{kind}"
    return d / {"batch": "batch.json", "machine": "machine.json"}.get(kind, kind)


def comparison_file(out_dir: str | Path, kind: str) -> Path:
    """The files of a comparison folder (coresweep compare): kind is "json" (which runs, which
    were left out and why), "ipynb" or "html"."""
    return Path(out_dir) / f"compare.{kind}"


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file as a dict; {} when missing; CoresweepError naming the file when unreadable."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CoresweepError(f"{path} is not valid JSON ({exc}): cannot read this run") from None


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    tmp.replace(path)

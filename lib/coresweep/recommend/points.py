"""The points every answer of a run folder chooses among, and the run's decisions: 01's main
thread counts (with the roofline) and 02's strategies and controls, selected by config key; the
one decision (analysis.decision) over them is what 05, summary.md, the index, 06's thread count
and compare all show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from coresweep.studies.base import Resolved

__all__ = ["RunPoints", "main_thread_configs", "run_decisions", "run_points", "run_values",
           "stored_configs"]


@dataclass
class RunPoints:
    """The points every answer of a run folder chooses among: 01's main curves (its first prompt
    length, with the roofline) and 02's strategies and controls."""

    threads: pd.DataFrame
    affinity: pd.DataFrame
    values: dict[str, Any]

    def all(self) -> pd.DataFrame:
        parts = [d for d in (self.threads, self.affinity) if d is not None and len(d)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def decisions(self) -> dict[str, Any]:
        """The one decision per goal (analysis.decision.decide) over every point of the run's
        first runtime (what summary.md, the index, 06 and compare answer with); each runtime's
        own: :meth:`runtime_decisions`."""
        from coresweep.analysis.decision import GOALS, decide

        first = next(iter(self.runtime_decisions().values()), None)
        return first or {metric: decide(self.all(), metric) for metric in GOALS}

    def runtime_decisions(self) -> dict[str, dict[str, Any]]:
        """runtime -> goal -> the decision over that runtime's points (01's and 02's) alone."""
        from coresweep.analysis.runtimes import decisions

        return decisions(self.all())


def run_points(run: Any, values: dict[str, Any] | None = None) -> RunPoints:
    """A run's decision points: 01's main curves and 02's strategies and controls, selected by
    key (see :func:`main_thread_configs`), 01's with the roofline."""
    from coresweep.analysis.roofline import runtime_roofline
    from coresweep.measurement.bandwidth_table import load as load_bandwidth
    from coresweep.report.paths import read_json, run_file
    from coresweep.studies.results import select

    values = values or run_values(run.meta, read_json(run_file(run.path, "batch")))
    stored = stored_configs(run)
    threads = select(run, main_thread_configs(stored, values)).summary
    if len(threads):
        threads = runtime_roofline(threads, values.get("model"),
                                   values.get("precision", "int4"), load_bandwidth(run.path))
    placed = [c for c in stored if c.role.get("strategy") or c.role.get("control")]
    affinity = select(run, placed).summary if placed else pd.DataFrame()
    return RunPoints(threads, affinity, values)


def stored_configs(run: Any) -> list[Any]:
    """Every TrialConfig the run folder recorded (run.json), roles included."""
    from coresweep.measurement.config import TrialConfig

    return [TrialConfig.from_dict(c["config"]) for c in run.meta.get("configs", [])]


def main_thread_configs(stored: list[Any], values: dict[str, Any]) -> list[Any]:
    """01's main curves: re-made from the values the run resolved when they hold its thread
    list (keys never change; plus the counts its budget added), else the stored configs whose
    role names a thread count and a prompt length, at the first prompt length recorded (a folder written by
    notebooks one at a time)."""
    from coresweep import studies

    # 01's role names a thread count and a prompt length (03's and 07's name threads with smt or
    # batch: their points are not 01's curve)
    swept = [c for c in stored if {"threads", "prompt_tokens"} <= set(c.role)]
    if isinstance(values.get("threads"), list):
        made = studies.get("threads").main_configs(Resolved(values, None))
        keys = {c.key() for c in made}
        first = made[0].prompt_tokens if made else None
        added = [c for c in swept if c.prompt_tokens == first and c.key() not in keys]
        return made + added  # points the budget added to the ladder (fill_ladder)
    first = swept[0].prompt_tokens if swept else None
    return [c for c in swept if c.prompt_tokens == first]


def run_decisions(run_dir: str | Path) -> dict[str, Any]:
    """The decisions of a run folder ({} when it holds no trials): summary.md, the index and
    compare show these."""
    run = _load_run(Path(run_dir))
    return run_points(run).decisions() if run is not None else {}


def _load_run(run_dir: Path) -> Any:
    from coresweep.measurement.run import Run

    return Run.load(run_dir) if (run_dir / "run.json").exists() else None


def run_values(run_meta: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """The parameters a run's studies used, "auto" resolved on the machine that ran them:
    batch.json's resolved values (coresweep run), else run.json's, over the defaults."""
    from coresweep import studies
    from coresweep.parameters import current_names

    values = batch.get("resolved") or batch.get("params") or run_meta.get("params") or {}
    return {**studies.defaults(), **current_names(values)}

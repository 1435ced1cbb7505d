"""A run folder read back: `Run` (every table as a DataFrame, the per-config summary) and `select`
(the part of a run that belongs to one study's configs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.measurement.store import TABLES, Store


@dataclass
class Run:
    """A run folder loaded as DataFrames (see docs/architecture.md for the columns)."""

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    trials: Any = None
    tokens: Any = None
    samples: Any = None
    thread_samples: Any = None
    threads: Any = None
    failures: Any = None

    @classmethod
    def load(cls, path: str | Path) -> Run:
        store = Store(path)
        if not (store.path / "run.json").exists():
            raise CoresweepError(f"{path} is not a coresweep run folder (no run.json)")
        store.check_readable()
        tables = {t: store.load_table(t) for t in TABLES}
        f = tables["failures"]
        if len(f):  # a failed attempt is resolved when a later attempt of the unit completed
            done = {Store.unit_name(k, p) for k, p in store.completed_units()}
            f["resolved"] = [
                Store.unit_name(k, p) in done for k, p in zip(f["config_key"], f["process"], strict=True)
            ]
        return cls(path=store.path, meta=store.read_meta(), **tables)

    @cached_property
    def summary(self) -> Any:
        """One row per config (see analysis.summarize), with why each stopped getting processes
        (``stop``, ``stop_reason``: see measurement.adaptive)."""
        from coresweep.analysis import summarize

        return with_stops(summarize(self.trials, self.tokens), self.meta)

    def table(self) -> Any:
        from coresweep.tables import run_table

        return run_table(self.summary)

    def __repr__(self) -> str:
        n = 0 if self.trials is None else len(self.trials)
        f = 0 if self.failures is None else len(self.failures)
        return f"Run({str(self.path)!r}, {n} trial rows, {f} failures)"


def with_stops(summary: Any, meta: dict[str, Any]) -> Any:
    """``stop`` and ``stop_reason`` per config from run.json ``stops``. A config without a record
    was measured by a fixed sweep before stops were recorded ("fixed"), or is still being measured
    by an interrupted adaptive sweep ("active")."""
    if summary is None or not len(summary):
        return summary
    stops = meta.get("stops", {})
    adaptive = (meta.get("sweep") or {}).get("adaptive") is not None
    missing = (("active", "still measuring: the adaptive sweep was interrupted; run it again to "
                "resume") if adaptive else ("fixed", "fixed design: every process asked for"))
    rec = [stops.get(k) for k in summary["config_key"]]
    return summary.assign(stop=[r["stop"] if r else missing[0] for r in rec],
                          stop_reason=[r["reason"] if r else missing[1] for r in rec])

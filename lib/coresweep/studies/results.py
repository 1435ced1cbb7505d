"""A study's part of a run folder (a run folder is shared by the studies of one batch run)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Results:
    """summary (one row per config, in config order, with the configs' labels and one
    ``role_<name>`` column per role field) and the long-form tables restricted to the configs."""

    summary: Any
    trials: Any
    tokens: Any
    samples: Any
    threads: Any
    failures: Any
    labels: dict[str, str]
    run: Any = None
    bandwidth: Any = None  # read bandwidth at the configs' placements, where measured
    contexts: Any = None  # 01: the summary at every prompt length, when several were swept

    def failures_table(self) -> Any:
        """Failed or skipped worker processes (recorded, not retried), or None when there are
        none."""
        if self.failures is None or not len(self.failures):
            return None
        return self.failures[["label", "process", "status", "reason"]]


def role_columns(configs: Sequence[Any]) -> Any:
    """config_key + one ``role_<name>`` column per role field of the configs."""
    import pandas as pd

    return pd.DataFrame([{"config_key": c.key(), **{f"role_{k}": v for k, v in c.role.items()}}
                         for c in configs])


def select(run: Any, configs: Sequence[Any]) -> Results:
    """Restrict a :class:`coresweep.measurement.run.Run` to ``configs`` (TrialConfigs)."""
    import pandas as pd

    labels = {c.key(): c.display for c in configs}
    keys = list(labels)

    def part(df: Any) -> Any:
        if df is None or len(df) == 0 or "config_key" not in df:
            return pd.DataFrame(columns=["config_key"])
        return df[df["config_key"].isin(keys)].reset_index(drop=True)

    summary = part(run.summary)
    if len(summary):
        summary = summary.assign(label=summary["config_key"].map(labels))
        summary = summary.merge(role_columns(configs).drop_duplicates("config_key"),
                                on="config_key", how="left")
        order = {k: i for i, k in enumerate(keys)}
        summary = summary.sort_values("config_key", key=lambda s: s.map(order))
        summary = summary.reset_index(drop=True)
    return Results(summary=summary, trials=part(run.trials), tokens=part(run.tokens),
                   samples=part(run.samples), threads=part(run.threads),
                   failures=part(run.failures), labels=labels, run=run)

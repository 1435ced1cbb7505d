"""Bandwidth rows of a run: the read bandwidth at each trial placement (same CPUs, same thread
count), measured once per run folder and reused (``data/bandwidth/<threads>t-<cpus>.parquet``),
each row saying whether the roofline uses it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from coresweep.measurement.bandwidth_probe import DEFAULT_REPS

METHODS = ("both", "ort", "likwid", "off")  # "both": likwid-bench where it runs, and ort


def placements(configs: Sequence[Any], topo: Any) -> list[tuple[tuple[int, ...], int]]:
    """(CPUs, threads) of every config with an explicit thread count that fits its CPUs."""
    from coresweep.measurement.trial import plan_for

    out = []
    for c in configs:
        if c.threads is None:
            continue
        plan = plan_for(c, topo)
        point = (tuple(sorted(plan.cpus)), c.threads)
        if not plan.oversubscribed and plan.pinned and point not in out:
            out.append(point)
    return out


def _part(run_dir: Path, cpus: tuple[int, ...], threads: int) -> Path:
    from coresweep.machine.cpulist import format_cpulist

    name = re.sub(r"[^0-9-]", "_", format_cpulist(cpus))
    return Path(run_dir) / "data" / "bandwidth" / f"{threads}t-{name}.parquet"


def measure_placements(run_dir: str | Path, configs: Sequence[Any], topo: Any, *,
                       method: str = "both", size_bytes: int | None = None,
                       reps: int = DEFAULT_REPS) -> pd.DataFrame:
    """Measure (or reuse) the bandwidth of every placement; returns the run's bandwidth table."""
    from coresweep.measurement.bandwidth_probe import measure_bandwidth, roofline_method
    from coresweep.measurement.store import Store

    if method != "off":
        for cpus, threads in placements(configs, topo):
            path = _part(Path(run_dir), cpus, threads)
            if path.exists():
                continue  # measured earlier in this run folder
            rows = measure_bandwidth(list(cpus), threads, size_bytes=size_bytes, reps=reps,
                                     method="auto" if method == "both" else method, topo=topo)
            used = roofline_method(rows)
            df = pd.DataFrame([{**r, "roofline": r["method"] == used} for r in rows])
            Store(run_dir).write_part("bandwidth", path.stem, df)
    return load(run_dir)


def load(run_dir: str | Path) -> pd.DataFrame:
    d = Path(run_dir) / "data" / "bandwidth"
    return pd.read_parquet(d) if d.is_dir() and any(d.glob("*.parquet")) else pd.DataFrame()

"""A run folder read for a comparison: who measured it (machine, fingerprint), its thread sweep
(the thread study's configs, re-made from the values the run resolved, selected by key) and the
normalised views of that sweep: per physical core used, % of the read bandwidth measured at the
same placement (the roofline), speedup over 1 thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coresweep.errors import CoresweepError
from coresweep.report.paths import read_json, run_file


@dataclass
class ComparedRun:
    """One run folder as a comparison sees it."""

    name: str  # the run folder's name: the runs' column headers and legend
    path: Path
    machine: str
    cpu: str
    date: str
    fingerprint: dict[str, Any]
    values: dict[str, Any]  # the thread study's parameters, as the run resolved them
    sweep: pd.DataFrame  # one row per thread count of its first runtime (summary columns + the
    # normalised ones): the curve compared across runs
    trials: pd.DataFrame  # the sweep's trials: the work check reads their token checksums
    schema_version: int
    has_bandwidth: bool
    recommendation: str | None  # recommendation.md, when the recommendation ran
    decisions: dict[str, Any] = field(default_factory=dict)  # metric -> analysis Decision
    runtime_sweeps: dict[str, pd.DataFrame] = field(default_factory=dict)  # every runtime's

    def series(self, named: bool) -> dict[str, pd.DataFrame]:
        """The run's curves for a figure: one per runtime, named "run · runtime" when
        ``named`` (some run compared measured several), else the run's name alone."""
        if not named:
            return {self.name: self.sweep}
        return {f"{self.name} · {rt}": s for rt, s in self.runtime_sweeps.items()}


def _sweep(run: Any, values: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The thread study's main curves (its first prompt length), summary rows and trials: its
    configs re-made from the run's own values have the keys the run stored (keys never change
    with later fields)."""
    from coresweep import studies
    from coresweep.studies.base import Resolved
    from coresweep.studies.results import select

    if not isinstance(values.get("threads"), list):
        return pd.DataFrame(), pd.DataFrame()
    res = select(run, studies.get("threads").main_configs(Resolved(values, None)))
    s = res.summary
    if len(s):
        s = s[s["threads"].astype(int) > 0].sort_values("threads").reset_index(drop=True)
    return s, res.trials


def load_run(path: str | Path) -> ComparedRun:
    """Read a run folder for comparison; CoresweepError naming the folder when it is not one or
    was written by a newer coresweep."""
    from coresweep.measurement.bandwidth_table import load as load_bandwidth
    from coresweep.measurement.run import Run
    from coresweep.measurement.store import Store
    from coresweep.recommend.points import run_points, run_values

    path = Path(path)
    if not path.is_dir():
        raise CoresweepError(f"{path} is not a run folder (no such folder)")
    run = Run.load(path)  # refuses a folder without run.json or of a newer schema
    batch = read_json(run_file(path, "batch"))
    from coresweep.analysis.runtimes import by_runtime

    values = run_values(run.meta, batch)
    sweep, trials = _sweep(run, values)
    bandwidth = load_bandwidth(path)
    fp = run.meta.get("fingerprint") or {}
    topology = fp.get("topology") or {}
    parts = {rt: normalise(rows.reset_index(drop=True), topology, values, bandwidth, rt)
             for rt, rows in by_runtime(sweep).items()}
    first = next(iter(parts), None)
    if first and len(trials) and "runtime" in trials:  # the work compared: the first runtime's
        trials = trials[trials["runtime"].astype(str) == first]
    rec = run_file(path, "recommendation.md")
    return ComparedRun(
        name=path.resolve().name, path=path.resolve(),
        machine=str(batch.get("machine") or run.meta.get("machine") or "?"),
        cpu=str(batch.get("cpu") or (fp.get("topology") or {}).get("model_name") or "?"),
        date=str(batch.get("finished") or run.meta.get("end") or run.meta.get("created")
                 or "")[:16].replace("T", " "),
        fingerprint=fp, values=values,
        sweep=parts[first] if first else normalise(sweep, topology, values, bandwidth),
        trials=trials, schema_version=Store(path).check_readable(),
        has_bandwidth=not bandwidth.empty,
        recommendation=rec.read_text() if rec.exists() else None,
        decisions=run_points(run, values).decisions(),
        runtime_sweeps={rt: p for rt, p in parts.items() if rt})


def physical_cores(cpulist: str, topology: dict[str, Any]) -> float:
    """How many physical cores (package, core) a CPU list spans on the machine of the
    fingerprint's topology; NaN when the fingerprint does not know one of the CPUs."""
    from coresweep.machine.cpulist import parse_cpulist

    cpus = (topology.get("cpus") or {})
    try:
        info = [cpus[str(c)] for c in parse_cpulist(str(cpulist))]
    except (KeyError, ValueError):
        return np.nan
    return float(len({(i.get("package"), i.get("core_id")) for i in info})) if info else np.nan


def normalise(sweep: pd.DataFrame, topology: dict[str, Any], values: dict[str, Any],
              bandwidth: pd.DataFrame, runtime: str = "") -> pd.DataFrame:
    """The sweep plus ``cores_used`` and, each as ``<stem>_median/_ci_lo/_ci_hi``:
    decode_tok_s_per_core, roofline_pct (decode GB/s as % of the ceiling measured on the same
    CPUs and threads), decode_speedup and ttft_speedup (over the run's 1-thread point)."""
    from coresweep.analysis.roofline import with_roofline
    from coresweep.engines import model_format
    from coresweep.models import bytes_per_token

    if sweep.empty:
        return sweep
    fmt = model_format(runtime) if runtime else "onnx"  # each runtime reads its own model
    bpt = bytes_per_token(values.get("model"), values.get("precision", "int4"), fmt)
    out = with_roofline(sweep, bpt, bandwidth)
    out["cores_used"] = [physical_cores(c, topology) for c in out["cpus"]]
    one = out[out["threads"].astype(int) == 1]
    base_decode = float(one["decode_tok_s_median"].iloc[0]) if len(one) else np.nan
    base_ttft = float(one["ttft_s_median"].iloc[0]) if len(one) else np.nan
    for stat in ("median", "ci_lo", "ci_hi"):
        decode = out[f"decode_tok_s_{stat}"].astype(float)
        out[f"decode_tok_s_per_core_{stat}"] = decode / out["cores_used"]
        out[f"roofline_pct_{stat}"] = (100.0 * decode * (bpt or np.nan) / 1e9
                                       / out["ceiling_gb_s"])
        out[f"decode_speedup_{stat}"] = decode / base_decode
    # a time: the speedup's low end comes from the CI's high end
    for stat, ttft_stat in (("median", "median"), ("ci_lo", "ci_hi"), ("ci_hi", "ci_lo")):
        out[f"ttft_speedup_{stat}"] = base_ttft / out[f"ttft_s_{ttft_stat}"].astype(float)
    return out

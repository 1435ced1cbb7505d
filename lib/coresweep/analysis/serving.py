"""Serving statistics: per (plan, level) aggregate throughput and latency percentiles, each plan's
knee, and the best plan for a TTFT budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

LEVEL_KEYS = ["plan_key", "plan", "workers", "threads", "pinned", "mode", "level"]


def _pct(values: Any, q: float) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if len(v) else float("nan")


def _one_level(g: pd.DataFrame, itl: pd.DataFrame | None) -> dict[str, Any]:
    ok = g[g["status"] == "ok"]
    start, end = g["t_send_s"].min(), (g["t_send_s"] + g["e2e_s"]).max()
    wall = max(float(end - start), 1e-9)
    gaps = itl["itl_s"] if itl is not None and len(itl) else pd.Series(dtype=float)
    return {"requests": len(g), "errors": int((g["status"] != "ok").sum()), "wall_s": wall,
            "tok_s": float(g["n_tokens"].sum()) / wall, "req_s": len(ok) / wall,
            "ttft_p50_s": _pct(ok["ttft_s"], 50), "ttft_p99_s": _pct(ok["ttft_s"], 99),
            "e2e_p50_s": _pct(ok["e2e_s"], 50), "itl_p50_s": _pct(gaps, 50),
            "itl_p99_s": _pct(gaps, 99)}


def level_summary(requests: pd.DataFrame, itl: pd.DataFrame | None = None,
                  samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (plan, mode, level): aggregate tok/s and req/s over the level's wall time
    (first send to last end), errors, TTFT / end-to-end / inter-token percentiles, and the mean
    machine-wide CPU utilisation while the level ran (% of all CPUs)."""
    if requests is None or not len(requests):
        return pd.DataFrame(columns=[*LEVEL_KEYS, "tok_s", "req_s"])
    keys = [k for k in LEVEL_KEYS if k in requests]
    by_level = dict(iter(itl.groupby(keys))) if itl is not None and len(itl) else {}
    rows = [{**dict(zip(keys, k, strict=True)), **_one_level(g, by_level.get(k))}
            for k, g in requests.groupby(keys, sort=True)]
    out = pd.DataFrame(rows)
    if samples is not None and len(samples):
        util = samples.groupby(["plan_key", "mode", "level"])["util_pct"].mean()
        out = out.merge(util.rename("cpu_util_pct").reset_index(), how="left",
                        on=["plan_key", "mode", "level"])
    return out


def knees(summary: pd.DataFrame, fraction: float = 0.9) -> pd.DataFrame:
    """Per plan, the smallest closed-loop concurrency reaching ``fraction`` of its peak tok/s:
    past it, more users add latency, not throughput."""
    closed = summary[summary["mode"] == "closed"]
    rows = []
    for key, g in closed.groupby("plan_key"):
        g = g.sort_values("level")
        at = g[g["tok_s"] >= fraction * g["tok_s"].max()].iloc[0]
        rows.append({"plan_key": key, "plan": at["plan"], "knee_concurrency": int(at["level"]),
                     "knee_tok_s": at["tok_s"], "peak_tok_s": g["tok_s"].max(),
                     "ttft_p99_at_knee_s": at["ttft_p99_s"]})
    return pd.DataFrame(rows)


def best_for_budgets(summary: pd.DataFrame, budgets_ms: Sequence[float],
                     ok_plans: Sequence[str] | None = None) -> pd.DataFrame:
    """Per TTFT budget: the plan and concurrency with the highest tok/s whose p99 TTFT fits the
    budget, without errors, among plans whose placement was verified (``ok_plans``)."""
    s = summary[(summary["mode"] == "closed") & (summary["errors"] == 0)]
    if ok_plans is not None:
        s = s[s["plan_key"].isin(list(ok_plans))]
    rows = []
    for b in budgets_ms:
        fit = s[s["ttft_p99_s"] * 1000 <= b]
        if fit.empty:
            rows.append({"p99 TTFT budget ms": b, "plan": "none fits", "concurrency": None,
                         "tok/s": None, "p99 TTFT ms": None, "p99 ITL ms": None})
            continue
        r = fit.loc[fit["tok_s"].idxmax()]
        rows.append({"p99 TTFT budget ms": b, "plan": r["plan"], "concurrency": int(r["level"]),
                     "tok/s": round(r["tok_s"], 2), "p99 TTFT ms": round(r["ttft_p99_s"] * 1000),
                     "p99 ITL ms": round(r["itl_p99_s"] * 1000, 1)})
    return pd.DataFrame(rows)

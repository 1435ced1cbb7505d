"""Serving statistics: per (plan, level) aggregate throughput and latency percentiles with
bootstrap intervals, how the requests spread over the workers (counts, an imbalance figure, the
time requests waited while a worker sat idle), each plan's knee, and the best plan per TTFT
budget.

Intervals (95 %, percentile bootstrap over the level's requests, or over its rounds when it ran
in rounds):
- TTFT p50 / p99: resample the finished requests. With n requests the p99 is among the top
  n/100 + 1 values: below ~100 requests it is close to the maximum, and its interval is narrower
  than the truth; ``n_ok`` is beside it.
- aggregate tok/s of a closed loop: Little's law, users × Σ tokens / Σ end-to-end time, resampled
  by request, and scaled onto the measured rate (tokens / wall time); of rounds: Σ tokens / Σ
  round time, resampled by round. Open-loop throughput is set by the arrival rate: no interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

LEVEL_KEYS = ["plan_key", "plan", "dispatch", "workers", "threads", "pinned", "batch", "mode",
              "level"]
IDLE_WAIT_FLAG = 0.02  # idle-while-queued time above this share of request time is flagged
N_BOOT = 2000
CI_LEVEL = 0.95


def _pct(values: Any, q: float) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.percentile(v, q)) if len(v) else float("nan")


def _boot(values: np.ndarray, stat: Any, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``stat`` over rows of ``values`` (resampled together)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(N_BOOT, len(values)))
    stats = stat(values[idx])
    a = (1 - CI_LEVEL) / 2
    lo, hi = np.nanquantile(stats, [a, 1 - a])
    return float(lo), float(hi)


def quantile_ci(values: Any, q: float, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the ``q``-th percentile of ``values`` (NaNs dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return _boot(v, lambda m: np.percentile(m, q, axis=1), seed)


def ttft_intervals_within(ttft_s: Any, target: float) -> bool:
    """True when the p50 and p99 TTFT intervals are each within ± ``target`` of their value
    (a level may stop adding requests then)."""
    for q in (50, 99):
        lo, hi = quantile_ci(ttft_s, q)
        mid = _pct(ttft_s, q)
        if not (np.isfinite(lo) and mid > 0 and (hi - lo) / 2 <= target * mid):
            return False
    return True


def _tok_s_ci(g: pd.DataFrame, tok_s: float) -> tuple[float, float]:
    mode = g["mode"].iloc[0]
    if mode == "rounds" and "round" in g:
        per = g.groupby("round").agg(tok=("n_tokens", "sum"), start=("t_send_s", "min"),
                                     end=("t_end_s", "max"))
        arr = np.column_stack([per["tok"], per["end"] - per["start"]]).astype(float)
        return _boot(arr, lambda m: m[..., 0].sum(1) / m[..., 1].sum(1))
    if mode != "closed":
        return float("nan"), float("nan")
    users = float(g["level"].iloc[0])
    arr = g[["n_tokens", "e2e_s"]].to_numpy(dtype=float)
    full = users * arr[:, 0].sum() / arr[:, 1].sum()
    lo, hi = _boot(arr, lambda m: users * m[..., 0].sum(1) / m[..., 1].sum(1))
    return lo * tok_s / full, hi * tok_s / full


def busy_intervals(g: pd.DataFrame) -> dict[int, np.ndarray]:
    """Worker slot → its [start, end] generation intervals (server clock) in this level."""
    ok = g.dropna(subset=["server_t_start", "server_t_end"]) if "server_t_start" in g else g[:0]
    return {int(w): d[["server_t_start", "server_t_end"]].to_numpy(dtype=float)
            for w, d in ok.groupby("worker") if w >= 0}


def idle_wait_s(g: pd.DataFrame, workers: int) -> pd.Series:
    """Per request, the seconds between its send and its generation's start during which some
    worker was idle while another was busy: the request could have run but was sent to, or left
    waiting behind, a busy one. Waiting while every worker is busy is owed; while every worker is
    idle it is transit (HTTP, the dispatcher), not queueing."""
    busy = busy_intervals(g)
    if "server_t_start" not in g:
        return pd.Series(np.nan, index=g.index)
    points = np.unique(np.concatenate([iv.ravel() for iv in busy.values()] or [[]]))
    out = []
    for send, start in zip(g["t_send_unix"], g["server_t_start"], strict=True):
        if not (np.isfinite(send) and np.isfinite(start)) or start <= send:
            out.append(0.0 if np.isfinite(start) else np.nan)
            continue
        cuts = np.unique(np.clip(np.concatenate([[send, start], points]), send, start))
        mids = (cuts[:-1] + cuts[1:]) / 2
        n_busy = sum(((iv[:, :1] <= mids) & (mids < iv[:, 1:])).any(0) for iv in busy.values())
        n_busy = np.asarray(n_busy)
        out.append(float(np.sum(np.diff(cuts)[(n_busy > 0) & (n_busy < workers)])))
    return pd.Series(out, index=g.index)


def _spread(g: pd.DataFrame, workers: int) -> dict[str, Any]:
    ok = g[g["status"] == "ok"]
    counts = ok["worker"].value_counts().reindex(range(workers), fill_value=0)
    mean = counts.mean()
    waited = idle_wait_s(ok, workers)
    share = float(waited.sum() / ok["e2e_s"].sum()) if len(ok) and waited.notna().any() \
        else float("nan")
    return {"workers_used": int((counts > 0).sum()), "worker_min_requests": int(counts.min()),
            "worker_max_requests": int(counts.max()),
            "imbalance": float((counts.max() - counts.min()) / mean) if mean else float("nan"),
            "idle_wait_s": float(waited.sum()), "idle_wait_pct": 100 * share,
            "idle_wait_flag": bool(share > IDLE_WAIT_FLAG)}


def _one_level(g: pd.DataFrame, itl: pd.DataFrame | None) -> dict[str, Any]:
    g = g.assign(t_end_s=g["t_send_s"] + g["e2e_s"])
    ok = g[g["status"] == "ok"]
    wall = max(float(g["t_end_s"].max() - g["t_send_s"].min()), 1e-9)
    if g["mode"].iloc[0] == "rounds" and "round" in g:  # the time between rounds is no load
        per = g.groupby("round").agg(start=("t_send_s", "min"), end=("t_end_s", "max"))
        wall = float((per["end"] - per["start"]).sum())
    gaps = itl["itl_s"] if itl is not None and len(itl) else pd.Series(dtype=float)
    tok_s = float(ok["n_tokens"].sum()) / wall
    tok_lo, tok_hi = _tok_s_ci(ok, tok_s) if len(ok) else (float("nan"),) * 2
    out = {"requests": len(g), "n_ok": len(ok),
           "rejected": int((g["status"] == "rejected").sum()),
           "errors": int((g["status"] == "error").sum()), "wall_s": wall, "tok_s": tok_s,
           "tok_s_ci_lo": tok_lo, "tok_s_ci_hi": tok_hi, "req_s": len(ok) / wall,
           "e2e_p50_s": _pct(ok["e2e_s"], 50), "itl_p50_s": _pct(gaps, 50),
           "itl_p99_s": _pct(gaps, 99)}
    for q in (50, 99):
        lo, hi = quantile_ci(ok["ttft_s"], q)
        out.update({f"ttft_p{q}_s": _pct(ok["ttft_s"], q), f"ttft_p{q}_ci_lo_s": lo,
                    f"ttft_p{q}_ci_hi_s": hi})
    return {**out, **_spread(g, int(g["workers"].iloc[0]))}


def level_summary(requests: pd.DataFrame, itl: pd.DataFrame | None = None,
                  samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (plan, mode, level): aggregate tok/s and req/s over the level's wall time
    (first send to last end) with intervals, errors and 503s, TTFT percentiles with intervals,
    end-to-end and inter-token percentiles, how the requests spread over the workers, and the
    mean machine-wide CPU utilisation while the level ran (% of all CPUs)."""
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


def worker_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Long form: finished requests per (plan, mode, level, worker slot), every slot listed."""
    rows = []
    for (key, plan, mode, level, workers), g in requests.groupby(
            ["plan_key", "plan", "mode", "level", "workers"], sort=True):
        counts = g[g["status"] == "ok"]["worker"].value_counts()
        rows += [{"plan_key": key, "plan": plan, "mode": mode, "level": level, "worker": w,
                  "requests": int(counts.get(w, 0))} for w in range(int(workers))]
    return pd.DataFrame(rows)


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


BUDGET_COLUMNS = ["budget_ms", "fits", "status", "plan_key", "plan", "dispatch", "batch",
                  "concurrency",
                  "tok_s", "tok_s_ci_lo", "tok_s_ci_hi", "ttft_p99_ms", "ttft_p99_ci_hi_ms",
                  "itl_p99_ms", "sentence", "controls"]


def with_roles(summary: pd.DataFrame, requests: pd.DataFrame | None) -> pd.DataFrame:
    """The level summary with each plan's role columns (role_control for the controls)."""
    if requests is None or not len(requests) or summary is None or not len(summary):
        return summary
    roles = [c for c in requests if c.startswith("role_")]
    return summary.merge(requests[["plan_key", *roles]].drop_duplicates("plan_key"),
                         on="plan_key", how="left") if roles else summary


def budget_points(summary: pd.DataFrame, budget_ms: float,
                  ok_plans: Sequence[str] | None = None) -> pd.DataFrame:
    """The closed-loop levels that may answer a p99 TTFT budget, as points of the one decision
    (analysis.decision): no errors or 503s, p99 TTFT within the budget; a plan whose workers'
    placement was not verified is not eligible, a control plan (role_control) is shown beside
    the pick, never picked. The cheaper of tied levels has the lower p99 TTFT."""
    s = summary[(summary["mode"] == "closed") & (summary["errors"] == 0)]
    if "rejected" in s:
        s = s[s["rejected"] == 0]
    s = s[s["ttft_p99_s"] * 1000 <= budget_ms]
    verified = s["plan_key"].isin(list(ok_plans)) if ok_plans is not None else True
    return s.assign(config_key=[f"{k}@{lv:g}" for k, lv in zip(s["plan_key"], s["level"],
                                                                 strict=True)],
                    label=[f"{p} at {int(lv)} users" for p, lv in zip(s["plan"], s["level"],
                                                                       strict=True)],
                    tok_s_median=s["tok_s"], placement_ok=verified)


def best_for_budgets(summary: pd.DataFrame, budgets_ms: Sequence[float],
                     ok_plans: Sequence[str] | None = None) -> pd.DataFrame:
    """Per p99 TTFT budget, the one decision (analysis.decision) over the levels that fit it
    (:func:`budget_points`): the plan and concurrency to deploy, how sure, the controls beside
    it. One row per budget (BUDGET_COLUMNS); ``fits`` False and the rest empty when none fits."""
    from coresweep.analysis.decision import decide

    rows = []
    for b in budgets_ms:
        d = decide(budget_points(summary, b, ok_plans), "tok_s", cost=("ttft_p99_s",))
        r = d.pick
        if r is None:
            rows.append({"budget_ms": b, "fits": False, "status": d.status,
                         "sentence": d.sentence(), "controls": d.controls})
            continue
        rows.append({"budget_ms": b, "fits": True, "status": d.status, "plan_key": r["plan_key"],
                     "plan": r["plan"], "dispatch": r.get("dispatch"),
                     "batch": int(r.get("batch", 1) or 1), "concurrency": int(r["level"]), "tok_s": r["tok_s"],
                     "tok_s_ci_lo": r.get("tok_s_ci_lo"), "tok_s_ci_hi": r.get("tok_s_ci_hi"),
                     "ttft_p99_ms": r["ttft_p99_s"] * 1000,
                     "ttft_p99_ci_hi_ms": r.get("ttft_p99_ci_hi_s", np.nan) * 1000,
                     "itl_p99_ms": r["itl_p99_s"] * 1000, "sentence": d.sentence(),
                     "controls": d.controls})
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)

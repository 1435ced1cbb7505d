"""07's numbers (and bench/batching.py's): a batch trial's aggregate decode, its step time, the
roofline per step and the CPU time per token, against the batch size.

A batch of B sequences advances one token each per step, so every sequence decodes at
``decode_tok_s`` (1 / step time) and the batch at B x that: the aggregate's median and 95 %
interval are B x the per-sequence ones (the same timestamps). A step reads every weight once for
all B sequences, plus each sequence's KV cache: bytes per step = weights + B x context x KV bytes
per position. Against the read bandwidth measured on the same CPUs with the same threads, that
says whether a step is still bandwidth-bound (≥ 70 % of the ceiling, analysis.roofline) or has
turned compute-bound: the step time then grows with B and the aggregate stops growing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coresweep.analysis.roofline import BOUND_FRACTION

AGG = "agg_decode_tok_s"
_STATS = ("median", "ci_lo", "ci_hi")


def with_aggregate(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` plus ``agg_decode_tok_s_{median,ci_lo,ci_hi}`` (batch x each sequence's),
    ``step_ms`` (one step: 1000 / decode tok/s) and ``cpu_ms_per_token``."""
    out = summary.copy()
    if out.empty:
        return out
    batch = out["batch"].astype(float) if "batch" in out else pd.Series(1.0, index=out.index)
    for s in _STATS:
        out[f"{AGG}_{s}"] = batch * out[f"decode_tok_s_{s}"].astype(float)
    out["step_ms"] = 1000.0 / out["decode_tok_s_median"].astype(float)
    if "cpu_s_per_token_median" in out:
        out["cpu_ms_per_token"] = 1000.0 * out["cpu_s_per_token_median"].astype(float)
    return out


def bytes_per_step(batch: Any, weight_bytes: float, kv_bytes_per_position: float,
                   context: float) -> Any:
    """Bytes one decode step reads: every weight once, plus each sequence's KV cache of
    ``context`` positions (the mean over the generation)."""
    return float(weight_bytes) + np.asarray(batch, dtype=float) * kv_bytes_per_position * context


def with_step_roofline(summary: pd.DataFrame, weight_bytes: float | None,
                       kv_bytes_per_position: float, bandwidth: pd.DataFrame | None
                       ) -> pd.DataFrame:
    """:func:`with_aggregate` plus ``step_gb`` (bytes per step), ``step_gb_s`` (what the step
    reads per second), ``ceiling_gb_s`` (the bandwidth measured at the point's CPUs and threads)
    and ``pct_of_ceiling``."""
    from coresweep.analysis.roofline import with_roofline

    out = with_aggregate(summary)
    if out.empty or not weight_bytes:
        return out.assign(step_gb=np.nan, step_gb_s=np.nan, ceiling_gb_s=np.nan,
                          pct_of_ceiling=np.nan)
    context = out["prompt_tokens"].astype(float) + out["gen_tokens"].astype(float) / 2
    step = bytes_per_step(out["batch"], weight_bytes, kv_bytes_per_position, context)
    ceil = with_roofline(out, weight_bytes, bandwidth)["ceiling_gb_s"]
    out["step_gb"] = step / 1e9
    out["step_gb_s"] = out["step_gb"] * out["decode_tok_s_median"].astype(float)
    out["ceiling_gb_s"] = ceil.to_numpy()
    out["pct_of_ceiling"] = 100.0 * out["step_gb_s"] / out["ceiling_gb_s"]
    return out


def ratio(a: Any, b: Any, metric: str = AGG) -> tuple[float, float, float]:
    """``a`` over ``b`` for ``metric``: the median ratio and the conservative interval the two
    95 % intervals allow (a's low end over b's high end, and the reverse)."""
    am, alo, ahi = (float(a[f"{metric}_{s}"]) for s in _STATS)
    bm, blo, bhi = (float(b[f"{metric}_{s}"]) for s in _STATS)
    with np.errstate(divide="ignore", invalid="ignore"):
        return am / bm, alo / bhi, ahi / blo


def batch_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (threads, batch), for people: aggregate and per-sequence decode with their
    intervals, the gain over batch 1 at the same threads, TTFT, step time, the step's share of
    the bandwidth ceiling and the CPU time per token."""
    rows = []
    for _, r in points.sort_values(["threads", "batch"]).iterrows():
        base = points[(points["threads"] == r["threads"]) & (points["batch"] == 1)]
        gain = ratio(r, base.iloc[0]) if len(base) else (np.nan,) * 3
        rows.append({
            "threads": int(r["threads"]), "batch": int(r["batch"]),
            "aggregate tok/s": _interval_text(r, AGG),
            "per sequence tok/s": _interval_text(r, "decode_tok_s"),
            "× batch 1": f"{gain[0]:.2f} [{gain[1]:.2f}–{gain[2]:.2f}]",
            "TTFT ms": round(1000 * float(r["ttft_s_median"]), 0),
            "step ms": round(float(r["step_ms"]), 1),
            "% of ceiling": round(float(r.get("pct_of_ceiling", np.nan)), 0),
            "CPU ms/token": round(float(r.get("cpu_ms_per_token", np.nan)), 1),
        })
    return pd.DataFrame(rows)


def _interval_text(r: Any, metric: str) -> str:
    m, lo, hi = (float(r[f"{metric}_{s}"]) for s in _STATS)
    return f"{m:.1f} [{lo:.1f}–{hi:.1f}]"


def compute_bound_from(points: pd.DataFrame, threads: int) -> Any:
    """The smallest batch at ``threads`` whose step reads less than 70 % of the ceiling (its
    step has turned compute-bound); None when every batch stays bandwidth-bound, NaN when no
    ceiling was measured there."""
    p = points[points["threads"] == threads].sort_values("batch")
    if "pct_of_ceiling" not in p or p["pct_of_ceiling"].isna().all():
        return np.nan
    below = p[p["pct_of_ceiling"] < 100 * BOUND_FRACTION]
    return int(below["batch"].iloc[0]) if len(below) else None


def roofline_sentence(points: pd.DataFrame, threads: int) -> str:
    """Markdown: where batching turns a decode step compute-bound at ``threads``."""
    p = points[points["threads"] == threads].sort_values("batch")
    if p.empty:
        return f"No batch was measured at {threads} thread(s)."
    first = compute_bound_from(points, threads)
    if first is not None and not isinstance(first, int):
        return (f"At {threads} thread(s) no read bandwidth was measured on these CPUs: the "
                "roofline per step cannot say where decode turns compute-bound.")
    lo, hi = p.iloc[0], p.iloc[-1]
    growth = hi["step_ms"] / lo["step_ms"]
    head = (f"At {threads} thread(s) a step of batch {int(lo['batch'])} reads "
            f"{lo['step_gb_s']:.1f} GB/s ({lo['pct_of_ceiling']:.0f} % of the "
            f"{lo['ceiling_gb_s']:.1f} GB/s ceiling); at batch {int(hi['batch'])} the step takes "
            f"{growth:.1f}× as long for {int(hi['batch']) // max(1, int(lo['batch']))}× the "
            f"sequences and reads {hi['pct_of_ceiling']:.0f} %")
    if first is None:
        return head + " → every batch measured is still **bandwidth-bound**: a larger batch " \
            "is nearly free per step."
    return head + (f" → from **batch {first}** the step is below 70 % of the ceiling: decode has "
                   "turned **compute-bound**, each added sequence costs compute and the aggregate "
                   "grows more slowly.")


__all__ = ["AGG", "batch_table", "bytes_per_step", "compute_bound_from", "ratio",
           "roofline_sentence", "with_aggregate", "with_step_roofline"]

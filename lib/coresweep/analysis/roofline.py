"""Roofline arithmetic for decode: every decoded token reads (about) every weight once, so
achieved bandwidth = decode tok/s × bytes read per decoded token; against the read bandwidth
measured at the same placement (same CPUs, same thread count) it says how close decode is to the
memory ceiling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BOUND_FRACTION = 0.70  # ≥ 70 % of the measured ceiling: bandwidth-bound (llama.cpp: 74–91 %)


def achieved_gb_s(decode_tok_s: Any, bytes_per_token: float) -> Any:
    """GB/s (1 GB = 1e9 bytes) the decode loop reads."""
    return np.asarray(decode_tok_s, dtype=float) * float(bytes_per_token) / 1e9


def with_roofline(summary: pd.DataFrame, bytes_per_token: float | None,
                  bandwidth: pd.DataFrame | None) -> pd.DataFrame:
    """``summary`` plus ``decode_gb_s`` and, where a bandwidth row matches the point's CPUs and
    thread count, ``ceiling_gb_s`` and ``pct_of_ceiling``."""
    out = summary.copy()
    if not bytes_per_token or out.empty:
        return out.assign(decode_gb_s=np.nan, ceiling_gb_s=np.nan, pct_of_ceiling=np.nan)
    out["decode_gb_s"] = achieved_gb_s(out["decode_tok_s_median"], bytes_per_token)
    ceiling = _ceilings(bandwidth)
    out["ceiling_gb_s"] = [ceiling.get((str(c), int(t)), np.nan)
                           for c, t in zip(out["cpus"], out["threads"], strict=True)]
    out["pct_of_ceiling"] = 100.0 * out["decode_gb_s"] / out["ceiling_gb_s"]
    return out


def runtime_roofline(summary: pd.DataFrame, model: Any, precision: str,
                     bandwidth: pd.DataFrame | None) -> pd.DataFrame:
    """:func:`with_roofline` for each runtime's rows with its own model's bytes per token (the
    GGUF of runtime llamacpp reads other bytes than the ONNX model of ort and genai)."""
    from coresweep.engines import model_format
    from coresweep.models import bytes_per_token

    if summary is None or summary.empty or "runtime" not in summary:
        return with_roofline(summary, bytes_per_token(model, precision), bandwidth)
    parts = [with_roofline(rows, bytes_per_token(model, precision, model_format(runtime)),
                           bandwidth)
             for runtime, rows in summary.groupby("runtime", sort=False)]
    return pd.concat(parts).loc[summary.index]


def _ceilings(bandwidth: pd.DataFrame | None) -> dict[tuple[str, int], float]:
    """(cpus, threads) → GB/s of the method the roofline uses (its rows say which)."""
    if bandwidth is None or bandwidth.empty:
        return {}
    ok = bandwidth[bandwidth["ok"].astype(bool) & bandwidth["roofline"].astype(bool)]
    return {(str(r["cpus"]), int(r["threads"])): float(r["gb_s"]) for _, r in ok.iterrows()}


def bound_sentence(rows: pd.DataFrame, decision: Any = None) -> str:
    """Markdown: is decode bandwidth-bound here? Told at the point ``decision`` (the run's decode
    analysis.decision.Decision) recommends when it is among ``rows``, else at the fastest."""
    r = rows.dropna(subset=["pct_of_ceiling"]) if "pct_of_ceiling" in rows else rows.iloc[0:0]
    if r.empty:
        return ("No bandwidth measured at these placements: the roofline cannot say whether "
                "decode is bandwidth-bound here.")
    key = decision.pick.get("config_key") if decision is not None and decision.pick else None
    mine = r[r["config_key"] == key] if key is not None and "config_key" in r else r.iloc[0:0]
    top = mine.iloc[0] if len(mine) else r.loc[r["decode_tok_s_median"].idxmax()]
    which = "At the recommended point" if len(mine) else "At its fastest"
    pct, t = float(top["pct_of_ceiling"]), int(top["threads"])
    head = (f"{which} ({t} thread(s), {top['decode_tok_s_median']:.1f} tok/s) decode reads "
            f"**{top['decode_gb_s']:.1f} GB/s**, {pct:.0f} % of the {top['ceiling_gb_s']:.1f} GB/s "
            "measured on the same CPUs")
    if pct >= 100 * BOUND_FRACTION:
        return head + (" → **bandwidth-bound**: more threads cannot make it much faster; "
                       "faster memory or fewer bytes per token (quantisation) can.")
    return head + (" → **compute-bound** here: decode is below the memory ceiling, so per-core "
                   "speed and thread scaling still matter.")

"""CI-aware choice of the best configuration: the fewest threads (then CPUs) whose result is
statistically tied with the best — the 95 % bootstrap CIs of the two medians overlap — among
points whose placement was verified and that are not flagged noisy. A point that is only
marginally faster never costs a user more cores than needed."""

from __future__ import annotations

from typing import Any

import pandas as pd

# metric -> True when higher is better
DIRECTION = {"decode_tok_s": True, "prefill_tok_s": True, "ttft_s": False, "e2e_s": False}
RULE = ("fewest threads whose 95 % bootstrap CI of the median overlaps the best point's, among "
        "points with placement verified and not flagged noisy")


def eligible(summary: pd.DataFrame) -> pd.DataFrame:
    """Points that may be recommended: explicit thread counts, placement verified, not noisy."""
    s = summary[summary["threads"].astype(int) > 0]
    if "placement_ok" in s:
        s = s[s["placement_ok"].astype(bool)]
    if "noisy" in s:
        s = s[~s["noisy"].astype(bool)]
    return s


def tied_with(best: pd.Series, other: pd.Series, metric: str) -> bool:
    """The two medians' 95 % CIs overlap."""
    return not (other[f"{metric}_ci_hi"] < best[f"{metric}_ci_lo"]
                or best[f"{metric}_ci_hi"] < other[f"{metric}_ci_lo"])


def choose(summary: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    """The recommended point for ``metric``, with the best point it ties with; None when no
    point is eligible."""
    s = eligible(summary) if summary is not None and len(summary) else pd.DataFrame()
    if s.empty or f"{metric}_median" not in s:
        return None
    col = f"{metric}_median"
    best = s.loc[s[col].idxmax() if DIRECTION[metric] else s[col].idxmin()]
    tied = s[[tied_with(best, r, metric) for _, r in s.iterrows()]]
    n_cpus = tied["n_cpus"] if "n_cpus" in tied else tied["threads"]
    pick = tied.assign(_cpus=n_cpus).sort_values(["threads", "_cpus"]).iloc[0]
    return {"metric": metric, "config_key": pick["config_key"], "label": pick.get("label"),
            "threads": int(pick["threads"]), "cpus": pick.get("cpus"),
            "strategy": pick.get("strategy"), "value": float(pick[col]),
            "ci": (float(pick[f"{metric}_ci_lo"]), float(pick[f"{metric}_ci_hi"])),
            "best_label": best.get("label"), "best_threads": int(best["threads"]),
            "best_value": float(best[col]), "tied": len(tied), "rule": RULE}


def prefill_decode_note(ttft: dict | None, decode: dict | None) -> str:
    """Markdown when the best thread count for the prompt (TTFT) differs from decode's."""
    if not ttft or not decode:
        return ""
    if ttft["threads"] == decode["threads"]:
        return (f"Prefill and decode agree: {ttft['threads']} thread(s) is the recommended "
                "count for both.")
    return (f"**Prefill and decode disagree**: the prompt (TTFT) is best with "
            f"{ttft['threads']} thread(s), decode with {decode['threads']} — prefill is compute-"
            "bound and scales with cores; decode streams the weights and stops scaling when "
            "memory bandwidth runs out. One session uses one count: pick by what your users "
            "wait for (long prompts: TTFT; long answers: decode).")

"""06's numbers: each knob's effect against the baseline, and spinning's share of the CPU time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coresweep.analysis.decision import BETTER, EQUIVALENT, WORSE, relation

_VERDICTS = {BETTER: "faster", WORSE: "slower", EQUIVALENT: "the same (within 5 %)"}


def _ratio(row: pd.Series, base: pd.Series, metric: str) -> tuple[float, float, float]:
    """Median ratio and a conservative interval from the two 95 % CIs of the medians."""
    m, lo, hi = (row[f"{metric}_{s}"] for s in ("median", "ci_lo", "ci_hi"))
    bm, blo, bhi = (base[f"{metric}_{s}"] for s in ("median", "ci_lo", "ci_hi"))
    with np.errstate(divide="ignore", invalid="ignore"):
        return m / bm, lo / bhi, hi / blo


def baseline(summary: pd.DataFrame) -> pd.Series | None:
    if summary is None or not len(summary) or "role_knob" not in summary:
        return None
    rows = summary[summary["role_knob"] == "baseline"]
    return rows.iloc[0] if len(rows) else None


def effects(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per knob value measured: decode tok/s and TTFT against the baseline (ratio and
    interval), CPU use, and whether the decode difference is outside the CIs."""
    base = baseline(summary)
    if base is None:
        return pd.DataFrame()
    rows = []
    for _, r in summary[summary["role_knob"] != "baseline"].iterrows():
        dec, dec_lo, dec_hi = _ratio(r, base, "decode_tok_s")
        ttft, _, _ = _ratio(r, base, "ttft_s")
        rel = relation(r, base, "decode_tok_s")
        rows.append({
            "knob": r["role_knob"], "value": str(r["role_value"]),
            "decode tok/s": round(float(r["decode_tok_s_median"]), 2),
            "decode vs baseline": f"{dec:.3f} [{dec_lo:.3f}, {dec_hi:.3f}]",
            "TTFT vs baseline": f"{ttft:.3f}",
            "CPU %": round(float(r.get("cpu_util_pct_median", np.nan)), 1),
            "CPU ms/token": round(1e3 * float(r.get("cpu_s_per_token_median", np.nan)), 2),
            "verdict": _VERDICTS.get(rel, "no clear difference (within noise)"),
            "decode_ratio": dec, "decode_ratio_lo": dec_lo, "decode_ratio_hi": dec_hi,
        })
    return pd.DataFrame(rows)


def effects_table(effects_: pd.DataFrame) -> pd.DataFrame:
    """:func:`effects` for people (the numeric ratio columns left out)."""
    return effects_.drop(columns=[c for c in effects_ if c.startswith("decode_ratio")])


def spin_pair(summary: pd.DataFrame) -> tuple[pd.Series, pd.Series] | None:
    """(spinning on, spinning off): the baseline and the point that flips spinning, at the same
    threads; None unless both were measured."""
    if summary is None or not len(summary) or "role_spinning" not in summary:
        return None
    base = baseline(summary)
    flip = summary[summary["role_knob"] == "spinning"]
    if base is None or not len(flip):
        return None
    pair = {bool(base["role_spinning"]): base, bool(flip.iloc[0]["role_spinning"]): flip.iloc[0]}
    return (pair[True], pair[False]) if set(pair) == {True, False} else None


def spin_share(on: pd.Series, off: pd.Series) -> float:
    """The share of spinning's CPU time per token that goes away when pool threads sleep."""
    return float(1 - off["cpu_s_per_token_median"] / on["cpu_s_per_token_median"])


def spin_split(summary: pd.DataFrame) -> pd.DataFrame:
    """Spinning on and off side by side at the same threads: tok/s, TTFT, CPU %, CPU time per
    token, and the CPU time spinning costs (the part that goes away when threads sleep)."""
    pair = spin_pair(summary)
    if pair is None:
        return pd.DataFrame()
    on, off = pair
    rows = [("decode tok/s", "decode_tok_s_median", 1), ("TTFT ms", "ttft_s_median", 1e3),
            ("CPU % (all threads)", "cpu_util_pct_median", 1),
            ("CPU ms per token", "cpu_s_per_token_median", 1e3)]
    out = pd.DataFrame([{"measure": name, "spinning on": round(float(on[c]) * k, 2),
                         "spinning off": round(float(off[c]) * k, 2)} for name, c, k in rows])
    return pd.concat([out, pd.DataFrame([{"measure": "share of CPU time that is spin",
                                          "spinning on": f"{100 * spin_share(on, off):.0f} %",
                                          "spinning off": "-"}])], ignore_index=True)


def spin_sentence(summary: pd.DataFrame) -> str:
    pair = spin_pair(summary)
    if pair is None:
        return "Spinning on and off were not both measured."
    on, off = pair
    return (f"With spinning on, about **{100 * spin_share(on, off):.0f} %** of the CPU time is "
            "spent spinning (the CPU time per token that disappears when pool threads sleep); "
            f"decode runs at {on['decode_tok_s_median']:.2f} tok/s with spinning and "
            f"{off['decode_tok_s_median']:.2f} without.")


def thread_utilisation(threads: pd.DataFrame) -> pd.DataFrame:
    """Per config and thread rank (busiest first): the median share of the timed wall time each
    thread was on a CPU, over processes."""
    if threads is None or not len(threads) or "util_pct" not in threads:
        return pd.DataFrame(columns=["config_key", "rank", "util_pct"])
    t = threads[threads["when"] == "decode"].copy()
    t["rank"] = t.groupby(["config_key", "process"])["cpu_s"].rank(ascending=False,
                                                                   method="first").astype(int)
    return (t.groupby(["config_key", "rank"], as_index=False)["util_pct"].median()
            .sort_values(["config_key", "rank"]))


__all__ = ["baseline", "effects", "effects_table", "spin_pair", "spin_sentence", "spin_share",
           "spin_split", "thread_utilisation"]

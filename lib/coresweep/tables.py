"""Tables shown beside the figures and written to summary.md / summary.csv: frames built from a
run's per-config summary, one markdown formatter for all of them, and :func:`show`, the one way
a notebook displays a table (no pandas index column, no internal hash columns)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

# identities the tables are joined on (TrialConfig.key(), a serving plan's key): hashes that mean
# nothing to a reader, left out of what a notebook shows unless asked for by name
HASH_COLUMNS = ("key", "config_key", "plan_key")


class Table:
    """A DataFrame as a notebook shows it, without its index: HTML for the report, aligned text
    for a terminal or a text-only viewer."""

    def __init__(self, df: pd.DataFrame):
        self.df = df

    def _repr_html_(self) -> str:
        return self.df.to_html(index=False, notebook=True, border=0)

    def __repr__(self) -> str:
        return self.df.to_string(index=False)


def for_readers(df: pd.DataFrame, keep: Iterable[str] = ()) -> pd.DataFrame:
    """``df`` without the hash columns (except those in ``keep``), numbered from 0."""
    drop = [c for c in HASH_COLUMNS if c in df.columns and c not in set(keep)]
    return df.drop(columns=drop).reset_index(drop=True)


def show(df: pd.DataFrame | None, *, keep: Iterable[str] = ()) -> None:
    """Display a table in a notebook without its index column or its hash columns (``keep``
    names any a reader needs); nothing for None."""
    from IPython.display import display

    if df is not None:
        display(Table(for_readers(df, keep)))


def markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub/Jupyter markdown table (no index; '|' escaped)."""
    cols = [str(c) for c in df.columns]

    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _explicit_threads(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["threads"].astype(int) > 0].sort_values("threads")


def _threads_value(t: Any) -> Any:
    return "ORT default" if int(t) < 0 else int(t)


def study_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The study's table (threads | TTFT ms | decode tok/s | CPU %) for explicit thread counts,
    with the CI of each median and the verified placement; one block per runtime (a first
    ``runtime`` column) when several were measured side by side."""
    from coresweep.analysis.runtimes import by_runtime

    parts = by_runtime(summary)
    if len(parts) > 1:
        return pd.concat([_study_rows(rows).assign(runtime=rt) for rt, rows in parts.items()],
                         ignore_index=True).pipe(lambda d: d[["runtime", *d.columns[:-1]]])
    return _study_rows(summary)


def runtimes_markdown(summary: pd.DataFrame) -> str:
    """The runtimes side by side (analysis.runtimes.side_by_side) for decode and TTFT, as
    markdown; a sentence saying how to get them when one runtime was measured."""
    from coresweep.analysis.runtimes import runtimes_of, side_by_side

    names = runtimes_of(summary)
    if len(names) < 2:
        return (f"One runtime measured ({', '.join(names) or 'ort'}): give `runtime` a list, "
                "e.g. `-p runtime=ort,llamacpp`, to draw the runtimes side by side.")
    return "\n\n".join(f"**{head}**\n\n" + markdown(side_by_side(summary, metric))
                        for head, metric in (("decode tok/s", "decode_tok_s"),
                                             ("TTFT", "ttft_s")))


def _study_rows(summary: pd.DataFrame) -> pd.DataFrame:
    s = _explicit_threads(summary)
    roof = {}
    if "decode_gb_s" in s:  # the roofline: decode's bandwidth against the measured ceiling
        roof = {"decode GB/s": s["decode_gb_s"].round(2).to_numpy(),
                "% of bandwidth": s["pct_of_ceiling"].round(0).to_numpy()}
    return pd.DataFrame({
        "threads": s["threads"].astype(int).to_numpy(),
        "TTFT ms": (s["ttft_s_median"] * 1000).round(1).to_numpy(),
        "TTFT 95% CI": [f"{a * 1000:.0f}–{b * 1000:.0f}" for a, b in
                        zip(s["ttft_s_ci_lo"], s["ttft_s_ci_hi"], strict=True)],
        "decode tok/s": s["decode_tok_s_median"].round(2).to_numpy(),
        "decode 95% CI": [f"{a:.1f}–{b:.1f}" for a, b in
                          zip(s["decode_tok_s_ci_lo"], s["decode_tok_s_ci_hi"], strict=True)],
        **roof,
        "CPU %": s["cpu_util_pct_median"].round(0).to_numpy() if "cpu_util_pct_median" in s
        else np.nan,
        "placement ok": s["placement_ok"].to_numpy() if "placement_ok" in s else np.nan,
        "noisy": s["noisy"].to_numpy() if "noisy" in s else np.nan,
    }).reset_index(drop=True)


_PLACEMENT_COLUMNS = {
    "label": "config", "threads": "threads", "strategy": "strategy", "cpus": "planned CPUs",
    "busy_threads": "busy threads", "placement_ok": "placement verified",
    "oversubscribed": "oversubscribed", "ttft_s_median": "TTFT ms",
    "decode_tok_s_median": "decode tok/s", "cpu_util_pct_median": "CPU %", "noisy": "noisy",
    "placement_reasons": "notes",
}


def _renamed(summary: pd.DataFrame, columns: dict[str, str],
             digits: dict[str, int]) -> pd.DataFrame:
    """The summary's ``columns`` present, renamed for people, numbers rounded to ``digits``."""
    s = summary[[c for c in columns if c in summary]].rename(columns=columns).copy()
    for c, nd in digits.items():
        if c in s:
            s[c] = s[c].astype(float).round(nd)
    return s.reset_index(drop=True)


def placement_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per config: CPUs planned and used, busy threads, whether the placement was verified."""
    if summary is None or summary.empty:
        return pd.DataFrame()
    s = _renamed(summary, _PLACEMENT_COLUMNS, {"decode tok/s": 2, "CPU %": 0, "busy threads": 1})
    if "threads" in s:
        s["threads"] = s["threads"].map(_threads_value)
    if "TTFT ms" in s:
        s["TTFT ms"] = (s["TTFT ms"] * 1000).round(2)
    return s


def _median(r: pd.Series, metric: str, scale: float = 1.0) -> float:
    return round(float(r.get(f"{metric}_median", np.nan)) * scale, 2)


def _ci(r: pd.Series, metric: str, scale: float, digits: int) -> str:
    lo, hi = (float(r.get(f"{metric}_ci_{s}", np.nan)) * scale for s in ("lo", "hi"))
    return f"{lo:.{digits}f}-{hi:.{digits}f}"


def _run_row(r: pd.Series) -> dict[str, Any]:
    n_proc = max(1, int(r["n_processes"]))
    return {
        "config": r.get("label"),
        "threads": _threads_value(r["threads"]),
        "placement": r.get("strategy", r.get("placement")),
        "cpus": r.get("cpus"),
        "smt": r.get("smt"),
        "ttft_ms": _median(r, "ttft_s", 1000),
        "ttft_ci_ms": _ci(r, "ttft_s", 1000, 1),
        "prefill_tok_s": _median(r, "prefill_tok_s"),
        "decode_tok_s": _median(r, "decode_tok_s"),
        "decode_ci": _ci(r, "decode_tok_s", 1, 2),
        "decode_gb_s": round(float(r.get("decode_gb_s", np.nan)), 2),
        "pct_of_roofline": round(float(r.get("pct_of_ceiling", np.nan)), 1),
        "cpu_pct": round(float(r.get("cpu_util_pct_median", np.nan)), 1),
        "n": f"{n_proc}x{int(r['n_reps']) // n_proc}",
        "stop": r.get("stop", "fixed"),  # why it got no more processes (measurement.adaptive)
        "placement_ok": bool(r.get("placement_ok", True)),
        "noisy": bool(r.get("noisy", False)),
    }


def run_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per measured config of a run (llama-bench style), explicit thread counts first."""
    if summary is None or summary.empty:
        return pd.DataFrame()
    df = pd.DataFrame([_run_row(r) for _, r in summary.iterrows()])
    df["_t"] = [999 if isinstance(t, str) else t for t in df["threads"]]
    return df.sort_values(["_t", "config"], kind="stable").drop(columns="_t").reset_index(drop=True)


def parameters(values: dict[str, Any]) -> pd.DataFrame:
    """A notebook's parameters as a small table (lists joined), for the top of each report."""
    def text(v: Any) -> str:
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return pd.DataFrame({"parameter": list(values), "value": [text(v) for v in values.values()]})


_MEASURING_COLUMNS = {
    "label": "config", "parent_cpus": "parent ran on", "parent_shares_cpus": "parent shared CPUs",
    "sampler_cpu_pct_median": "sampler CPU %", "throttled": "throttled",
    "throttled_s": "throttled s", "cpu_mhz_median": "clock MHz", "numa_memory": "NUMA memory",
    "numa_policy_ok": "policy verified",
}


def measuring_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per config: where the measuring process ran (and, when it had to share the worker's CPUs,
    what its sampler cost), CFS throttling, the clock during decode and the memory policy."""
    if summary is None or summary.empty:
        return pd.DataFrame()
    return _renamed(summary, _MEASURING_COLUMNS,
                    {"sampler CPU %": 2, "throttled s": 3, "clock MHz": 0})


def _number(v: float) -> str:
    """A measured value with the digits its size warrants (17397, 25.4, 0.53)."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def side_by_side(sweeps: dict[str, pd.DataFrame], stem: str, scale: float = 1.0) -> pd.DataFrame:
    """threads | one column per run: the median of ``<stem>_median`` (× scale) with its 95 % CI
    where the sweep has one; "–" where a run did not measure that thread count."""
    threads = sorted({int(t) for s in sweeps.values() if len(s) for t in s["threads"]})
    out: dict[str, list[str]] = {"threads": [str(t) for t in threads]}
    for name, s in sweeps.items():
        rows = {int(r["threads"]): r for _, r in s.iterrows()} if len(s) else {}
        cells = []
        for t in threads:
            r = rows.get(t)
            v = float(r.get(f"{stem}_median", np.nan)) * scale if r is not None else np.nan
            if not np.isfinite(v):
                cells.append("–")
                continue
            lo, hi = (float(r.get(f"{stem}_ci_{e}", np.nan)) * scale for e in ("lo", "hi"))
            ci = f" ({_number(lo)}–{_number(hi)})" if np.isfinite(lo) and np.isfinite(hi) else ""
            cells.append(_number(v) + ci)
        out[name] = cells
    return pd.DataFrame(out)

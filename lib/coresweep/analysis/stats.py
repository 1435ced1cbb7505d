"""Statistics over the long-form tables: medians, p10/p90, bootstrap CIs, noise flags.

Repetitions inside one process are not independent of each other (the same process, the same
allocation, the same frequency state), and the spread that matters is between processes. The 95 %
confidence interval of the median is therefore a hierarchical bootstrap: resample processes, then
repetitions within each resampled process, and take the median of the pooled values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS = (
    "ttft_s",
    "prefill_tok_s",
    "decode_tok_s",
    "e2e_s",
    "load_s",
    "peak_rss_bytes",
    "cpu_util_pct",
    "cpu_s_per_token",
    "cpu_mhz",
    "sampler_cpu_pct",
)
CV_NOISY = 0.10  # coefficient of variation above which a metric is flagged noisy (pyperf: 10 %)
GROUP_COLS = (
    "label",
    "model",
    "runtime",
    "threads",
    "ort_default",
    "placement",
    "strategy",
    "cpus",
    "n_cpus",
    "smt",
    "prompt_tokens",
    "gen_tokens",
    "batch",
    "pin_threads",
    "env",
    "session",
    "numa_memory",
    "parent_cpus",
    "parent_shares_cpus",
)


def bootstrap_median_ci(
    groups: Sequence[Sequence[float]],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Hierarchical bootstrap CI of the median: resample groups (processes), then values within.

    groups: one sequence of values per process. With a single group this is the plain bootstrap.
    """
    gs = [np.asarray(g, dtype=float) for g in groups]
    gs = [g[np.isfinite(g)] for g in gs]
    gs = [g for g in gs if g.size]
    if not gs:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_g = len(gs)
    sizes = np.array([g.size for g in gs])
    r = int(sizes.max())
    mat = np.full((n_g, r), np.nan)
    for i, g in enumerate(gs):
        mat[i, : g.size] = g
    pick = rng.integers(0, n_g, size=(n_boot, n_g)) if n_g > 1 else np.zeros((n_boot, 1), int)
    u = rng.random((n_boot, n_g, r))
    idx = np.floor(u * sizes[pick][:, :, None]).astype(int)
    vals = mat[pick[:, :, None], idx]
    # values beyond a short group's size are masked out (groups with fewer reps weigh less)
    mask = np.arange(r)[None, None, :] < sizes[pick][:, :, None]
    vals = np.where(mask, vals, np.nan).reshape(n_boot, -1)
    meds = np.nanmedian(vals, axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(meds, [a, 1 - a])
    return float(lo), float(hi)


def describe(values: Sequence[float], groups: Sequence[Sequence[float]] | None = None, *, seed: int = 0) -> dict[str, float]:
    """median, p10, p90, CI of the median (bootstrap), CV (std/mean), n."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        nan = float("nan")
        return {"median": nan, "p10": nan, "p90": nan, "ci_lo": nan, "ci_hi": nan, "cv": nan, "n": 0}
    lo, hi = bootstrap_median_ci(groups if groups is not None else [x], seed=seed)
    mean = float(x.mean())
    cv = float(x.std(ddof=1) / abs(mean)) if x.size > 1 and mean != 0 else float("nan")
    return {
        "median": float(np.median(x)),
        "p10": float(np.percentile(x, 10)),
        "p90": float(np.percentile(x, 90)),
        "ci_lo": lo,
        "ci_hi": hi,
        "cv": cv,
        "n": int(x.size),
    }


def processes_disagree(groups: Sequence[Sequence[float]], *, min_rel: float = 0.05) -> bool:
    """True when processes differ beyond their own spread.

    The range of the per-process medians must exceed both the largest within-process range
    (max - min of one process's repetitions) and min_rel of the overall median. Needs >= 2 processes.
    """
    gs = [np.asarray(g, dtype=float) for g in groups]
    gs = [g[np.isfinite(g)] for g in gs if np.isfinite(np.asarray(g, dtype=float)).any()]
    if len(gs) < 2:
        return False
    meds = np.array([np.median(g) for g in gs])
    between = float(meds.max() - meds.min())
    within = max(float(g.max() - g.min()) for g in gs)
    overall = float(np.median(np.concatenate(gs)))
    return between > within and between > min_rel * abs(overall)


def token_latency_stats(tokens: Any) -> Any:
    """Per config: decode per-token latency p50/p90/p99 (seconds) and count."""
    import pandas as pd

    if tokens is None or len(tokens) == 0:
        return pd.DataFrame(columns=["config_key", "token_latency_p50_s", "token_latency_p90_s", "token_latency_p99_s", "n_decode_tokens"])
    dec = tokens[tokens["phase"] == "decode"]
    rows = []
    for key, g in dec.groupby("config_key", sort=False):
        x = g["latency_s"].to_numpy(float)
        p50, p90, p99 = np.percentile(x, [50, 90, 99]) if x.size else (np.nan,) * 3
        rows.append(
            {
                "config_key": key,
                "token_latency_p50_s": float(p50),
                "token_latency_p90_s": float(p90),
                "token_latency_p99_s": float(p99),
                "n_decode_tokens": int(x.size),
            }
        )
    return pd.DataFrame(rows)


def summarize(
    trials: Any,
    tokens: Any = None,
    *,
    metrics: Sequence[str] = METRICS,
    cv_noisy: float = CV_NOISY,
    seed: int = 0,
) -> Any:
    """One row per config_key: config columns, `<metric>_{median,p10,p90,ci_lo,ci_hi,cv}`,
    `<metric>_noisy` (CV > cv_noisy), `<metric>_disagree` (processes differ beyond their spread),
    `noisy` (any of the decode/TTFT flags), placement summary, n_processes, n_reps, token latency
    percentiles."""
    import pandas as pd

    if trials is None or len(trials) == 0:
        return pd.DataFrame()
    ok = trials[trials["ok"].astype(bool)] if "ok" in trials else trials
    rows = []
    for key, g in ok.groupby("config_key", sort=False):
        first = g.iloc[0]
        row: dict[str, Any] = {"config_key": key}
        for c in GROUP_COLS:
            if c in g:
                row[c] = first[c]
        row["n_processes"] = int(g["process"].nunique())
        row["n_reps"] = int(len(g))
        for m in metrics:
            if m not in g:
                continue
            groups = [pg[m].to_numpy(float) for _, pg in g.groupby("process")]
            d = describe(g[m].to_numpy(float), groups, seed=seed)
            for s in ("median", "p10", "p90", "ci_lo", "ci_hi", "cv"):
                row[f"{m}_{s}"] = d[s]
            row[f"{m}_noisy"] = bool(np.isfinite(d["cv"]) and d["cv"] > cv_noisy)
            row[f"{m}_disagree"] = processes_disagree(groups)
        flags = [
            row.get(f"{m}_{f}", False)
            for m in ("decode_tok_s", "ttft_s")
            for f in ("noisy", "disagree")
        ]
        row["noisy"] = bool(any(flags))
        row.update(_unit_flags(g))
        rows.append(row)
    out = pd.DataFrame(rows)
    lat = token_latency_stats(tokens)
    if len(lat):
        out = out.merge(lat, on="config_key", how="left")
    return out


def _unit_flags(g: Any) -> dict[str, Any]:
    """Per config: placement (verified in every process, oversubscribed in any), CFS throttling,
    the NUMA policy's verdict and whether every repetition generated the same tokens."""
    out: dict[str, Any] = {}
    if "placement_ok" in g:
        out["placement_ok"] = bool(g["placement_ok"].astype(bool).all())
        out["oversubscribed"] = bool(g["oversubscribed"].astype(bool).any())
        out["busy_threads"] = float(np.median(g["busy_threads"].to_numpy(float)))
        reasons = sorted({r for r in g.get("placement_reasons", []) if r})
        out["placement_reasons"] = " | ".join(reasons)
    if "throttled" in g:  # CFS quota: a throttled trial measured the quota
        out["throttled"] = bool(g["throttled"].astype(bool).any())
        out["throttled_s"] = float(g.drop_duplicates("process")["throttled_s"].sum())
    if "numa_policy_ok" in g:
        ok_vals = [v for v in g["numa_policy_ok"] if v is not None and v == v]
        out["numa_policy_ok"] = bool(all(ok_vals)) if ok_vals else None
    if "checksum" in g:
        out["checksums_agree"] = bool(g["checksum"].nunique() == 1)
    return out


def same_work(trials: Any) -> dict[str, Any]:
    """Did every configuration generate the same tokens? Configurations are compared within each
    work unit: same model file format (ort and genai run the same ONNX model and must agree;
    llamacpp runs its GGUF, other weights, compared within itself), model, prompt length and
    generated tokens. Returns {"ok": bool, "groups": n, "mismatches": [(key, {checksum:
    [labels]}), ...]}."""
    from coresweep.engines import model_format

    if trials is None or len(trials) == 0 or "checksum" not in trials:
        return {"ok": True, "groups": 0, "mismatches": []}
    t = trials[trials["ok"].astype(bool)] if "ok" in trials else trials
    if "runtime" in t:
        t = t.assign(model_format=t["runtime"].map(model_format))
    cols = [c for c in ("model_format", "model", "prompt_tokens", "gen_tokens") if c in t]
    mismatches = []
    groups = t.groupby(cols, sort=True) if cols else [((), t)]
    n = 0
    for key, g in groups:
        n += 1
        by_sum = g.groupby("checksum")["label" if "label" in g else "config_key"].unique()
        if len(by_sum) > 1:
            mismatches.append((key, {str(k): sorted(map(str, v)) for k, v in by_sum.items()}))
    return {"ok": not mismatches, "groups": n, "mismatches": mismatches}

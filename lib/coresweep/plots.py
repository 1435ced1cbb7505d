"""Figures for the notebooks and reports: one function per figure, each returning a matplotlib
Figure. Inputs are the long-form tables of a run (columns in docs/architecture.md) and the
per-config summary of :func:`coresweep.analysis.summarize`. Every figure says what it shows and in
which unit, and carries a caption naming the machine and the model (:func:`caption`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

_METRIC_LABEL = {
    "ttft_s": ("time to first token", "ms", 1000.0),
    "prefill_tok_s": ("prefill throughput", "tokens/s", 1.0),
    "decode_tok_s": ("decode throughput", "tokens/s", 1.0),
    "e2e_s": ("end-to-end time", "s", 1.0),
    "cpu_util_pct": ("process CPU use", "% of one CPU", 1.0),
    # the normalised views of a comparison (coresweep.compare.runs.normalise)
    "decode_tok_s_per_core": ("decode per core used", "tokens/s per core", 1.0),
    "roofline_pct": ("decode bandwidth", "% of measured", 1.0),
    "decode_speedup": ("decode speedup over 1 thread", "×", 1.0),
    "ttft_speedup": ("TTFT speedup over 1 thread", "×", 1.0),
}


def _style() -> None:
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")


def caption(machine: str | None = None, cpu: str | None = None, model: str | None = None,
            extra: str | None = None) -> str:
    """"machine · CPU · model" line placed under every figure."""
    parts = [p for p in (machine and f"machine: {machine}", cpu and f"CPU: {cpu}",
                         model and f"model: {model}", extra) if p]
    return " · ".join(parts)


def caption_for(run: Any = None, params: Mapping[str, Any] | None = None, topo: Any = None) -> str:
    """Build the caption from a Run (its run.json), the parameters and/or a Topology."""
    machine = cpu = model = None
    meta = getattr(run, "meta", None) or {}
    if meta:
        machine = meta.get("machine")
        fp = meta.get("fingerprint") or {}
        cpu = (fp.get("topology") or {}).get("model_name")
    if topo is not None:
        from coresweep.machine.fingerprint import machine_name

        machine = machine or machine_name(topo)
        cpu = cpu or getattr(topo, "model_name", None)
    if params:
        model = f"{params.get('model')} {params.get('precision', '')}".strip()
        model += f", prompt {params.get('prompt_tokens')} / gen {params.get('gen_tokens')} tokens"
    return caption(machine, cpu, model)


def _finish(fig, title: str, cap: str | None) -> Any:
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if cap:
        fig.text(0.01, 0.005, cap, fontsize=8, color="#555", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.04 if cap else 0, 1, 0.95))
    return fig


def _scaled(summary: pd.DataFrame, metric: str, stat: str) -> np.ndarray:
    scale = _METRIC_LABEL.get(metric, ("", "", 1.0))[2]
    return summary[f"{metric}_{stat}"].to_numpy(float) * scale


def _explicit_threads(summary: pd.DataFrame) -> pd.DataFrame:
    s = summary[summary["threads"].astype(int) > 0].copy()
    return s.sort_values("threads")


def _by_runtime(s: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(name for a legend, colour, rows) per runtime: one line each when a study measured
    several runtimes side by side; one unnamed line otherwise."""
    from coresweep.analysis.runtimes import by_runtime

    parts = by_runtime(s)
    if len(parts) < 2:
        return [("", "C0", s)]
    return [(rt, f"C{i}", rows) for i, (rt, rows) in enumerate(parts.items())]


def _threads_label(s: pd.DataFrame) -> str:
    """onnxruntime's thread knob is its intra-op pool; llama.cpp's is plain threads."""
    onnx_only = "runtime" not in s or set(s["runtime"].astype(str)) <= {"ort", "genai"}
    return "intra-op threads" if onnx_only else "threads"


def _empty(title: str, cap: str | None, why: str) -> Any:
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=11, wrap=True)
    return _finish(fig, title, cap)


# ------------------------------------------------------------------------------------------------
# 01 threads


def threads_curves(summary: pd.DataFrame, *, cpus: int | None = None, cap: str | None = None,
                   metrics: Sequence[str] = ("ttft_s", "prefill_tok_s", "decode_tok_s")) -> Any:
    """Median of each metric against the thread count, with the 95 % CI of the median as a band
    and the p10–p90 range as whiskers. A dashed line marks the CPU count (oversubscription
    beyond it)."""
    _style()
    s = _explicit_threads(summary)
    title = "Latency and throughput against threads"
    if s.empty:
        return _empty(title, cap, "no trial with an explicit thread count")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        name, unit, _ = _METRIC_LABEL[m]
        for rt, color, g in _by_runtime(s):
            x, med = g["threads"].to_numpy(int), _scaled(g, m, "median")
            ax.fill_between(x, _scaled(g, m, "ci_lo"), _scaled(g, m, "ci_hi"), alpha=0.25,
                            color=color, label=f"{rt} 95 % CI of median".strip())
            ax.errorbar(x, med, yerr=[med - _scaled(g, m, "p10"), _scaled(g, m, "p90") - med],
                        fmt="o-", capsize=3, color=color, label=f"{rt} median (p10–p90)".strip())
        if cpus:
            ax.axvline(cpus, ls="--", color="grey", lw=1)
            ax.text(cpus, ax.get_ylim()[1], f" {cpus} CPUs", va="top", fontsize=8, color="grey")
        ax.set_xlabel(_threads_label(s))
        ax.set_ylabel(f"{name} ({unit})")
        ax.set_title(f"{name} ({unit})", fontsize=11)
        ax.set_xticks(sorted({int(t) for t in s["threads"]}))
    axes[0][0].legend(fontsize=8)
    return _finish(fig, title, cap)


def speedup_efficiency(summary: pd.DataFrame, metric: str = "decode_tok_s", *,
                       cap: str | None = None) -> Any:
    """Speedup over the smallest thread count (for throughput: ratio; for TTFT: inverse ratio)
    and parallel efficiency (speedup / thread ratio), each against the ideal."""
    _style()
    s = _explicit_threads(summary)
    name, unit, _ = _METRIC_LABEL[metric]
    title = f"Speedup and parallel efficiency of {name}"
    lines = [(rt, c, g) for rt, c, g in _by_runtime(s) if len(g) >= 2]
    if not lines:
        return _empty(title, cap, "needs at least two thread counts")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    top = 110.0
    for i, (rt, color, g) in enumerate(lines):
        x, (sp, sp_lo, sp_hi) = g["threads"].to_numpy(float), _speedup(g, metric)
        if i == 0:
            a1.plot(x, x / x[0], "k--", lw=1, label="ideal (linear)")
            a1.set_ylabel(f"speedup over {int(x[0])} thread(s) (×)")
        a1.fill_between(x, sp_lo, sp_hi, alpha=0.25, color=color)
        a1.plot(x, sp, "o-", color=color, label=f"{rt} measured (median, CI band)".strip())
        eff = sp / (x / x[0])
        a2.plot(x, 100 * eff, "o-", color=color if rt else "C1",
                label=f"{rt} measured".strip())
        top = max(top, float(np.nanmax(100 * eff)) + 10)
    a1.set_xlabel(_threads_label(s))
    a1.set_title(f"speedup of {name}", fontsize=11)
    a1.legend(fontsize=8)
    a2.set_xlabel(_threads_label(s))
    a2.set_ylabel("parallel efficiency (%)")
    a2.set_title("efficiency = speedup / thread ratio", fontsize=11)
    a2.set_ylim(0, top)
    a2.axhline(100, color="k", ls="--", lw=1, label="ideal (100 %)")
    a2.legend(fontsize=8)
    for a in (a1, a2):
        a.set_xticks(sorted({int(t) for t in s["threads"]}))
    return _finish(fig, title, cap)


def _speedup(g: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Speedup over the smallest thread count of ``g`` and its interval (a time: inverse)."""
    v = g[f"{metric}_median"].to_numpy(float)
    lo = g[f"{metric}_ci_lo"].to_numpy(float)
    hi = g[f"{metric}_ci_hi"].to_numpy(float)
    if metric.endswith("_s") and not metric.endswith("tok_s"):  # a time: lower is better
        return v[0] / v, v[0] / hi, v[0] / lo
    return v / v[0], lo / v[0], hi / v[0]


def util_vs_threads(summary: pd.DataFrame, *, cpus: int | None = None,
                    cap: str | None = None) -> Any:
    """Process CPU use (100 % = one CPU busy) against threads, with the ideal (threads × 100 %,
    capped by the CPUs)."""
    _style()
    s = _explicit_threads(summary)
    title = "CPU utilisation against threads"
    if s.empty or "cpu_util_pct_median" not in s:
        return _empty(title, cap, "no CPU utilisation recorded")
    x = np.array(sorted({int(t) for t in s["threads"]}), dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    ideal = 100 * (np.minimum(x, cpus) if cpus else x)
    ax.plot(x, ideal, "k--", lw=1, label="all threads busy" + (f" (≤ {cpus} CPUs)" if cpus else ""))
    for rt, color, g in _by_runtime(s):
        gx = g["threads"].to_numpy(float)
        ax.fill_between(gx, g["cpu_util_pct_ci_lo"].to_numpy(float),
                        g["cpu_util_pct_ci_hi"].to_numpy(float), alpha=0.25, color=color)
        ax.plot(gx, g["cpu_util_pct_median"].to_numpy(float), "o-", color=color,
                label=f"{rt} measured (median, CI band)".strip())
    ax.set_xlabel(_threads_label(s))
    ax.set_ylabel("process CPU use (%, 100 = one CPU)")
    ax.set_xticks(x)
    ax.legend(fontsize=8)
    return _finish(fig, title, cap)


def token_latency_ecdf(tokens: pd.DataFrame, labels: Mapping[str, str], *,
                       cap: str | None = None) -> Any:
    """ECDF of the per-token decode latency (ms) of each config (``labels``: config_key → name)."""
    import seaborn as sns

    _style()
    title = "Per-token decode latency distribution"
    if tokens is None or tokens.empty:
        return _empty(title, cap, "no token latencies recorded")
    d = tokens[(tokens["phase"] == "decode") & tokens["config_key"].isin(list(labels))].copy()
    if d.empty:
        return _empty(title, cap, "no decode tokens for these configs")
    d["config"] = d["config_key"].map(labels)
    d["latency_ms"] = d["latency_s"] * 1000.0
    fig, ax = plt.subplots(figsize=(8, 4.2))
    order = [labels[k] for k in labels if labels[k] in set(d["config"])]
    sns.ecdfplot(data=d, x="latency_ms", hue="config", hue_order=order, ax=ax)
    ax.set_xlabel("decode latency per token (ms)")
    ax.set_ylabel("fraction of tokens")
    lo, hi = d["latency_ms"].quantile([0.01, 0.99])
    if lo > 0 and hi / lo > 20:  # log scale only when the spread spans orders of magnitude
        ax.set_xscale("log")
    return _finish(fig, title, cap)


# ------------------------------------------------------------------------------------------------
# 02 affinity


def strategy_comparison(summary: pd.DataFrame, *, cap: str | None = None,
                        metrics: Sequence[str] = ("ttft_s", "decode_tok_s")) -> Any:
    """Bars per configuration (strategy and controls) with the CI of the median; configs whose
    placement could not be verified are hatched and marked."""
    _style()
    title = "Placement strategies at equal thread counts"
    if summary is None or summary.empty:
        return _empty(title, cap, "no configurations measured")
    s = summary.reset_index(drop=True)
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 0.5 * len(s) + 2.5),
                             squeeze=False)
    y = np.arange(len(s))
    for ax, m in zip(axes[0], metrics, strict=True):
        name, unit, _ = _METRIC_LABEL[m]
        med = _scaled(s, m, "median")
        err = [med - _scaled(s, m, "ci_lo"), _scaled(s, m, "ci_hi") - med]
        ok = s["placement_ok"].astype(bool).to_numpy() if "placement_ok" in s else np.ones(len(s))
        bars = ax.barh(y, med, xerr=err, capsize=3,
                       color=["C0" if o else "C3" for o in ok])
        for b, o in zip(bars, ok, strict=True):
            if not o:
                b.set_hatch("//")
        ax.set_yticks(y, s["label"].astype(str))
        ax.invert_yaxis()
        ax.set_xlabel(f"{name} ({unit}), median with 95 % CI")
        ax.set_title(f"{name} ({unit})", fontsize=11)
    if "placement_ok" in s and not s["placement_ok"].astype(bool).all():
        title += " (red hatched: placement differed from the plan)"
    return _finish(fig, title, cap)


def utilisation_heatmap(samples: pd.DataFrame, config_key: str, *, title: str | None = None,
                        process: int | None = None, cap: str | None = None,
                        cpus: Sequence[int] | None = None) -> Any:
    """Per-CPU utilisation (%) over time for one worker process of one config: CPUs × time."""
    _style()
    title = title or f"Per-CPU utilisation, config {config_key}"
    if samples is None or samples.empty:
        return _empty(title, cap, "no utilisation samples recorded")
    d = samples[samples["config_key"] == config_key]
    if d.empty:
        return _empty(title, cap, f"no samples for config {config_key}")
    proc = int(d["process"].min()) if process is None else process
    d = d[d["process"] == proc]
    grid = d.pivot_table(index="cpu", columns="t_s", values="util_pct", aggfunc="mean")
    if cpus is not None:
        grid = grid.reindex(sorted(set(cpus) | set(grid.index)))
    t = grid.columns.to_numpy(float)
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(grid) + 2.2))
    im = ax.imshow(grid.to_numpy(float), aspect="auto", interpolation="nearest", cmap="viridis",
                   vmin=0, vmax=100, extent=(t.min(), t.max(), len(grid) - 0.5, -0.5))
    ax.set_yticks(range(len(grid)), [f"CPU {c}" for c in grid.index])
    ax.grid(False)
    ax.set_xlabel("time since worker start (s)")
    if "phase" in d:
        for ph, g in d.groupby("phase"):
            if ph == "timed":
                ax.axvspan(g["t_s"].min(), g["t_s"].max(), ymin=0.97, ymax=1.0, color="red",
                           alpha=0.8, label="timed repetitions")
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(im, ax=ax, label="CPU utilisation (%)")
    return _finish(fig, title + f" (process {proc})", cap)


# ------------------------------------------------------------------------------------------------
# 03 SMT


def smt_paired(summary: pd.DataFrame, *, cap: str | None = None,
               metrics: Sequence[str] = ("ttft_s", "decode_tok_s")) -> Any:
    """SMT on against off: bars per config label, grouped by physical core count."""
    import seaborn as sns

    _style()
    title = "SMT on vs off (same physical cores / same thread count)"
    if summary is None or summary.empty:
        return _empty(title, cap, "no SMT comparison was run on this machine")
    s = summary.copy()
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        name, unit, scale = _METRIC_LABEL[m]
        s["value"] = s[f"{m}_median"] * scale
        sns.barplot(data=s, x="label", y="value", hue="smt", ax=ax)
        for i, (_, r) in enumerate(s.iterrows()):
            ax.errorbar(i, r["value"], yerr=[[r["value"] - r[f"{m}_ci_lo"] * scale],
                                             [r[f"{m}_ci_hi"] * scale - r["value"]]],
                        color="k", capsize=3)
        ax.set_xlabel("configuration (cores / threads)")
        ax.set_ylabel(f"{name} ({unit})")
        ax.tick_params(axis="x", rotation=20)
    return _finish(fig, title, cap)


# ------------------------------------------------------------------------------------------------
# 00 machine


def topology_picture(topo: Any, *, cap: str | None = None) -> Any:
    """Packages → LLC domains → cores → logical CPUs, with allowed/offline CPUs coloured."""
    from matplotlib.patches import Rectangle

    _style()
    cores = list(topo.cores)
    allowed = set(topo.allowed)
    llc = topo.llc_domains() or [tuple(topo.online)]
    cpu_llc = {c: i for i, dom in enumerate(llc) for c in dom}
    width = max(1, len(cores))
    fig, ax = plt.subplots(figsize=(min(16, 2 + 1.3 * width), 3.4))
    for i, core in enumerate(cores):
        x = i * 1.3
        dom = cpu_llc.get(core.cpus[0], 0)
        ax.add_patch(Rectangle((x, 0), 1.1, 2.0, fc=f"C{dom % 10}", alpha=0.15, ec="k"))
        ax.text(x + 0.55, 1.8, f"core {core.core_id}\npkg {core.package}", ha="center",
                va="top", fontsize=8)
        for j, cpu in enumerate(core.cpus):
            ok = cpu in allowed
            ax.add_patch(Rectangle((x + 0.1, 0.15 + j * 0.55), 0.9, 0.45,
                                   fc="#4c9a2a" if ok else "#bbbbbb", ec="k"))
            ax.text(x + 0.55, 0.375 + j * 0.55, f"CPU {cpu}", ha="center", va="center",
                    fontsize=8, color="white" if ok else "black")
    ax.set_xlim(-0.2, width * 1.3)
    ax.set_ylim(-0.1, 2.2)
    ax.axis("off")
    smt = "SMT on" if topo.has_smt() else "no SMT"
    title = (f"Topology: {len(cores)} cores, {len(topo.online)} logical CPUs, {smt}, "
             f"{len(llc)} LLC domain(s), {len(topo.numa_nodes)} NUMA node(s)")
    ax.text(0, -0.05, "green: CPU usable by this process; grey: not allowed; shading: LLC domain",
            fontsize=8, va="top")
    return _finish(fig, title, cap)


# ------------------------------------------------------------------------------------------------
# 04 serving


def serving_throughput(summary: pd.DataFrame, *, cap: str | None = None) -> Any:
    """Aggregate decode throughput (all workers) against closed-loop concurrency, one line per
    plan with its 95 % band; unpinned plans dashed."""
    _style()
    title = "Aggregate throughput against concurrent users"
    s = summary[summary["mode"] == "closed"] if summary is not None and len(summary) else None
    if s is None or s.empty:
        return _empty(title, cap, "no closed-loop level was measured")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (plan, g) in enumerate(s.groupby("plan", sort=False)):
        g = g.sort_values("level")
        ax.plot(g["level"], g["tok_s"], "o-" if bool(g["pinned"].iloc[0]) else "s--",
                color=f"C{i}", label=plan)
        if "tok_s_ci_lo" in g:  # the level's 95 % interval (bootstrap over its requests)
            ax.fill_between(g["level"], g["tok_s_ci_lo"], g["tok_s_ci_hi"], color=f"C{i}",
                            alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(s["level"].unique()), [f"{x:g}" for x in sorted(s["level"].unique())])
    ax.set_xlabel("concurrent users (closed loop)")
    ax.set_ylabel("aggregate tokens/s (all workers)")
    ax.legend(title="workers x threads", fontsize=8)
    return _finish(fig, title, cap)


def serving_frontier(summary: pd.DataFrame, knees: pd.DataFrame | None = None, *,
                     cap: str | None = None) -> Any:
    """The throughput–latency frontier: p50/p99 TTFT and inter-token latency against aggregate
    throughput, every level of every plan, each plan's knee circled."""
    _style()
    title = "Latency against throughput (each point a load level)"
    if summary is None or summary.empty:
        return _empty(title, cap, "no load level was measured")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (plan, g) in enumerate(summary.groupby("plan", sort=False)):
        g = g.sort_values("tok_s")
        for ax, m in zip(axes, ("ttft", "itl"), strict=True):
            ax.plot(g["tok_s"], g[f"{m}_p99_s"] * 1000, "o-", color=f"C{i}", label=f"{plan} p99")
            ax.plot(g["tok_s"], g[f"{m}_p50_s"] * 1000, ".:", color=f"C{i}", alpha=0.7)
        if knees is not None and len(knees):
            k = knees[knees["plan"] == plan]
            at = g[(g["mode"] == "closed") & g["level"].isin(k["knee_concurrency"])]
            axes[0].scatter(at["tok_s"], at["ttft_p99_s"] * 1000, s=160, facecolors="none",
                            edgecolors=f"C{i}", linewidths=2)
    for ax, name in zip(axes, ("time to first token", "inter-token latency"), strict=True):
        ax.set_xlabel("aggregate tokens/s")
        ax.set_ylabel(f"{name} (ms): p99 solid, p50 dotted")
        ax.set_yscale("log")
    axes[0].legend(fontsize=8, title="circle: knee")
    return _finish(fig, title, cap)


# ------------------------------------------------------------------------------------------------
# 07 batching


def _per_threads(summary: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    s = _explicit_threads(summary)
    return [(int(t), g.sort_values("batch")) for t, g in s.groupby("threads", sort=False)]


def batching_throughput(summary: pd.DataFrame, *, cap: str | None = None) -> Any:
    """Left: aggregate decode tok/s (batch × each sequence's) against the batch size, one line
    per thread count, 95 % CI bands, the ideal (batch × batch 1's) dashed. Right: what one user
    sees — each sequence's decode tok/s and the batch's TTFT."""
    _style()
    title = "Batching: aggregate decode and what each user sees, against the batch size"
    if summary is None or summary.empty or "agg_decode_tok_s_median" not in summary:
        return _empty(title, cap, "no batch trial measured")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    a3 = a2.twinx()
    for i, (t, g) in enumerate(_per_threads(summary)):
        x, color = g["batch"].to_numpy(float), f"C{i}"
        a1.fill_between(x, g["agg_decode_tok_s_ci_lo"], g["agg_decode_tok_s_ci_hi"], alpha=0.2,
                        color=color)
        a1.plot(x, g["agg_decode_tok_s_median"], "o-", color=color, label=f"{t} thread(s)")
        one = g[g["batch"] == 1]["decode_tok_s_median"]
        if len(one):
            a1.plot(x, x * float(one.iloc[0]), ":", color=color, lw=1)
        a2.plot(x, g["decode_tok_s_median"], "o-", color=color, label=f"{t}t per user")
        a3.plot(x, 1000 * g["ttft_s_median"], "s--", color=color, alpha=0.6, label=f"{t}t TTFT")
    a1.set(xlabel="batch (sequences per step)", ylabel="aggregate decode tokens/s",
           title="aggregate (dotted: batch × batch 1)")
    a2.set(xlabel="batch (sequences per step)", ylabel="each user's decode tokens/s",
           title="per user: decode (solid), TTFT (dashed)")
    a3.set_ylabel("TTFT of the batch (ms)")
    _batch_axes((a1, a2), summary)
    a1.legend(fontsize=8)
    return _finish(fig, title, cap)


def batching_roofline(summary: pd.DataFrame, *, cap: str | None = None) -> Any:
    """Left: the bandwidth one decode step uses (bytes per step ÷ step time) as a share of the
    read bandwidth measured on the same CPUs, against the batch — below the 70 % line a step is
    compute-bound. Right: CPU time per generated token (all threads)."""
    _style()
    title = "Batching: the roofline per step and the CPU time per token"
    if summary is None or summary.empty or "pct_of_ceiling" not in summary:
        return _empty(title, cap, "no batch trial measured")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for i, (t, g) in enumerate(_per_threads(summary)):
        x = g["batch"].to_numpy(float)
        a1.plot(x, g["pct_of_ceiling"], "o-", color=f"C{i}", label=f"{t} thread(s)")
        a2.plot(x, g["cpu_ms_per_token"], "o-", color=f"C{i}", label=f"{t} thread(s)")
    a1.axhline(70, ls="--", color="grey", lw=1)
    a1.text(a1.get_xlim()[0], 71, " bandwidth-bound above", fontsize=8, color="grey")
    a1.set(xlabel="batch (sequences per step)", ylabel="% of measured read bandwidth",
           title="bytes per step ÷ step time")
    a2.set(xlabel="batch (sequences per step)", ylabel="CPU ms per token (all threads)",
           title="CPU time per generated token")
    _batch_axes((a1, a2), summary)
    for a in (a1, a2):
        a.legend(fontsize=8)
    return _finish(fig, title, cap)


def _batch_axes(axes: Any, summary: pd.DataFrame) -> None:
    """Ticks at the measured batch sizes, y from 0 (batching figures)."""
    for a in axes:
        a.set_xticks(sorted(summary["batch"].unique()))
        a.set_ylim(0, None)


# ------------------------------------------------------------------------------------------------
# roofline (01, 05)


def roofline(summary: pd.DataFrame, *, cap: str | None = None) -> Any:
    """Left: decode as bandwidth — achieved GB/s (tok/s × bytes per token) against threads, with
    the read bandwidth measured on the same CPUs as its ceiling. Right: prefill against ideal
    compute scaling (linear from the fewest threads)."""
    _style()
    title = "Roofline: decode against measured memory bandwidth, prefill against ideal scaling"
    s = _explicit_threads(summary) if summary is not None and len(summary) else None
    if s is None or s.empty or "decode_gb_s" not in s or s["decode_gb_s"].isna().all():
        return _empty(title, cap, "no bytes-per-token or no bandwidth measurement for this run")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    lines = _by_runtime(s)
    for i, (rt, color, g) in enumerate(lines):
        _roofline_lines(a1, a2, g, rt, color if rt else None, ceiling=i == 0)
    a1.set_xlabel(_threads_label(s))
    a1.set_ylabel("GB/s (own bytes per token)" if len(lines) > 1
                  else "GB/s")
    a1.set_ylim(0, None)
    a1.legend(fontsize=8)
    a2.set_xlabel(_threads_label(s))
    a2.set_ylabel("prefill tokens/s")
    a2.legend(fontsize=8)
    for a in (a1, a2):
        a.set_xticks(sorted({int(t) for t in s["threads"]}))
    return _finish(fig, title, cap)


def _roofline_lines(a1: Any, a2: Any, g: pd.DataFrame, rt: str, color: str | None, *,
                    ceiling: bool) -> None:
    """One runtime's achieved decode GB/s (% of the ceiling annotated), the ceiling (once: the
    same CPUs and threads for every runtime) and its prefill against ideal scaling."""
    x = g["threads"].to_numpy(float)
    a1.plot(x, g["decode_gb_s"], "o-", color=color,
            label=f"{rt} decode reads (achieved)".strip())
    if ceiling and "ceiling_gb_s" in g and g["ceiling_gb_s"].notna().any():
        a1.plot(x, g["ceiling_gb_s"], "k--", marker="_", label="measured read bandwidth")
    if "pct_of_ceiling" in g:
        for xi, pct, y in zip(x, g["pct_of_ceiling"], g["decode_gb_s"], strict=True):
            if np.isfinite(pct):
                a1.annotate(f"{pct:.0f} %", (xi, y), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=8, color=color or "k")
    pre = g["prefill_tok_s_median"].to_numpy(float)
    a2.plot(x, pre[0] * x / x[0], "--", lw=1, color=color or "k",
            label=f"{rt} ideal (linear)".strip())
    a2.plot(x, pre, "o-", color=color or "C1", label=f"{rt} prefill (median)".strip())


# ------------------------------------------------------------------------------------------------
# 01 threads at several prompt lengths (contexts)


def context_curves(contexts: pd.DataFrame | None, *, cpus: int | None = None,
                   cap: str | None = None) -> Any:
    """TTFT, prefill and decode against threads, one line per prompt length, and decode tok/s
    against the prompt length per thread count (the KV cache grows with the context)."""
    _style()
    title = "Threads at each context length"
    if contexts is None or not len(contexts) or contexts["prompt_tokens"].nunique() < 2:
        return _empty(title, cap, "one prompt length: set prompt_tokens to a list, e.g. "
                      "[64, 512, 2048], to draw this")
    s = _explicit_threads(contexts)
    several = "runtime" in s and s["runtime"].nunique() > 1
    keys = ["runtime", "prompt_tokens"] if several else ["prompt_tokens"]
    metrics = ("ttft_s", "prefill_tok_s", "decode_tok_s")
    fig, axes = plt.subplots(1, 4, figsize=(20, 4), squeeze=False)
    for ax, m in zip(axes[0][:3], metrics, strict=True):
        name, unit, _ = _METRIC_LABEL[m]
        for key, g in s.groupby(keys, sort=False):
            ax.errorbar(g["threads"], _scaled(g, m, "median"), fmt="o-", capsize=3,
                        yerr=[_scaled(g, m, "median") - _scaled(g, m, "ci_lo"),
                              _scaled(g, m, "ci_hi") - _scaled(g, m, "median")],
                        label=(" ".join(map(str, key[:-1])) + f" prompt {key[-1]}").strip())
        if cpus:
            ax.axvline(cpus, ls="--", color="grey", lw=1)
        ax.set_xlabel("intra-op threads")
        ax.set_title(f"{name} ({unit})", fontsize=11)
    axes[0][0].legend(fontsize=8)
    ax = axes[0][3]
    for key, g in s.groupby([*keys[:-1], "threads"], sort=False):
        g = g.sort_values("prompt_tokens")
        ax.plot(g["prompt_tokens"], g["decode_tok_s_median"], "o-",
                label=(" ".join(map(str, key[:-1])) + f" {key[-1]} threads").strip())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("prompt tokens (context before decode)")
    ax.set_title("decode throughput (tokens/s) against context", fontsize=11)
    ax.legend(fontsize=8)
    return _finish(fig, title, cap)


# ------------------------------------------------------------------------------------------------
# per-thread utilisation (01, 06) and the knobs (06)


def thread_utilisation(util: pd.DataFrame, labels: Mapping[str, str], *,
                       cap: str | None = None) -> Any:
    """Each pool thread's share of the timed wall time on a CPU (busiest first), per config:
    with spinning on, idle pool threads still show near 100 %."""
    _style()
    title = "Per-thread CPU use in the timed region"
    if util is None or not len(util):
        return _empty(title, cap, "no per-thread CPU times recorded (runs before this release "
                      "lack the timed wall time)")
    keys = [k for k in labels if k in set(util["config_key"])]
    ranks = int(util["rank"].max())
    fig, ax = plt.subplots(figsize=(max(7, 0.5 * len(keys) * min(ranks, 8)), 4))
    width = 0.8 / max(1, min(ranks, 8))
    for r in range(1, min(ranks, 8) + 1):
        u = util[util["rank"] == r].set_index("config_key")["util_pct"]
        ax.bar(np.arange(len(keys)) + (r - 1) * width, [u.get(k, np.nan) for k in keys], width,
               label=f"thread #{r}")
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, [labels[k] for k in keys],
                  rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("% of the timed wall time on a CPU")
    ax.axhline(100, ls="--", color="grey", lw=1)
    ax.legend(fontsize=7, ncol=min(ranks, 8))
    return _finish(fig, title, cap)


def knob_effects(effects: pd.DataFrame, *, cap: str | None = None) -> Any:
    """Decode tok/s of each knob value over the baseline's, with the interval from the two CIs;
    1.0 (dashed) is the baseline."""
    _style()
    title = "Each knob against the baseline (decode)"
    if effects is None or not len(effects):
        return _empty(title, cap, "no knob value besides the baseline was measured")
    e = effects.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(e) + 1.5))
    mid = e["decode_ratio"].to_numpy(float)
    ax.errorbar(mid, np.arange(len(e)), fmt="o", capsize=3,
                xerr=[mid - e["decode_ratio_lo"].to_numpy(float),
                      e["decode_ratio_hi"].to_numpy(float) - mid])
    ax.axvline(1.0, ls="--", color="grey")
    ax.set_yticks(np.arange(len(e)), [f"{k} = {v}" for k, v in zip(e["knob"], e["value"],
                                                                    strict=True)])
    ax.set_xlabel("decode tok/s ÷ baseline (interval from both 95 % CIs)")


# comparison of runs (coresweep compare)


def compare_curves(sweeps: Mapping[str, pd.DataFrame], metrics: Sequence[str], *, title: str,
                   cap: str | None = None) -> Any:
    """One panel per metric: each run's median against threads (one line per run, its 95 % CI
    of the median as a band). A run with no value for a metric is left out of that panel."""
    _style()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        name, unit, _ = _METRIC_LABEL[m]
        ticks: set[int] = set()
        for i, (run, s) in enumerate(sweeps.items()):
            if s.empty or f"{m}_median" not in s or s[f"{m}_median"].isna().all():
                continue
            s = s.dropna(subset=[f"{m}_median"])
            x = s["threads"].to_numpy(int)
            ticks.update(x.tolist())
            ax.fill_between(x, _scaled(s, m, "ci_lo"), _scaled(s, m, "ci_hi"), alpha=0.2,
                            color=f"C{i}")
            ax.plot(x, _scaled(s, m, "median"), "o-", color=f"C{i}", label=run)
        if not ticks:
            ax.text(0.5, 0.5, "not measured in these runs", ha="center", va="center",
                    transform=ax.transAxes, fontsize=10)
        else:
            ax.set_xticks(sorted(ticks))
            ax.legend(fontsize=7)
        ax.set_xlabel("intra-op threads")
        ax.set_ylabel(unit)  # the panel's title names the measure
        ax.set_title(f"{name} ({unit})", fontsize=11)
    return _finish(fig, title, cap)

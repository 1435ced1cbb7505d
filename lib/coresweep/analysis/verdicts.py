"""Verdicts the reports print: the decisions in a sentence, whether every configuration did the same
work, and whether the OMP_NUM_THREADS control changed anything. Each reads structured columns
(roles, busy threads, CIs), never a label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coresweep.analysis.stats import same_work


def decisions_sentence(decisions: dict[str, Any]) -> str:
    """Markdown: the decision (analysis.decision) for TTFT and for decode, with how sure it is."""
    if not decisions or all(d.pick is None for d in decisions.values()):
        return "No eligible point: no configuration to recommend."
    names = {"ttft_s": "Lowest TTFT", "decode_tok_s": "Highest decode"}
    return "\n".join(f"- {names.get(m, m)} ({d.status}): {d.sentence()}"
                     for m, d in decisions.items())


def same_work_sentence(trials: pd.DataFrame) -> str:
    """Markdown: whether every configuration generated the same tokens (token checksums)."""
    w = same_work(trials)
    if not w["groups"]:
        return "No successful trial: no token checksum to compare."
    if w["ok"]:
        from coresweep.engines import model_format

        formats = {model_format(r) for r in trials["runtime"]} if "runtime" in trials else set()
        per = ("model format (a GGUF holds other quantised weights than the ONNX model: its "
               "tokens are compared among its own points) and " if len(formats) > 1 else "")
        return ("Same work everywhere: every repetition of every configuration generated the same "
                f"tokens (one token checksum per {per}prompt/generation length).")
    parts = [f"{key}: " + "; ".join(f"`{c}` by {', '.join(lbs)}" for c, lbs in sums.items())
             for key, sums in w["mismatches"]]
    return ("**Warning: configurations generated different tokens** (compare with care): "
            + " | ".join(parts))


def _overlap(a: pd.Series, b: pd.Series, m: str) -> bool:
    return not (a[f"{m}_ci_hi"] < b[f"{m}_ci_lo"] or b[f"{m}_ci_hi"] < a[f"{m}_ci_lo"])


def _knob_verdict(asked: int, busy_omp: float, busy_default: float, same: bool) -> str:
    if busy_omp == busy_default and busy_omp != asked:
        verdict = (f"asked for {asked} thread(s), ORT still ran {busy_omp:g} busy threads, as "
                   "without it → **the knob does not act** (this onnxruntime build has no "
                   "OpenMP; the thread knob is intra_op_num_threads)")
        if not same:
            verdict += ("; with the same threads on the same CPUs, the speed difference is not "
                        "the knob's doing (between-process spread)")
        return verdict
    if busy_omp == asked and busy_default != asked:
        return (f"asked for {asked} thread(s) and {busy_omp:g} were busy (ORT default: "
                f"{busy_default:g}) → **the knob acts** on this build")
    return (f"busy threads {busy_omp:g} (asked {asked}) vs ORT default {busy_default:g}: "
            "inconclusive")


def control_verdict(summary: pd.DataFrame) -> str:
    """Markdown: does OMP_NUM_THREADS change anything against ORT's default? Judged by the busy
    threads against the count asked for (``role_omp_num_threads``), speed CIs as a side note."""
    if summary is None or summary.empty or "role_control" not in summary:
        return "The ORT-default / OMP_NUM_THREADS controls were not both run."
    ort = summary[summary["role_control"] == "ort-default"]
    omp = summary[summary["role_control"] == "omp-only"]
    if ort.empty or omp.empty:
        return "The ORT-default / OMP_NUM_THREADS controls were not both run."
    a = ort.iloc[0]
    lines = []
    for _, b in omp.iterrows():
        same = _overlap(a, b, "decode_tok_s") and _overlap(a, b, "ttft_s")
        speed = (f"decode {b['decode_tok_s_median']:.2f} tok/s vs ORT default "
                 f"{a['decode_tok_s_median']:.2f}; TTFT {b['ttft_s_median'] * 1000:.1f} ms vs "
                 f"{a['ttft_s_median'] * 1000:.1f} ms ("
                 + ("95 % CIs overlap" if same else "95 % CIs do not overlap") + ")")
        busy_b, busy_a = float(b.get("busy_threads", np.nan)), float(a.get("busy_threads", np.nan))
        if np.isfinite(busy_b) and np.isfinite(busy_a):
            verdict = _knob_verdict(int(b["role_omp_num_threads"]), busy_b, busy_a, same)
            lines.append(f"- **{b['label']}**: {verdict}. {speed}.")
        else:
            lines.append(f"- **{b['label']}**: {speed} → "
                         + ("no measurable effect" if same else "the result changed") + ".")
    return "Control — does `OMP_NUM_THREADS` act?\n\n" + "\n".join(lines)

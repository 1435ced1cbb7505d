"""Runtimes side by side (the ``runtime`` axis of 01 and 02): each runtime's points apart, each
its own decision (the one decision function, :func:`coresweep.analysis.decision.decide`), and how
the runtimes' decided points relate (:func:`coresweep.analysis.decision.relation`).

The runtimes do not do the same work token for token — llama.cpp runs its own quantisation of the
same checkpoint (GGUF Q4_0 against onnxruntime's MatMulNBits INT4) — so they are never decided
among each other's points: each gets its own best, and the comparison says which is faster here
and by how much.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coresweep.analysis.decision import (
    BETTER,
    EQUIVALENT,
    GOALS,
    METRICS,
    WORSE,
    Decision,
    decide,
    point_text,
    relation,
)

__all__ = ["bound_sentences", "by_runtime", "compare_picks", "comparison_sentence", "decisions",
           "decisions_markdown", "runtimes_of", "side_by_side"]


def runtimes_of(points: pd.DataFrame | None) -> list[str]:
    """The runtimes among ``points``, in the order they first appear (a study's configs list the
    first runtime first); [] when the rows say none."""
    if points is None or not len(points) or "runtime" not in points:
        return []
    return [str(r) for r in pd.unique(points["runtime"].astype(str))]


def by_runtime(points: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    """runtime -> its rows (all rows under "" when the table has no runtime column)."""
    if points is None or not len(points):
        return {}
    names = runtimes_of(points)
    if not names:
        return {"": points}
    return {r: points[points["runtime"].astype(str) == r] for r in names}


def decisions(points: pd.DataFrame | None,
              metrics: Any = tuple(GOALS)) -> dict[str, dict[str, Decision]]:
    """runtime -> metric -> the decision over that runtime's points alone."""
    return {r: {m: decide(rows, m) for m in metrics} for r, rows in by_runtime(points).items()}


def decisions_markdown(by_rt: dict[str, dict[str, Decision]]) -> str:
    """Markdown: each runtime's decisions (analysis.verdicts.decisions_sentence), then how the
    runtimes' decided points compare; one runtime: its decisions alone."""
    from coresweep.analysis.verdicts import decisions_sentence

    if len(by_rt) < 2:
        return decisions_sentence(next(iter(by_rt.values()), {}))
    parts = [f"**{rt}** (decided over its own points):\n\n{decisions_sentence(ds)}"
             for rt, ds in by_rt.items()]
    return "\n\n".join([*parts, comparison_sentence(by_rt)])


def bound_sentences(points: pd.DataFrame | None,
                    by_rt: dict[str, dict[str, Decision]]) -> str:
    """Markdown: the roofline's verdict (analysis.roofline.bound_sentence) for each runtime at
    its own decided decode point (each runtime reads its own bytes per token)."""
    from coresweep.analysis.roofline import bound_sentence

    parts = by_runtime(points)
    if len(parts) < 2:
        d = next(iter(by_rt.values()), {}).get("decode_tok_s")
        return bound_sentence(points if points is not None else pd.DataFrame(), d)
    return "\n\n".join(f"**{rt}**: " + bound_sentence(rows, by_rt.get(rt, {}).get(
        "decode_tok_s")) for rt, rows in parts.items())


def compare_picks(by_rt: dict[str, dict[str, Decision]], metric: str) -> dict[str, Any] | None:
    """The decided points of two or more runtimes for ``metric``: which is best, by how much
    (ratio of medians: the better one's over the other's, > 1), and the relation of the intervals
    (better / equivalent / inconclusive; analysis.decision.relation). None when fewer than two
    runtimes have a pick."""
    picks = {r: d[metric].pick for r, d in by_rt.items() if d.get(metric) is not None
             and d[metric].pick is not None}
    if len(picks) < 2:
        return None
    higher = METRICS[metric][0]
    order = sorted(picks, key=lambda r: picks[r]["value"], reverse=higher)
    best, other = order[0], order[1]
    a, b = picks[best], picks[other]
    ratio = a["value"] / b["value"] if higher else b["value"] / a["value"]
    return {"metric": metric, "best": best, "other": other, "ratio": float(ratio),
            "relation": relation(a, b, metric), "best_point": a, "other_point": b,
            "runtimes": order}


def comparison_sentence(by_rt: dict[str, dict[str, Decision]]) -> str:
    """Markdown, one line per goal: which runtime's decided point is better here and by how much,
    and whether the 95 % intervals separate them."""
    lines = []
    for metric, goal in GOALS.items():
        c = compare_picks(by_rt, metric)
        if c is None:
            continue
        a, b = c["best_point"], c["other_point"]
        pct = 100 * (c["ratio"] - 1)
        word = "faster" if METRICS[metric][0] else "shorter"
        sure = {BETTER: "the intervals do not overlap", WORSE: "the intervals do not overlap",
                EQUIVALENT: "within 5 %, tied within noise"}.get(
            c["relation"], "the intervals overlap: not separated on this machine")
        lines.append(f"- **{goal}**: **{c['best']}** {a.get('label')} "
                     f"{point_text(a, metric)} against {c['other']} {b.get('label')} "
                     f"{point_text(b, metric)}: {pct:.0f} % {word} ({sure}).")
    if not lines:
        return "Only one runtime has a recommended point: nothing to compare."
    return "Each runtime's own decided point, compared:\n\n" + "\n".join(lines)


def side_by_side(summary: pd.DataFrame | None, metric: str = "decode_tok_s") -> pd.DataFrame:
    """One row per thread count, one column per runtime: median [95 % CI] of ``metric``, and
    the ratio of each runtime's median to the first runtime's."""
    parts = by_runtime(summary)
    if len(parts) < 2:
        return pd.DataFrame()
    _, unit, scale = METRICS[metric]
    names = list(parts)
    threads = sorted({int(t) for rows in parts.values() for t in rows["threads"] if int(t) > 0})
    out = []
    for t in threads:
        row: dict[str, Any] = {"threads": t}
        at = {r: rows[rows["threads"].astype(int) == t] for r, rows in parts.items()}
        for r in names:
            row[f"{r} ({unit})"] = point_text(at[r].iloc[0], metric) if len(at[r]) else "–"
        first = at[names[0]]
        for r in names[1:]:
            mine = at[r]
            ratio = (float(mine[f"{metric}_median"].iloc[0])
                     / float(first[f"{metric}_median"].iloc[0])) if len(mine) and len(first) \
                else np.nan
            row[f"{r} ÷ {names[0]}"] = f"{ratio:.2f}" if np.isfinite(ratio) else "–"
        out.append(row)
    return pd.DataFrame(out)

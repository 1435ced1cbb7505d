"""The one decision: which configuration to use for a metric, and how sure the run is.

Every answer a report gives — 05's picks, summary.md, recommendation.md, the index, 06's
``knob_threads: auto``, the serving budget pick, ``compare`` — comes from :func:`decide`. Its rules
(docs/protocol.md, "The decision"):

- **eligible** points: an explicit thread count, placement verified, not oversubscribed, not
  throttled by a CPU quota, measured (a finite median and interval). Noisy points stay eligible:
  their interval — a bootstrap over processes, so the spread between processes counts — carries
  the noise; the flag is shown beside the number.
- **best**: the eligible point with the best median.
- **candidates**: eligible points whose interval overlaps the best's and that no eligible point
  beats with a non-overlapping interval. A point clearly beaten is never recommended.
- **status**: *decided* when the best is the only candidate; *tied* when several are and the
  cheapest is, with 95 % confidence, within ``tolerance`` (5 %) of the best's median — the
  cheapest is recommended; *undecided* when the interval of the cheapest reaches further than
  that: the machine was too noisy to separate them, the best median is given as provisional and
  the run refines the contenders (more processes) when it may.
- **controls** (ORT's default mode, the OMP_NUM_THREADS-only run) are never picked; each is
  compared with the pick and named for what it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TOLERANCE = 0.05  # a cheaper point within 5 % of the best is worth its saving
GOALS = {"ttft_s": "lowest TTFT", "decode_tok_s": "highest decode"}  # what the reports answer
# metric -> (higher is better, unit, scale for display)
METRICS = {"decode_tok_s": (True, "tok/s", 1.0), "agg_decode_tok_s": (True, "tok/s", 1.0),
           "prefill_tok_s": (True, "tok/s", 1.0),
           "ttft_s": (False, "ms", 1000.0), "e2e_s": (False, "ms", 1000.0),
           "tok_s": (True, "tok/s", 1.0)}
DECIDED, TIED, UNDECIDED, NONE = "decided", "tied", "undecided", "none"
# relations of one point to another (``relation``)
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
DEFAULT_COST = ("threads", "n_cpus")
ADVICE = ("to separate them: run again on a quieter moment, raise `processes`, or give the run "
          "more `budget` so it re-measures the contenders")


@dataclass
class Decision:
    """The answer for one metric: the pick, the points tied with the best, the evidence."""

    metric: str
    status: str  # decided | tied | undecided | none
    pick: dict[str, Any] | None  # the recommended point (a summary row as a dict)
    best: dict[str, Any] | None  # the eligible point with the best median
    candidates: list[dict[str, Any]] = field(default_factory=list)  # tied with the best
    evidence: pd.DataFrame = field(default_factory=pd.DataFrame)  # every point and its verdict
    controls: list[str] = field(default_factory=list)  # one sentence per control
    tolerance: float = TOLERANCE
    eligible: list[dict[str, Any]] = field(default_factory=list)  # every point it chose among

    @property
    def contenders(self) -> list[str]:
        """Config keys to re-measure when the decision is not settled (empty when it is)."""
        if not self.needs_refinement:
            return []
        return [str(c["config_key"]) for c in self.candidates]

    @property
    def needs_refinement(self) -> bool:
        """Undecided, or tied among points whose measurements are flagged noisy."""
        return self.status == UNDECIDED or (
            self.status == TIED and any(bool(c.get("noisy")) for c in self.candidates))

    @property
    def threads(self) -> int | None:
        return None if self.pick is None else int(self.pick["threads"])

    @property
    def threads_settled(self) -> bool:
        """Every candidate uses the pick's thread count: that much is known even when the
        decision between placements is not."""
        return bool(self.candidates) and len({int(c["threads"]) for c in self.candidates}) == 1

    def value_text(self, point: dict[str, Any] | None = None) -> str:
        return point_text(point or self.pick, self.metric) if (point or self.pick) else "–"

    def sentence(self) -> str:
        """Markdown: the answer and how sure it is."""
        return _sentence(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form batch.json and compare keep (no DataFrames)."""
        def brief(p: dict[str, Any] | None) -> dict[str, Any] | None:
            if p is None:
                return None
            keys = ("config_key", "label", "threads", "cpus", "strategy", "noisy")
            out = {k: _plain(p.get(k)) for k in keys if k in p}
            return {**out, "value": _plain(p["value"]), "ci_lo": _plain(p["ci_lo"]),
                    "ci_hi": _plain(p["ci_hi"])}
        return {"metric": self.metric, "status": self.status, "pick": brief(self.pick),
                "best": brief(self.best), "candidates": [brief(c) for c in self.candidates],
                "controls": list(self.controls), "sentence": self.sentence()}


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


# -- points and their relations ------------------------------------------------------------------

def _col(row: Any, name: str, default: Any = None) -> Any:
    v = row.get(name, default) if hasattr(row, "get") else default
    return default if v is None or (isinstance(v, float) and np.isnan(v)) else v


def _interval(row: Any, metric: str) -> tuple[float, float, float]:
    return tuple(float(_col(row, f"{metric}_{s}", np.nan)) for s in ("median", "ci_lo", "ci_hi"))


def is_control(row: Any) -> bool:
    """ORT's default mode or the OMP_NUM_THREADS-only run (role, else no explicit threads)."""
    if _col(row, "role_control"):
        return True
    return int(_col(row, "threads", 1)) <= 0


def why_not_eligible(row: Any, metric: str) -> str:
    """"" when the point may be recommended, else why not (the first reason)."""
    m, lo, hi = _interval(row, metric)
    checks = ((is_control(row), "a control"),
              (not np.isfinite(m) or not np.isfinite(lo) or not np.isfinite(hi),
               "not measured (failed or no interval)"),
              (_col(row, "placement_ok", True) is False, "placement not verified"),
              (bool(_col(row, "oversubscribed", False)), "oversubscribed"),
              (bool(_col(row, "throttled", False)), "throttled by the CPU quota"),
              (_col(row, "errors", 0) not in (0, None), "errors"))
    return next((why for bad, why in checks if bad), "")


def relation(a: Any, b: Any, metric: str, tolerance: float = TOLERANCE) -> str:
    """How point ``a`` stands against ``b``: better / worse (the 95 % intervals do not overlap),
    equivalent (they overlap and each lies within ± tolerance of the other's median) or
    inconclusive (they overlap but are too wide to say the two are within the tolerance)."""
    higher = METRICS[metric][0]
    am, alo, ahi = _interval(a, metric)
    bm, blo, bhi = _interval(b, metric)
    if alo > bhi:
        return BETTER if higher else WORSE
    if ahi < blo:
        return WORSE if higher else BETTER
    inside = (bm * (1 - tolerance) <= alo and ahi <= bm * (1 + tolerance)
              and am * (1 - tolerance) <= blo and bhi <= am * (1 + tolerance))
    return EQUIVALENT if inside else INCONCLUSIVE


def overlaps(a: Any, b: Any, metric: str) -> bool:
    return relation(a, b, metric, tolerance=np.inf) == EQUIVALENT


def within_tolerance(point: Any, best: Any, metric: str, tolerance: float = TOLERANCE) -> bool:
    """With 95 % confidence the point's median is no more than ``tolerance`` worse than the best's
    median (its interval's worse end is within the tolerance)."""
    m, lo, hi = _interval(point, metric)
    bm = _interval(best, metric)[0]
    return lo >= bm * (1 - tolerance) if METRICS[metric][0] else hi <= bm * (1 + tolerance)


def point_text(p: Any, metric: str) -> str:
    """"12.25 tok/s [11.55–12.87]" (with "noisy" when flagged)."""
    _, unit, scale = METRICS[metric]
    m, lo, hi = (scale * v for v in _interval(p, metric))
    noisy = " (noisy)" if bool(_col(p, "noisy", False)) else ""
    return f"{_num(m)} {unit} [{_num(lo)}–{_num(hi)}]{noisy}"


def _num(v: float) -> str:
    """A measured value with the digits its size warrants (17397, 25.4, 6.42, 0.273)."""
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 \
        else f"{v:.3g}"


# -- the decision ---------------------------------------------------------------------------------

def decide(points: pd.DataFrame | None, metric: str, *, cost: Sequence[str] = DEFAULT_COST,
           tolerance: float = TOLERANCE) -> Decision:
    """The configuration to use for ``metric`` among ``points`` (summary rows: ``<metric>_median``,
    ``_ci_lo``, ``_ci_hi``, threads, placement_ok, ...); ``cost`` orders tied points, cheapest
    first (fewest threads, then CPUs)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    rows = _rows(points, metric)
    eligible = [r for r in rows if not r["why_not"]]
    if not eligible:
        return Decision(metric, NONE, None, None, [], _evidence(rows, None, [], metric),
                        [], tolerance, [])
    best = _best(eligible, metric)
    cands = [r for r in eligible if overlaps(r, best, metric)
             and not any(relation(o, r, metric) == BETTER for o in eligible)]
    cands.sort(key=lambda r: tuple(float(_col(r, c, 0)) for c in cost))
    cheapest = cands[0]
    if len(cands) == 1:
        status, pick = DECIDED, best
    elif within_tolerance(cheapest, best, metric, tolerance):
        status, pick = TIED, cheapest
    else:
        status, pick = UNDECIDED, best
    controls = [control_sentence(r, pick, metric) for r in rows if is_control(r)
                and np.isfinite(r["value"])]
    return Decision(metric, status, pick, best, cands, _evidence(rows, pick, cands, metric),
                    controls, tolerance, eligible)


def _rows(points: pd.DataFrame | None, metric: str) -> list[dict[str, Any]]:
    if points is None or not len(points) or f"{metric}_median" not in points:
        return []
    out = []
    for _, r in points.iterrows():
        d = r.to_dict()
        d["value"], d["ci_lo"], d["ci_hi"] = _interval(d, metric)
        d["why_not"] = why_not_eligible(d, metric)
        out.append(d)
    return out


def _best(eligible: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    higher = METRICS[metric][0]
    return max(eligible, key=lambda r: r["value"] if higher else -r["value"])


def _evidence(rows: list[dict[str, Any]], pick: dict | None, cands: list[dict],
              metric: str) -> pd.DataFrame:
    """One row per point: its value, interval, noise flag and what the decision made of it."""
    keys = {id(c) for c in cands}

    def verdict(r: dict[str, Any]) -> str:
        if pick is not None and r is pick:
            return "recommended"
        if r["why_not"]:
            return f"not eligible: {r['why_not']}"
        if id(r) in keys:
            return "tied with the best"
        return "clearly worse" if pick is not None else ""

    return pd.DataFrame([{"point": r.get("label"), "threads": r.get("threads"),
                          "value": point_text(r, metric) if np.isfinite(r["value"]) else "–",
                          "noisy": bool(_col(r, "noisy", False)), "decision": verdict(r)}
                         for r in rows])


def control_sentence(control: dict[str, Any], pick: dict[str, Any] | None, metric: str) -> str:
    """"ORT's default mode is tied with the recommendation" / "... is 8 % faster: to get it ..."."""
    name = _control_name(control)
    if pick is None:
        return f"{name}: {point_text(control, metric)}; no eligible point to compare it with."
    rel = relation(control, pick, metric)
    ratio = control["value"] / pick["value"]
    higher = METRICS[metric][0]
    pct = abs(ratio - 1) * 100
    if rel in (EQUIVALENT, INCONCLUSIVE):
        return (f"{name} ({point_text(control, metric)}) is tied with the recommendation within "
                "noise.")
    word = ("faster" if higher else "slower") if ratio > 1 else ("slower" if higher else "faster")
    text = f"{name} ({point_text(control, metric)}) is {pct:.0f} % {word} than the recommendation"
    if rel == BETTER:
        busy = _col(control, "busy_threads")
        threads = f"{busy:g}" if busy else "one per physical core"
        text += (f": to get it explicitly, set intra_op_num_threads = {threads} with each pool "
                 "thread pinned to its own core (coresweep `pin_threads`; ORT's default mode "
                 "pins one thread per physical core and ignores the process's CPU mask)")
    return text + "."


def _control_name(control: dict[str, Any]) -> str:
    role = _col(control, "role_control") or ("ort-default" if _col(control, "ort_default")
                                             else "control")
    names = {"ort-default": "ORT's default mode (intra_op_num_threads = 0)",
             "omp-only": "The OMP_NUM_THREADS-only run"}
    return names.get(str(role), f"Control `{_col(control, 'label', role)}`")


def _sentence(d: Decision) -> str:
    if d.status == NONE:
        return ("No eligible point (an explicit thread count, placement verified, not "
                "oversubscribed, not throttled): nothing to recommend.")
    label = f"**{d.pick.get('label')}**"
    others = [c for c in d.candidates if c is not d.pick]
    if d.status == DECIDED:
        nxt = _runner_up(d)
        tail = f" (next: {nxt.get('label')}, {point_text(nxt, d.metric)})" if nxt else ""
        return (f"{label}: {point_text(d.pick, d.metric)} — clearly ahead of every other "
                f"eligible point{tail}.")
    listed = "; ".join(f"{c.get('label')} {point_text(c, d.metric)}" for c in others)
    if d.status == TIED:
        which = ("the best median and the cheapest" if d.pick is d.best
                 else f"within {100 * d.tolerance:.0f} % of the best and the cheapest")
        return (f"{label}: {point_text(d.pick, d.metric)} — {which} of {len(d.candidates)} "
                f"points tied within noise (also: {listed}).")
    settled = (f" Every contender uses {d.threads} thread(s): the thread count is settled, the "
               "placement is not." if d.threads_settled else "")
    return (f"**Undecided** — {label} measured best ({point_text(d.pick, d.metric)}), but "
            f"{listed} cannot be told apart from it within {100 * d.tolerance:.0f} %: the "
            f"machine was too noisy.{settled} {d.pick.get('label')} is given as provisional; "
            f"{ADVICE}.")


def _runner_up(d: Decision) -> dict[str, Any] | None:
    """The best eligible point after the pick (for the decided sentence)."""
    ev = [r for r in d.eligible if r is not d.pick]
    return _best(ev, d.metric) if ev else None


def prefill_decode_note(ttft: Decision | None, decode: Decision | None) -> str:
    """Markdown when the thread count recommended for the prompt (TTFT) differs from decode's."""
    if not ttft or not decode or ttft.pick is None or decode.pick is None:
        return ""
    if ttft.threads == decode.threads:
        return (f"Prefill and decode agree: {ttft.threads} thread(s) is the recommended "
                "count for both.")
    return (f"**Prefill and decode disagree**: the prompt (TTFT) is best with "
            f"{ttft.threads} thread(s), decode with {decode.threads} — prefill is compute-"
            "bound and scales with cores; decode streams the weights and stops scaling when "
            "memory bandwidth runs out. One session uses one count: pick by what your users "
            "wait for (long prompts: TTFT; long answers: decode).")

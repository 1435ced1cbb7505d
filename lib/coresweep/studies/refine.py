"""Refining a decision that is not settled: when a study's decision for TTFT or decode (one
analysis.decision.decide per goal) is undecided, or tied among points flagged noisy, only the
contenders get more fresh processes — two per round, interleaved, on the sweep's own resumable
machinery — until the decision settles, the contenders reach ``refine_processes`` or the
notebook's time budget would be overrun. Every round is recorded in run.json ``refinements`` (the
extra processes and why); the report shows them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from coresweep.analysis.runtimes import by_runtime, decisions

STEP = 2  # processes added per contender and round: a pair keeps the interleaving fair
UNIT_OVERHEAD_S = 2.0  # process start, imports, placement checks: outside the worker's timings


@dataclass
class Round:
    """One refinement round: who got more processes, why, and what it cost."""

    study: str
    round: int
    contenders: list[str]  # labels
    keys: list[str]
    metrics: list[str]  # the goals that were not settled
    status_before: dict[str, str]
    processes: int  # processes each contender has after the round
    extra_processes: int  # added in this round, over all contenders
    wall_s: float
    status_after: dict[str, str]

    @property
    def sentence(self) -> str:
        goals = ", ".join(f"{m} {self.status_before[m]} → {self.status_after.get(m, '?')}"
                          for m in self.metrics)
        return (f"{self.study}, refinement round {self.round}: {self.extra_processes} extra "
                f"process(es) for {', '.join(self.contenders)} (now {self.processes} each; "
                f"{goals}; {self.wall_s:.0f} s)")


def goal_decisions(summary: Any) -> dict[str, Any]:
    """goal -> Decision, each runtime's apart: "decode_tok_s" with one runtime,
    "decode_tok_s · llamacpp" with several (each runtime is decided over its own points)."""
    by_rt = decisions(summary)
    return {(m if len(by_rt) < 2 else f"{m} · {rt}"): d
            for rt, ds in by_rt.items() for m, d in ds.items()}


def unsettled(summary: Any) -> dict[str, Any]:
    """goal -> Decision for every goal whose decision needs refining (each runtime's apart): its
    contenders differ in what a deployment sets — the thread count or the CPUs. Contenders on the
    same threads and CPUs differ only in whether the process is pinned (02's claim 4, not the
    answer): more processes there would buy no better recommendation."""
    return {m: d for m, d in goal_decisions(summary).items() if d.needs_refinement
            and len({(int(c["threads"]), str(c.get("cpus"))) for c in d.candidates}) > 1}


def unit_seconds(summary: Any, keys: Sequence[str], reps: int, warmup: int) -> float:
    """Expected wall time of one more process of the contenders: load, warm-up and timed
    generations at their measured medians, plus the process overhead."""
    rows = summary[summary["config_key"].isin(list(keys))]
    if not len(rows):
        return float("inf")
    per = rows["load_s_median"].fillna(0) + (reps + warmup) * rows["e2e_s_median"].fillna(0)
    return float(per.max()) + UNIT_OVERHEAD_S


def refine(study: Any, resolved: Any, configs: Sequence[Any], results: Any,
           started: float) -> Any:
    """Rounds of more processes for the contenders of unsettled decisions; the study's Results
    re-selected after the last. ``started``: time.monotonic() when the notebook began measuring
    (the study budget counts from there)."""
    v = resolved.values
    cap, budget = int(v["refine_processes"]), float(v["study_budget_s"])
    by_key = {c.key(): c for c in configs}
    rnd = 0
    while cap > v["processes"]:
        todo = unsettled(results.summary)
        keys = sorted({k for d in todo.values() for k in d.contenders if k in by_key})
        if not keys:
            break
        have = int(results.summary.set_index("config_key").loc[keys, "n_processes"].max())
        target = min(cap, have + STEP)
        cost = (target - have) * len(keys) * unit_seconds(results.summary, keys, v["reps"],
                                                          v["warmup"])
        if target <= have or (budget and time.monotonic() - started + cost > budget):
            break
        rnd += 1
        results = _one_round(study, resolved, configs, [by_key[k] for k in keys], todo,
                             target, rnd, have)
    return results


def widest_gap(summary: Any) -> tuple[int, int, float] | None:
    """The two neighbouring explicit thread counts of one runtime (within the plan's CPUs, at
    least one count apart) whose decode or TTFT medians differ the most (relative), with that
    difference."""
    from coresweep.analysis.decision import GOALS

    best = None
    for rows in by_runtime(summary).values():
        # more threads than the plan's CPUs is oversubscribed by design, whatever was measured
        s = rows[(rows["threads"].astype(int) > 0)
                 & (rows["threads"].astype(int) <= rows["n_cpus"].astype(int))]
        s = s.sort_values("threads")
        for (_, a), (_, b) in zip(s.iloc[:-1].iterrows(), s.iloc[1:].iterrows(), strict=True):
            if int(b["threads"]) - int(a["threads"]) < 2:
                continue
            diff = max(abs(b[f"{m}_median"] / a[f"{m}_median"] - 1) for m in GOALS)
            if best is None or diff > best[2]:
                best = (int(a["threads"]), int(b["threads"]), float(diff))
    return best


def fill_ladder(study: Any, resolved: Any, configs: Sequence[Any], results: Any,
                started: float) -> Any:
    """Under a time budget, measure the thread count halfway between the neighbours that differ
    most, again and again while the budget lasts (the thread study's ladder, refined where the
    curve bends); each point added is recorded in run.json ``refinements``."""
    v = resolved.values
    budget = float(v["study_budget_s"])
    while budget:
        gap = widest_gap(results.summary)
        if gap is None:
            break
        a, b, diff = gap
        keys = list(results.summary.loc[results.summary["threads"].isin([a, b]), "config_key"])
        n_rt = max(1, len(by_runtime(results.summary)))
        cost = n_rt * v["processes"] * unit_seconds(results.summary, keys, v["reps"], v["warmup"])
        if time.monotonic() - started + cost > budget:
            break
        resolved.values["threads"] = sorted({*v["threads"], (a + b) // 2})
        configs = study.configs(resolved)
        points = [c for c in study.main_configs(resolved) if c.threads == (a + b) // 2]
        results = _measure_more(study, resolved, configs, points, v["processes"],
                                f"added to the ladder: {a} and {b} threads differ by "
                                f"{100 * diff:.0f} %")
    return results


def _measure_more(study: Any, resolved: Any, configs: Sequence[Any], more: list[Any],
                  processes: int, why: str) -> Any:
    """Sweep ``more`` (points added to the ladder) and record it."""
    results, wall = _sweep_more(study, resolved, configs, more, processes, why)
    names = ", ".join(c.display for c in more)
    _record(resolved.values["run_dir"], {
        "study": study.id, "contenders": [c.display for c in more],
        "keys": [c.key() for c in more], "processes": processes,
        "extra_processes": processes * len(more), "wall_s": wall,
        "sentence": f"{study.id}: {why}: {names} ({processes} processes, {wall:.0f} s)"})
    return results


def _sweep_more(study: Any, resolved: Any, configs: Sequence[Any], more: list[Any],
                processes: int, why: str) -> tuple[Any, float]:
    """Sweep ``more`` up to ``processes`` processes as a refining pass (the run's design stays,
    their stop becomes "refined"); the study's Results over ``configs`` and the seconds."""
    from coresweep.measurement.sweep import sweep
    from coresweep.studies.results import select

    v = resolved.values
    t0 = time.monotonic()
    run = sweep(more, out=v["run_dir"], processes=processes, timeout_s=v["timeout_s"],
                sample_interval_s=v["sample_interval_s"], topo=resolved.topology, refining=why)
    return study.finish(resolved, select(run, configs)), time.monotonic() - t0


def _one_round(study: Any, resolved: Any, configs: Sequence[Any], contenders: list[Any],
               todo: dict[str, Any], target: int, rnd: int, have: int) -> Any:
    why = ("refined: the " + " and ".join(todo) + " decision was not settled ("
           + ", ".join(d.status for d in todo.values()) + ")")
    results, wall = _sweep_more(study, resolved, configs, contenders, target, why)
    now = goal_decisions(results.summary)
    after = {m: now[m].status if m in now else "?" for m in todo}
    record = Round(study.id, rnd, [c.display for c in contenders], [c.key() for c in contenders],
                   list(todo), {m: d.status for m, d in todo.items()}, target,
                   (target - have) * len(contenders), wall, after)
    _record(resolved.values["run_dir"], {**asdict(record), "sentence": record.sentence})
    return results


def _record(run_dir: str, record: dict[str, Any]) -> None:
    from coresweep.measurement.store import Store

    store = Store(run_dir)
    meta = store.read_meta()
    meta.setdefault("refinements", []).append(record)
    store.write_meta(meta)

"""The placement verdict of one worker process: what its threads did during the timed phase
against the plan, plus what the worker read back of its own mask and whether it set the mask
before importing onnxruntime. Decided here, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coresweep.machine.cpulist import format_cpulist, parse_cpulist

_ZERO = {"user_s": 0.0, "sys_s": 0.0, "cpu_s": 0.0}


def _cpu_s(t: dict[str, Any]) -> float:
    return t.get("cpu_s", t["user_s"] + t["sys_s"])


def thread_deltas(before: list[dict], after: list[dict], *, threshold: float,
                  seen: dict[int, set[int]] | None = None) -> list[dict[str, Any]]:
    """Per thread: CPU time over the timed phase, CPUs it was seen on, busy or not."""
    b = {t["tid"]: t for t in before}
    seen = seen or {}
    rows = []
    for t in after:
        t0 = b.get(t["tid"], _ZERO)
        dc = max(0.0, _cpu_s(t) - _cpu_s({**_ZERO, **t0}))
        rows.append({
            "tid": t["tid"], "name": t["name"], "allowed": t.get("allowed", ""),
            "last_cpu": t["last_cpu"],
            "seen_cpus": format_cpulist(set(seen.get(t["tid"], set())) | {t["last_cpu"]}),
            "user_s": max(0.0, t["user_s"] - t0["user_s"]),
            "sys_s": max(0.0, t["sys_s"] - t0["sys_s"]), "cpu_s": dc, "busy": dc > threshold,
        })
    return rows


def _mask_reasons(rows: list[dict], plan: set[int], ort_default: bool) -> tuple[bool, list[str]]:
    """Threads allowed outside the plan (a failure), or pinned inside it by ORT (a note)."""
    outside = [r for r in rows if r["allowed"] and not set(parse_cpulist(r["allowed"])) <= plan]
    reasons = []
    if outside:
        what = "ORT default mode pinned its own threads" if ort_default else "threads are allowed"
        reasons.append(f"{what} outside the plan {format_cpulist(plan)}: "
                       + "; ".join(f"tid {r['tid']} allowed {r['allowed']}" for r in outside[:6]))
    narrower = [r for r in rows if r["allowed"] and r not in outside
                and set(parse_cpulist(r["allowed"])) < plan]
    if narrower and ort_default:
        reasons.append(f"ORT default mode pinned {len(narrower)} thread(s) itself inside the "
                       "plan: " + "; ".join(f"tid {r['tid']} allowed {r['allowed']}"
                                            for r in narrower[:6]))
    return not outside, reasons


def _busy_reasons(busy: list[dict], plan: set[int]) -> tuple[bool, bool, list[str]]:
    """Busy threads seen off the plan, or more busy threads than CPUs (oversubscribed)."""
    reasons, ok = [], True
    off = sorted({c for r in busy for c in parse_cpulist(r["seen_cpus"]) if c not in plan})
    if off:
        ok = False
        reasons.append(f"busy threads ran on CPU(s) {format_cpulist(off)} outside the plan")
    allowed: set[int] = set()
    for r in busy:
        allowed |= set(parse_cpulist(r["allowed"])) if r["allowed"] else plan
    n_cpus = len(allowed) if busy else len(plan)
    oversub = len(busy) > max(1, n_cpus)
    if oversub:
        ok = False
        reasons.append(f"{len(busy)} busy threads on {n_cpus} CPU{'s' if n_cpus != 1 else ''}: "
                       "oversubscribed")
    return ok, oversub, reasons


def _worker_reasons(plan: set[int], affinity: Sequence[int] | None,
                    affinity_first: bool | None) -> list[str]:
    """What the worker reported of itself: its mask read back, the order of mask and import."""
    reasons = []
    if affinity is not None and set(affinity) != plan:
        reasons.append(f"worker's affinity read back as {format_cpulist(affinity)}, plan "
                       f"{format_cpulist(plan)}")
    if affinity_first is False:
        reasons.append("onnxruntime was imported before the affinity was set")
    return reasons


def verify_placement(plan_cpus: Sequence[int], before: list[dict], after: list[dict], *,
                     wall_s: float, seen: dict[int, set[int]] | None = None,
                     ort_default: bool = False, affinity: Sequence[int] | None = None,
                     affinity_first: bool | None = None, busy_fraction: float = 0.10,
                     min_busy_s: float = 0.002) -> dict[str, Any]:
    """Compare what the threads did during the timed phase with the plan.

    before/after: read_threads() snapshots around the timed repetitions. A thread is busy when its
    on-CPU time grew by more than max(min_busy_s, busy_fraction * wall_s). ``affinity``: the mask
    the worker read back after setting it; ``affinity_first``: it set the mask before importing
    onnxruntime (False fails the verdict, None = not reported). Returns per-thread rows and a
    verdict: placement_ok, busy_threads, cpus_used, oversubscribed, reasons.
    """
    plan = set(plan_cpus)
    threshold = max(min_busy_s, busy_fraction * max(wall_s, 0.0))
    rows = thread_deltas(before, after, threshold=threshold, seen=seen)
    busy = [r for r in rows if r["busy"]]
    mask_ok, mask_why = _mask_reasons(rows, plan, ort_default)
    busy_ok, oversub, busy_why = _busy_reasons(busy, plan)
    worker_why = _worker_reasons(plan, affinity, affinity_first)
    return {
        "placement_ok": mask_ok and busy_ok and not worker_why,
        "busy_threads": len(busy),
        "threads_total": len(rows),
        "cpus_used": format_cpulist(sorted({c for r in busy
                                            for c in parse_cpulist(r["seen_cpus"])})),
        "oversubscribed": oversub,
        "reasons": mask_why + busy_why + worker_why,
        "rows": rows,
        "busy_threshold_s": threshold,
    }

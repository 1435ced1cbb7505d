"""The measuring process's side of a trial: where it runs while a worker is measured, and what the
machine did to the trial meanwhile (CFS throttling).

The parent streams the worker's events and samples /proc: on the worker's CPUs that work would
be measured as the worker's. It moves to the CPUs outside the worker's plan whenever there are
any (threads started meanwhile, like the sampler, inherit that mask); when the plan takes every
CPU it stays, and the row says it shared them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from coresweep.machine.cgroup import Throttling, read_throttling
from coresweep.machine.cpulist import format_cpulist


@dataclass
class ParentPlacement:
    cpus: list[int]
    shares_cpus: bool  # the plan holds every CPU the parent may use

    def columns(self) -> dict:
        return {"parent_cpus": format_cpulist(self.cpus), "parent_shares_cpus": self.shares_cpus}


@contextmanager
def parent_outside(plan_cpus: Iterable[int]) -> Iterator[ParentPlacement]:
    """Pin the calling thread to the allowed CPUs outside ``plan_cpus`` for the block (restored
    after)."""
    before = sorted(os.sched_getaffinity(0))
    outside = sorted(set(before) - set(plan_cpus))
    if not outside:
        yield ParentPlacement(before, True)
        return
    os.sched_setaffinity(0, outside)
    try:
        yield ParentPlacement(outside, False)
    finally:
        os.sched_setaffinity(0, before)


def throttle_columns(before: Throttling, after: Throttling) -> dict:
    """The trial's throttling: periods and seconds; NaN where cpu.stat has no counters."""
    d = after.since(before)
    nan = float("nan")
    return {"throttled_periods": d.periods if d.readable else -1,
            "throttled_s": d.throttled_s if d.readable else nan,
            "throttled": bool(d.readable and d.periods > 0)}


__all__ = ["ParentPlacement", "parent_outside", "read_throttling", "throttle_columns"]

"""A batch's progress and its ETA.

The plan estimates every work item (a trial process, a serving level) and every study's fixed part
(notebook, bandwidth, server starts, the refinement reserve). While the run goes, the items left
are scaled by the run's pace on the items done (see :class:`Eta`), once a tenth of them are done;
before that the plan's estimate stands. Without a plan (no budget) each trial process counts as
one item of unknown length and the same rule gives a rate-based ETA.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETTLE = 0.10  # share of the estimated work done before the measured ratio is trusted


@dataclass
class Eta:
    """Estimated and actual seconds of the studies of one batch, and the ETA.

    Each work item's actual time is the time since the previous item of its study finished (the
    watcher notices items within seconds); the run's *pace* is the actual time of the items done
    over their estimate. What is left: the current study's items × pace, plus what its fixed part
    (notebook, bandwidth, server starts, refinement reserve) has not used yet, plus every later
    study's items × pace and fixed part as estimated. A study's fixed part is not scaled: a slow
    bandwidth measurement says nothing about the next study's trials."""

    estimates: dict[str, Any]  # study id -> budget.StudyEstimate
    planned: bool = True  # False: items of unknown length (no budget): no ETA until settled
    t0: float = field(default_factory=time.monotonic)
    actual: dict[str, float] = field(default_factory=dict)  # finished study -> seconds
    current: str | None = None
    current_t0: float = 0.0
    item_s: dict[str, float] = field(default_factory=dict)  # item -> its actual seconds
    paced: set[str] = field(default_factory=set)  # items timed from a previous item's end
    last_mark: float = 0.0  # when the current study's previous item finished (or it began)

    @property
    def total_s(self) -> float:
        return sum(e.seconds for e in self.estimates.values())

    def start(self, study: str) -> None:
        self.current, self.current_t0 = study, time.monotonic()
        self.last_mark = self.current_t0

    def finish(self, study: str) -> float:
        wall = time.monotonic() - self.current_t0
        self.actual[study] = wall
        self.current = None
        return wall

    def observe(self, done_items: set[str]) -> None:
        """Give the items of the current study that finished since the last look their share of
        the time since the previous one finished. The study's first items also hold its start
        (kernel, setup cells): they get at most their estimate, the rest counts as the fixed
        part used, and they do not set the pace (counted twice, the start overestimated the
        run by up to a fifth)."""
        e = self.estimates.get(self.current) if self.current else None
        new = [k for k in (e.units if e else {}) if k in done_items and k not in self.item_s]
        if new:
            now = time.monotonic()
            first = self.last_mark == self.current_t0
            for k in new:
                share = (now - self.last_mark) / len(new)
                self.item_s[k] = min(share, e.units[k]) if first else share
                if not first:
                    self.paced.add(k)
            self.last_mark = now

    def pace(self) -> float | None:
        """Actual over estimated time of the paced items done; None until a tenth of all are."""
        est = {k: v for e in self.estimates.values() for k, v in e.units.items()}
        done = sum(est[k] for k in self.paced if k in est)
        if done <= 0 or done < SETTLE * sum(est.values()):
            return None
        return sum(self.item_s[k] for k in self.paced if k in est) / done

    def remaining_s(self, done_items: set[str]) -> float | None:
        """Seconds left (None while an unplanned batch has no pace yet)."""
        self.observe(done_items)
        pace = self.pace()
        if pace is None and not self.planned:
            return None
        pace = pace or 1.0
        left = 0.0
        for sid, e in self.estimates.items():
            if sid in self.actual:
                continue
            left += pace * sum(v for k, v in e.units.items() if k not in self.item_s)
            used = 0.0
            if sid == self.current:  # time in the study not spent on its items: its fixed part
                used = time.monotonic() - self.current_t0 - sum(
                    self.item_s[k] for k in e.units if k in self.item_s)
            left += max(0.0, e.fixed_s - used)
        return left

    def done_s(self, done_items: set[str]) -> float:
        """Estimated seconds of the work done: finished studies whole, the current one's items."""
        done = sum(self.estimates[s].seconds for s in self.actual if s in self.estimates)
        e = self.estimates.get(self.current) if self.current else None
        if e is not None:
            done += sum(v for k, v in e.units.items() if k in done_items)
        return done

    def report(self) -> list[str]:
        """Estimated against actual, per study and in all (printed when the run ends)."""
        from coresweep.report.paths import fmt_s

        lines = ["estimated vs actual:"]
        for sid, e in self.estimates.items():
            got = self.actual.get(sid)
            lines.append(f"  {sid:14} estimated {fmt_s(e.seconds)}  actual "
                         + (fmt_s(got) if got is not None else "–"))
        est = sum(e.seconds for s, e in self.estimates.items() if s in self.actual)
        lines.append(f"  {'studies':14} estimated {fmt_s(est)}  actual "
                     f"{fmt_s(sum(self.actual.values()))}")
        return lines


def done_items(run_dir: Path) -> set[str]:
    """Names of the finished work items in a run folder: trial units (with trials, or failed)
    and serving units (by plan: see :func:`serving_item_names`)."""
    from coresweep.measurement.store import Store

    store = Store(run_dir)
    out = {Store.unit_name(k, p) for k, p in store.completed_units()}
    failures = store.data / "failures"
    if failures.is_dir():
        out |= {f.stem.rsplit("__", 1)[0] for f in failures.glob("*.parquet")}
    serving = store.data / "serve_requests"
    if serving.is_dir():
        out |= serving_item_names([f.stem for f in serving.glob("*.parquet")])
    return out


def serving_item_names(unit_stems: Sequence[str]) -> set[str]:
    """Serving units as the plan names them: closed levels by name; open levels (stored by their
    request rate, planned by their fraction of the peak) as the n-th open level of the plan."""
    out: set[str] = set()
    opened: dict[str, int] = {}
    for stem in sorted(unit_stems):
        plan, _, level = stem.partition("__")
        if level.startswith("open"):
            opened[plan] = opened.get(plan, 0) + 1
            out.add(f"{plan}__open#{opened[plan]}")
        else:
            out.add(stem)
    return out


class Watcher:
    """A thread that prints the batch's progress and ETA while a notebook runs."""

    def __init__(self, eta: Eta, run_dir: Path, label: str, say: Callable[[str], None],
                 every_s: float = 2.0, quiet_s: float = 30.0):
        self.eta, self.run_dir, self.label, self.say = eta, run_dir, label, say
        self.every_s, self.quiet_s = every_s, quiet_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="coresweep-eta")

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)

    def line(self, done: set[str]) -> str:
        from coresweep.report.paths import fmt_s

        e = self.eta.estimates.get(self.eta.current or "")
        n = sum(1 for k in (e.units if e else {}) if k in done)
        of = f"{n}/{len(e.units)} items · " if e and e.units else ""
        left = self.eta.remaining_s(done)
        return (f"{self.label}: {of}elapsed {fmt_s(time.monotonic() - self.eta.t0)} · ETA "
                + (f"{fmt_s(left)} left" if left is not None else "after the first processes"))

    def _loop(self) -> None:
        last, last_t = -1, time.monotonic()
        while not self.stop_event.wait(self.every_s):
            done = done_items(self.run_dir)
            if len(done) != last or time.monotonic() - last_t > self.quiet_s:
                self.say(self.line(done))
                last, last_t = len(done), time.monotonic()

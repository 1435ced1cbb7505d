"""Calibration: one short trial per thread count a run needs, so the budget planner knows what a
worker process, a generation and a served request cost on this machine before it plans.

A calibration trial is a real worker (`measurement.trial.run_trial`): fresh process, pinned, the
model loaded, one warm-up and one timed generation of a few tokens (a cold first generation is
slower than the steady state every study measures: timing it overestimated the runs by ~25 %). Its numbers go to run.json ``calibration`` and are never
mixed with the studies' trials.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError

CAL_TOKENS = 8  # generated tokens of a calibration trial: enough for a decode rate
OVERSUBSCRIBED_SLOWDOWN = 2.0  # two threads on one CPU decode at half speed (design.md)
CAL_MAX_BATCH = 4  # a batch calibration decodes at most this many (larger: extrapolated)


@dataclass(frozen=True)
class CalPoint:
    """What one short trial at ``threads`` took."""

    threads: int
    wall_s: float  # spawn to exit
    load_s: float
    ttft_s: float
    decode_tok_s: float  # each sequence's (a batch point: one step per batch_size tokens)
    batch: int = 1

    @property
    def overhead_s(self) -> float:
        """Process start, imports, placement checks: the wall time outside the model (its
        warm-up and timed generations)."""
        return max(0.5, self.wall_s - self.load_s - 2 * (self.ttft_s
                                                         + (CAL_TOKENS - 1) / self.decode_tok_s))


@dataclass
class Calibration:
    """Calibrated costs of one model on one machine, by thread count, on ``runtime``; the run's
    other runtimes (``runtime`` a list) in ``others``, each its own calibration."""

    model: str
    precision: str
    prompt_tokens: int
    points: dict[int, CalPoint] = field(default_factory=dict)
    wall_s: float = 0.0  # what calibrating cost (every runtime's)
    batched: CalPoint | None = None  # one batch > 1 at the largest thread count, if any
    runtime: str = "ort"
    others: dict[str, Calibration] = field(default_factory=dict)

    def of(self, runtime: str) -> Calibration:
        """The calibration of ``runtime`` (this one when it was not calibrated apart)."""
        return self.others.get(runtime, self)

    def batch_growth(self) -> tuple[float, float]:
        """How a step and a prefill grow per added sequence, as fractions of batch 1's, from
        the batch point at its thread count: (step, prefill). Without one: (1, 1), no gain from
        batching (the safe side)."""
        b = self.batched
        one = self.points.get(b.threads) if b is not None else None
        if b is None or one is None or b.batch < 2:
            return 1.0, 1.0
        step = (one.decode_tok_s / b.decode_tok_s - 1) / (b.batch - 1)
        prefill = (b.ttft_s / one.ttft_s - 1) / (b.batch - 1)
        return max(step, 0.0), max(prefill, 0.0)

    def batch_times(self, threads: int, cpus: int, batch: int) -> tuple[float, float]:
        """(TTFT of the batch, one step) for ``batch`` sequences at ``threads``: batch 1's,
        grown linearly per added sequence as the batch calibration measured (a step reads the
        weights once for all, then computes per sequence)."""
        p = self.at(threads, cpus)
        step, prefill = self.batch_growth()
        k = max(0, batch - 1)
        return p.ttft_s * (1 + k * prefill), (1 + k * step) / p.decode_tok_s

    def warm_loads(self) -> None:
        """Every point's load as its fastest one's, its process shorter by the difference: the
        model's load time does not depend on the thread count, and one calibration trial's load
        now and then takes several times the others' (seen: 3.7 and 4.5 s against 1.3-1.6 s)."""
        points = [*self.points.values(), *([self.batched] if self.batched else [])]
        if not points:
            return
        warm = min(p.load_s for p in points)

        def warmed(p: CalPoint) -> CalPoint:
            return replace(p, wall_s=p.wall_s - (p.load_s - warm), load_s=warm)

        self.points = {t: warmed(p) for t, p in self.points.items()}
        self.batched = warmed(self.batched) if self.batched else None

    def at(self, threads: int, cpus: int) -> CalPoint:
        """The point for ``threads`` on ``cpus`` CPUs: the nearest calibrated count at or below
        (more threads than calibrated: no faster, the safe side), slowed when oversubscribed."""
        if not self.points:
            raise CoresweepError("the calibration holds no point")
        counts = sorted(self.points)
        usable = min(threads, cpus)
        i = bisect.bisect_right(counts, usable) - 1
        p = self.points[counts[max(i, 0)]]
        if threads <= cpus:
            return p
        slow = OVERSUBSCRIBED_SLOWDOWN
        return CalPoint(threads, p.wall_s, p.load_s, p.ttft_s * slow, p.decode_tok_s / slow)

    def generation_s(self, threads: int, cpus: int, gen_tokens: int, *,
                     prompt_tokens: int | None = None, batch: int = 1) -> float:
        """One greedy generation (of ``batch`` sequences together): prefill (scaled to the
        prompt length) then decode."""
        ttft, step = self.batch_times(threads, cpus, batch)
        scale = (prompt_tokens or self.prompt_tokens) / self.prompt_tokens
        return ttft * scale + (gen_tokens - 1) * step

    def unit_s(self, threads: int, cpus: int, *, reps: int, warmup: int, gen_tokens: int,
               prompt_tokens: int | None = None, batch: int = 1) -> float:
        """One worker process of a study: start, load, warm-ups and timed generations."""
        p = self.at(threads, cpus)
        gen = self.generation_s(threads, cpus, gen_tokens, prompt_tokens=prompt_tokens,
                                batch=batch)
        return p.overhead_s + p.load_s + (warmup + reps) * gen

    def to_dict(self) -> dict[str, Any]:
        out = {"model": self.model, "precision": self.precision, "runtime": self.runtime,
               "prompt_tokens": self.prompt_tokens, "wall_s": self.wall_s,
               "points": [asdict(p) for p in self.points.values()]}
        if self.batched:
            out["batched"] = asdict(self.batched)
        if self.others:
            out["others"] = {name: c.to_dict() for name, c in self.others.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        points = {int(p["threads"]): CalPoint(**p) for p in d.get("points", [])}
        batched = CalPoint(**d["batched"]) if d.get("batched") else None
        others = {name: cls.from_dict(o) for name, o in (d.get("others") or {}).items()}
        return cls(d["model"], d.get("precision", "int4"), int(d["prompt_tokens"]), points,
                   float(d.get("wall_s", 0.0)), batched, d.get("runtime", "ort"), others)

    @classmethod
    def read(cls, path: str | Path) -> Calibration:
        """A calibration file (JSON, as written by ``coresweep run --plan``); CoresweepError
        naming the file when it is missing or not one."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CoresweepError(f"{path} is not a coresweep calibration file ({exc}); write one "
                                 "with `coresweep run PARAMS --plan --save-calibration FILE`") \
                from None


def thread_counts(needed: Sequence[int], cpus: int) -> list[int]:
    """The counts worth calibrating among those a run needs: 1, the powers of two, the largest
    that fits the CPUs (the others are estimated from the nearest one below: no faster, the safe
    side)."""
    fits = [t for t in needed if t <= cpus]
    top = max(fits, default=1)
    return sorted({1, top} | {t for t in fits if t & (t - 1) == 0})


def calibrate(values: dict[str, Any], topo: Any, counts: Sequence[int], *, batch: int = 1,
              log: Callable[[str], None] = print) -> Calibration:
    """One short trial per thread count on the run's model and prompt (placement cores-first),
    on each of its runtimes (the first's is the calibration, the others' in ``others``); when the
    run decodes batches (``batch`` > 1), one more of min(batch, CAL_MAX_BATCH) sequences at the
    largest count on the first runtime."""
    from coresweep.studies.common import runtimes

    t0 = time.monotonic()
    first, *rest = [_calibrate_runtime(values, topo, counts, r, log) for r in runtimes(values)]
    if batch > 1 and counts:
        base = {**_cal_base(values), "runtime": first.runtime}
        first.batched = _cal_point(base, max(counts), min(batch, CAL_MAX_BATCH), topo,
                                   values.get("timeout_s", 600.0), log)
    for cal in (first, *rest):
        cal.warm_loads()
    first.others = {c.runtime: c for c in rest}
    first.wall_s = time.monotonic() - t0
    return first


def _cal_base(values: dict[str, Any]) -> dict[str, Any]:
    from coresweep.studies.common import workload

    return {**workload(values), "gen_tokens": CAL_TOKENS, "warmup": 1, "reps": 1, "batch": 1}


def _calibrate_runtime(values: dict[str, Any], topo: Any, counts: Sequence[int], runtime: str,
                       log: Callable[[str], None]) -> Calibration:
    base = {**_cal_base(values), "runtime": runtime}
    cal = Calibration(values["model"], values["precision"], int(base["prompt_tokens"]),
                      runtime=runtime)
    t0 = time.monotonic()
    timeout = values.get("timeout_s", 600.0)
    for t in counts:
        cal.points[t] = _cal_point(base, t, 1, topo, timeout, log)
    cal.wall_s = time.monotonic() - t0
    return cal


def _cal_point(base: dict[str, Any], threads: int, batch: int, topo: Any, timeout_s: float,
               log: Callable[[str], None]) -> CalPoint:
    """One calibration trial: a fresh pinned worker, a warm-up, one timed generation."""
    from coresweep.measurement.config import TrialConfig
    from coresweep.measurement.trial import prepare, run_trial

    what = f"{base['runtime']}, {threads} thread(s)" + (f", batch {batch}" if batch > 1 else "")
    cfg = TrialConfig(**{**base, "batch": batch}, threads=threads, placement="cores-first",
                      label=f"calibrate {what}")
    (prep,) = prepare([cfg], topo=topo)
    res = run_trial(prep, 0, timeout_s=timeout_s, sample_interval_s=None)
    if not res.ok or not res.trials:
        raise CoresweepError(f"calibration trial at {what} failed: {res.reason}")
    r = res.trials[0]
    log(f"calibrate: {what}: process {res.wall_s:.1f} s (load {r['load_s']:.1f} s, "
        f"TTFT {r['ttft_s'] * 1000:.0f} ms, decode {r['decode_tok_s']:.1f} tok/s"
        + (" per sequence)" if batch > 1 else ")"))
    return CalPoint(threads, res.wall_s, r["load_s"], r["ttft_s"], r["decode_tok_s"], batch)

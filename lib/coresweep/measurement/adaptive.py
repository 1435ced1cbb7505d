"""Adaptive sampling: measure each config in rounds, one fresh process per round, until its median
decode speed is known well enough, it is clearly slower than the best, or it reaches the cap.

The rules (docs/protocol.md, "Adaptive sweeps"), checked for every active config after each round:

1. **failed / skipped**: its process of this round did not complete (recorded in `failures`; a
   resume retries it, as in a fixed sweep);
2. **target**: at least MIN_PROCESSES processes and the half-width of the 95 % bootstrap CI of its
   median decode tok/s is at most ``target`` × the median;
3. **dropped**: it may be dropped and its racing interval lies entirely below the leader's. The
   racing interval is the CI, widened by ONE_PROCESS_ALLOWANCE on each side while a config has a
   single process (one process cannot show the spread between processes). The leader is the
   config with the highest median among those a recommendation may pick (explicit thread count,
   placement verified) of the same workload;
4. **cap**: it has `processes` processes.

Controls (``role["control"]``) and the configs a study names (e.g. the thread sweep's speedup
baseline) are never dropped. Every decision is a function of the stored trials of the rounds so far
(bootstrap seeded): a resumed sweep replays the rounds from its run folder and reaches the same
decisions, running only what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from coresweep.errors import CoresweepError

METRIC = "decode_tok_s"
MIN_PROCESSES = 2  # the CI of one process shows its repetitions' spread, not the processes'
ONE_PROCESS_ALLOWANCE = 0.30  # the largest spread between processes seen here (protocol.md)
STOPS = ("target", "cap", "dropped", "failed", "skipped", "fixed", "refined")


@dataclass(frozen=True)
class Adaptive:
    """Adaptive sampling settings; the cap is the sweep's ``processes``."""

    target: float = 0.03  # CI half-width of the median, as a fraction of the median

    def __post_init__(self) -> None:
        if isinstance(self.target, bool) or not isinstance(self.target, (int, float)) \
                or not 0 < self.target < 1:
            raise CoresweepError(f"adaptive target must be a fraction between 0 and 1 (e.g. 0.03 "
                                 f"for ±3 %), got {self.target!r}")


@dataclass(frozen=True)
class Stop:
    """Why a config stopped getting processes (one per config; run.json ``stops``)."""

    key: str
    stop: str  # one of STOPS
    reason: str
    processes: int  # processes with trials when it stopped
    rounds: int  # rounds it took part in
    median: float = float("nan")
    ci_half_pct: float = float("nan")  # CI half-width, % of the median

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def settings(values: Mapping[str, Any]) -> Adaptive | None:
    """The Adaptive settings of parameters (ParamsError naming ``adaptive_target`` when it is not
    a fraction), or None when ``adaptive`` is off."""
    from coresweep.errors import ParamsError

    target = values.get("adaptive_target", Adaptive.target)
    try:
        adaptive = Adaptive(target=target)
    except CoresweepError as exc:
        raise ParamsError(f"parameter 'adaptive_target': {exc}") from None
    return adaptive if values.get("adaptive") else None


def protected(configs: Iterable[Any], keep: Mapping[str, str] | None = None) -> dict[str, str]:
    """config key → why it is never dropped: every control, plus the study's own ``keep``."""
    out = {c.key(): f"control ({c.role['control']}): never dropped"
           for c in configs if c.role.get("control")}
    out.update(keep or {})
    return out


def fixed_stops(keys: Iterable[str], counts: Mapping[str, int], processes: int) -> dict[str, Stop]:
    """The stop records of a fixed (non-adaptive) sweep."""
    return {k: Stop(k, "fixed", f"fixed design: {counts.get(k, 0)} of {processes} processes",
                    counts.get(k, 0), processes) for k in keys}


def refined_stops(counts: Mapping[str, int], why: str) -> dict[str, Stop]:
    """The stop records of configs given more processes to settle a decision."""
    return {k: Stop(k, "refined", f"{why}: {n} processes", n, n) for k, n in counts.items()}


# -- statistics of the rounds so far -------------------------------------------------------------

@dataclass
class _State:
    config: Any
    n: int  # processes with trials
    median: float
    lo: float
    hi: float
    placement_ok: bool

    @property
    def half(self) -> float:
        return (self.hi - self.lo) / 2 / self.median if self.median > 0 else float("inf")

    def racing(self) -> tuple[float, float]:
        """The CI, widened while one process cannot show the spread between processes."""
        if self.n >= MIN_PROCESSES:
            return self.lo, self.hi
        return self.lo / (1 + ONE_PROCESS_ALLOWANCE), self.hi * (1 + ONE_PROCESS_ALLOWANCE)


def _states(configs: Sequence[Any], trials: Any, upto: int) -> dict[str, _State]:
    """Per config key with data: the statistics of its processes < ``upto``."""
    from coresweep.analysis.stats import bootstrap_median_ci

    out: dict[str, _State] = {}
    if trials is None or not len(trials):
        return out
    t = trials[(trials["process"] < upto) & trials["ok"].astype(bool)]
    by_key = dict(tuple(t.groupby("config_key")))
    for c in configs:
        g = by_key.get(c.key())
        if g is None or not len(g):
            continue
        groups = [pg[METRIC].to_numpy(float) for _, pg in g.groupby("process")]
        lo, hi = bootstrap_median_ci(groups)
        ok = bool(g["placement_ok"].astype(bool).all()) if "placement_ok" in g else True
        out[c.key()] = _State(c, len(groups), float(g[METRIC].median()), lo, hi, ok)
    return out


def _workload(cfg: Any) -> tuple:
    from coresweep.measurement.config import WORK_FIELDS  # raced only within the same work

    return tuple(getattr(cfg, f) for f in WORK_FIELDS)


def _leaders(states: Mapping[str, _State]) -> dict[tuple, _State]:
    """Per workload, the config a recommendation could pick with the highest median."""
    out: dict[tuple, _State] = {}
    for s in states.values():
        if s.config.threads is None or not s.placement_ok:
            continue
        w = _workload(s.config)
        if w not in out or s.median > out[w].median:
            out[w] = s
    return out


# -- the decision after a round -------------------------------------------------------------------

def decide(active: Sequence[Any], configs: Sequence[Any], trials: Any, rnd: int, *,
           target: float, cap: int, keep: Mapping[str, str],
           unfinished: Mapping[str, tuple[str, str]]) -> dict[str, Stop]:
    """The configs of ``active`` that stop after round ``rnd`` (0-based), with why.

    ``unfinished``: key → (status, reason) of an active config whose process of this round did
    not complete. ``configs``: every config of the sweep (the leader may have stopped already).
    """
    states = _states(configs, trials, rnd + 1)
    leaders = _leaders(states)
    out: dict[str, Stop] = {}
    for c in active:
        k = c.key()
        s = states.get(k)
        n, med = (s.n, s.median) if s else (0, float("nan"))
        half = 100 * s.half if s else float("nan")
        if k in unfinished:
            status, why = unfinished[k]
            stop = "skipped" if status == "skipped" else "failed"
            out[k] = Stop(k, stop, f"process {rnd} {status}: {why}", n, rnd + 1, med, half)
        elif s and n >= MIN_PROCESSES and s.half <= target:
            out[k] = Stop(k, "target", f"95 % CI of the median ±{half:.1f} % ≤ "
                          f"{100 * target:g} % after {n} processes", n, rnd + 1, med, half)
        elif s and k not in keep and (why := _below_leader(s, leaders.get(_workload(c)))):
            out[k] = Stop(k, "dropped", why, n, rnd + 1, med, half)
        elif rnd + 1 >= cap:
            out[k] = Stop(k, "cap", f"{n} of {cap} processes (the cap), CI ±{half:.1f} %", n,
                          rnd + 1, med, half)
    return out


def _below_leader(s: _State, leader: _State | None) -> str | None:
    """Why ``s`` is dropped as worse than ``leader``, or None when it is not clearly worse."""
    if leader is None or leader is s:
        return None
    lo, hi = s.racing()
    llo, lhi = leader.racing()
    if hi >= llo:
        return None
    wide = " (widened ±30 % while one process)" if s.n < MIN_PROCESSES or leader.n < \
        MIN_PROCESSES else ""
    return (f"dropped as worse after {s.n} process(es): decode {lo:.3g}–{hi:.3g} tok/s lies below "
            f"the best, {leader.config.display}, {llo:.3g}–{lhi:.3g} tok/s{wide}")


def round_order(n_active: int, rnd: int, order: str, seed: int) -> list[int]:
    """Positions of the active configs in round ``rnd``: as listed (interleave) or a seeded
    permutation per round (shuffle)."""
    import numpy as np

    if order == "shuffle":
        return [int(i) for i in np.random.default_rng([seed, rnd]).permutation(n_active)]
    return list(range(n_active))

"""The parent-side timeline of one worker process: per-CPU utilisation (psutil, machine-wide) and
the worker's threads (/proc) every interval, tagged with the worker's phase."""

from __future__ import annotations

import threading
import time
from typing import Any

from coresweep.machine.speed import cpu_mhz
from coresweep.measurement.procfs import read_threads

# Reading a CPU's clock (/proc/cpuinfo, or scaling_cur_freq on some drivers) can interrupt every
# CPU it reports on, the worker's included: once a second is enough for a median.
CLOCK_INTERVAL_S = 1.0


class Sampler(threading.Thread):
    """Parent-side timeline: per-CPU utilisation (psutil) and, when ``pid`` is given, that
    process's threads (/proc)."""

    def __init__(self, pid: int | None, interval: float, t0: float, phase_ref: list[str],
                 gate: Any = None, clock_cpus: list[int] | None = None):
        super().__init__(daemon=True, name="coresweep-sampler")
        self.pid, self.interval, self.t0, self.phase_ref = pid, interval, t0, phase_ref
        self.gate = gate  # optional callable: sample only while gate() is true
        self.clock_cpus = clock_cpus  # CPUs whose clock is read in the timed phase
        self.mhz: list[float] = []
        self._clock_t = float("-inf")  # when the clock was last read
        self.stop_event = threading.Event()
        self.samples: list[dict] = []
        self.thread_samples: list[dict] = []
        self.seen: dict[int, set[int]] = {}  # timed phase only
        self._prev: dict[int, float] = {}
        self._prev_t: float | None = None
        self.n = 0  # samples taken
        self.cpu_s = 0.0  # the sampler thread's own CPU time

    def run(self) -> None:
        import psutil

        c0 = time.thread_time()
        psutil.cpu_percent(percpu=True, interval=None)  # prime
        while not self.stop_event.wait(self.interval):
            if self.gate is not None and not self.gate():
                self._prev_t = None  # no utilisation across a gap
                continue
            self.n += 1
            t = time.monotonic()
            phase = self.phase_ref[0]
            self.samples += [{"t_s": t - self.t0, "cpu": cpu, "util_pct": float(u), "phase": phase}
                             for cpu, u in enumerate(psutil.cpu_percent(percpu=True))]
            if self.pid is not None:
                self._sample_threads(t, phase)
            if self.clock_cpus and phase == "timed" and t - self._clock_t >= CLOCK_INTERVAL_S:
                self._clock_t = t
                mhz = cpu_mhz(self.clock_cpus)
                if mhz is not None:
                    self.mhz.append(mhz)
            self._prev_t = t
            self.cpu_s = time.thread_time() - c0

    def _sample_threads(self, t: float, phase: str) -> None:
        dt = None if self._prev_t is None else t - self._prev_t
        for th in read_threads(self.pid, status=False):
            cpu_s, prev = th["cpu_s"], self._prev.get(th["tid"])
            self._prev[th["tid"]] = cpu_s
            self.thread_samples.append({
                "t_s": t - self.t0, "tid": th["tid"], "name": th["name"],
                "last_cpu": th["last_cpu"], "cpu_s": cpu_s, "phase": phase,
                "util_pct": 100.0 * (cpu_s - prev) / dt if (dt and prev is not None)
                else float("nan")})
            if phase == "timed":
                self.seen.setdefault(th["tid"], set()).add(th["last_cpu"])

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout=2)

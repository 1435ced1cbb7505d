"""CPU throttling of the process's cgroup: the CFS bandwidth counters of ``cpu.stat``.

A container with a CPU quota (``cpu.max`` on cgroup v2, ``cpu.cfs_quota_us`` on v1) is stopped
for the rest of a period once it has used its quota: a trial that was throttled measured the
quota, not the CPUs. The counters are summed over the process's cgroup and its ancestors (a
limit anywhere on the path throttles it), read before and after a trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coresweep.machine.topology import _cgroup_paths, _Reader, _walk_up


@dataclass(frozen=True)
class Throttling:
    """Cumulative counters: periods in which the cgroup was throttled, and for how long."""

    periods: int = 0
    throttled_s: float = 0.0
    readable: bool = False  # False: no cpu.stat with throttling counters was found

    def since(self, before: Throttling) -> Throttling:
        return Throttling(self.periods - before.periods, self.throttled_s - before.throttled_s,
                          self.readable and before.readable)


def _stat_dirs(r: _Reader, proc: str) -> list[Path]:
    paths = _cgroup_paths(r.text(f"{proc}/cgroup"))
    cg = r.path("sys/fs/cgroup")
    if (cg / "cgroup.controllers").exists() and "" in paths:
        return _walk_up(cg, paths[""])
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (cg / name).is_dir():
            return _walk_up(cg / name, paths.get("cpu", "/"))
    return []


def read_throttling(root: str | Path = "/", pid: int | None = None) -> Throttling:
    """The throttling counters of ``pid``'s (default: this process's) cgroup path."""
    r = _Reader(root)
    proc = "proc/self" if pid is None else f"proc/{pid}"
    periods, seconds, found = 0, 0.0, False
    for d in _stat_dirs(r, proc):
        stat = {}
        for line in (r.text(d / "cpu.stat") or "").splitlines():
            k, _, v = line.partition(" ")
            if v.strip().isdigit():
                stat[k] = int(v)
        if "nr_throttled" not in stat:
            continue
        found = True
        periods += stat["nr_throttled"]
        # v2 counts microseconds, v1 nanoseconds
        seconds += stat.get("throttled_usec", 0) / 1e6 + stat.get("throttled_time", 0) / 1e9
    return Throttling(periods, seconds, found)

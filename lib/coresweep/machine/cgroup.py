"""Everything coresweep reads of the process's cgroup: its CPU limits (the effective cpuset and the
tightest CFS quota on the path up, v2 or v1) and its throttling counters.

A container with a CPU quota (``cpu.max`` on cgroup v2, ``cpu.cfs_quota_us`` on v1) is stopped
for the rest of a period once it has used its quota: a trial that was throttled measured the
quota, not the CPUs. The counters are summed over the process's cgroup and its ancestors (a
limit anywhere on the path throttles it), read before and after a trial.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from coresweep.machine.sysfs import SysfsReader

__all__ = ["CgroupLimits", "Throttling", "cgroup_paths", "read_cgroup_limits", "read_throttling",
           "walk_up"]


@dataclass
class CgroupLimits:
    """CPU limits of the process's cgroup (v2 or v1)."""

    version: int | None = None  # 2, 1 or None (no cgroup cpu controller found)
    path: str | None = None  # the cgroup path from /proc/<pid>/cgroup
    cpuset: tuple[int, ...] | None = None  # effective cpuset, None when unrestricted/unknown
    quota_us: int | None = None  # None = no quota ("max" / -1)
    period_us: int | None = None
    budget: float = 0.0  # CPUs this process can keep busy: min(quota/period, allowed CPUs)

    @property
    def quota_cpus(self) -> float | None:
        if self.quota_us is None or not self.period_us:
            return None
        return self.quota_us / self.period_us


def cgroup_paths(text: str | None) -> dict[str, str]:
    """controller ('' for v2) -> path, from /proc/<pid>/cgroup."""
    out: dict[str, str] = {}
    if not text:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if ctrls == "":
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


def walk_up(base: Path, rel: str) -> list[Path]:
    """The cgroup directories from the process's own up to the mount root.

    The path in /proc/self/cgroup is relative to the hierarchy's root, which is the mount point
    on a host but not in a container without a cgroup namespace (there the container's cgroup is
    mounted as the root): when ``base/rel`` does not exist, fall back to the mount root alone.
    """
    rel = rel.strip("/")
    if ".." in rel.split("/"):  # a path outside our cgroup namespace: only the root is visible
        rel = ""
    leaf = base / rel if rel else base
    if not leaf.is_dir():
        return [base] if base.is_dir() else []
    out = []
    p = leaf
    while True:
        out.append(p)
        if p == base:
            break
        p = p.parent
    return out


def read_cgroup_limits(r: SysfsReader, proc: str) -> CgroupLimits:
    paths = cgroup_paths(r.text(f"{proc}/cgroup"))
    cg = r.path("sys/fs/cgroup")
    if (cg / "cgroup.controllers").exists() and "" in paths:  # unified v2
        return _read_cgroup_v2(r, cg, paths[""])
    return _read_cgroup_v1(r, cg, paths)


def _read_cgroup_v2(r: SysfsReader, cg: Path, rel: str) -> CgroupLimits:
    """cpuset and quota of a unified (v2) hierarchy: the nearest non-empty effective cpuset and
    the tightest cpu.max on the path from the process's cgroup up to the root."""
    lim = CgroupLimits(version=2, path=rel)
    dirs = walk_up(cg, rel)
    lim.cpuset = _first_cpuset(r, dirs, ("cpuset.cpus.effective",))
    best = _tightest_quota(_v2_quotas(r, dirs))
    if best:
        lim.quota_us, lim.period_us = best
    elif dirs:
        lim.period_us = 100000
    return lim


def _read_cgroup_v1(r: SysfsReader, cg: Path, paths: dict[str, str]) -> CgroupLimits:
    """cpuset and CFS quota of v1 hierarchies, which are mounted separately (cpu may be
    co-mounted with cpuacct)."""
    lim = CgroupLimits()
    cpuset_dir = next((cg / n for n in ("cpuset",) if (cg / n).is_dir()), None)
    cpu_dir = next(
        (cg / n for n in ("cpu", "cpu,cpuacct", "cpuacct,cpu") if (cg / n).is_dir()), None
    )
    if cpuset_dir is None and cpu_dir is None:
        return lim
    lim.version = 1
    lim.path = paths.get("cpuset", paths.get("cpu"))
    if cpuset_dir is not None:
        dirs = walk_up(cpuset_dir, paths.get("cpuset", "/"))
        lim.cpuset = _first_cpuset(r, dirs, ("cpuset.effective_cpus", "cpuset.cpus"))
    if cpu_dir is not None:
        best = _tightest_quota(_v1_quotas(r, walk_up(cpu_dir, paths.get("cpu", "/"))))
        if best:
            lim.quota_us, lim.period_us = best
        else:
            lim.period_us = r.int(cpu_dir / "cpu.cfs_period_us")
    return lim


def _first_cpuset(r: SysfsReader, dirs: list[Path], files: tuple[str, ...]) -> tuple[int, ...] | None:
    """The nearest non-empty cpuset on the path up; in each dir the first of ``files`` present."""
    for d in dirs:
        cs = next((cl for cl in (r.cpulist(d / f) for f in files) if cl is not None), None)
        if cs:
            return tuple(cs)
    return None


def _v2_quotas(r: SysfsReader, dirs: list[Path]) -> Iterator[tuple[int, int]]:
    """(quota, period) of every v2 ``cpu.max`` on the path that sets a quota ("max" sets none)."""
    for d in dirs:
        t = r.text(d / "cpu.max")
        if not t:
            continue
        q, _, per = t.partition(" ")
        if q == "max":
            continue
        try:
            qi, pi = int(q), int(per or 100000)
        except ValueError:
            continue
        if pi > 0:
            yield qi, pi


def _v1_quotas(r: SysfsReader, dirs: list[Path]) -> Iterator[tuple[int, int]]:
    """(quota, period) of every v1 CFS limit on the path (a quota of -1 sets none)."""
    for d in dirs:
        q = r.int(d / "cpu.cfs_quota_us")
        per = r.int(d / "cpu.cfs_period_us")
        if q is None or q < 0 or not per:
            continue
        yield q, per


def _tightest_quota(quotas: Iterable[tuple[int, int]]) -> tuple[int, int] | None:
    """The (quota, period) that allows the fewest CPUs: nested limits all apply, the least wins."""
    best: tuple[int, int] | None = None
    for q, per in quotas:
        if best is None or q / per < best[0] / best[1]:
            best = (q, per)
    return best


@dataclass(frozen=True)
class Throttling:
    """Cumulative counters: periods in which the cgroup was throttled, and for how long."""

    periods: int = 0
    throttled_s: float = 0.0
    readable: bool = False  # False: no cpu.stat with throttling counters was found

    def since(self, before: Throttling) -> Throttling:
        return Throttling(self.periods - before.periods, self.throttled_s - before.throttled_s,
                          self.readable and before.readable)


def _stat_dirs(r: SysfsReader, proc: str) -> list[Path]:
    paths = cgroup_paths(r.text(f"{proc}/cgroup"))
    cg = r.path("sys/fs/cgroup")
    if (cg / "cgroup.controllers").exists() and "" in paths:
        return walk_up(cg, paths[""])
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (cg / name).is_dir():
            return walk_up(cg / name, paths.get("cpu", "/"))
    return []


def read_throttling(root: str | Path = "/", pid: int | None = None) -> Throttling:
    """The throttling counters of ``pid``'s (default: this process's) cgroup path."""
    r = SysfsReader(root)
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

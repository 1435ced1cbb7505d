"""Capturing a machine: the files read_topology reads, copied into a tree laid out like "/" that
tests and ``coresweep topology --sysfs`` read back (tests/fixtures/)."""

from __future__ import annotations

from pathlib import Path

from coresweep.machine.cgroup import cgroup_paths, walk_up
from coresweep.machine.sysfs import SysfsReader

__all__ = ["capture_tree"]


_CAPTURE_FILES = (
    "proc/cpuinfo",
    "proc/meminfo",
    "proc/loadavg",
    "proc/self/status",
    "proc/self/cgroup",
    "proc/sys/kernel/osrelease",
    "proc/sys/kernel/numa_balancing",
    "proc/sys/kernel/hostname",
    "sys/kernel/mm/transparent_hugepage/enabled",
    "sys/kernel/mm/transparent_hugepage/defrag",
    "sys/kernel/mm/transparent_hugepage/khugepaged/defrag",
    "sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/offline",
    "sys/devices/system/cpu/possible",
    "sys/devices/system/cpu/present",
    "sys/devices/system/cpu/smt/control",
    "sys/devices/system/cpu/smt/active",
    "sys/devices/cpu_core/cpus",
    "sys/devices/cpu_atom/cpus",
)
_CAPTURE_GLOBS = (
    "sys/devices/system/cpu/cpu[0-9]*/online",
    "sys/devices/system/cpu/cpu[0-9]*/topology/*",
    "sys/devices/system/cpu/cpu[0-9]*/cache/index[0-9]*/*",
    "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor",
    "sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq",
    "sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_min_freq",
    "sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_max_freq",
    "sys/devices/system/node/node[0-9]*/cpulist",
    "sys/devices/system/node/node[0-9]*/meminfo",
    "sys/devices/system/node/online",
    "sys/devices/system/node/possible",
    "sys/devices/system/node/has_memory",
    "sys/devices/system/node/has_cpu",
)


def capture_tree(dest: str | Path, root: str | Path = "/") -> list[str]:
    """Copy the files read_topology reads from ``root`` into ``dest`` (a captured tree).

    cgroup files are copied for the process's own cgroup path (v2: cgroup.controllers,
    cpuset.cpus.effective, cpu.max; v1: cpuset.effective_cpus, cpuset.cpus, cpu.cfs_*).
    ``/proc/self`` is the capturing process. Returns the relative paths written.
    """
    src = Path(root)
    dst = Path(dest)
    written: list[str] = []

    def copy(rel: str) -> None:
        s = src / rel
        if not s.is_file():
            return
        try:
            data = s.read_bytes()
        except OSError:
            return
        if rel.endswith("/uevent"):
            return
        d = dst / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_bytes(data)
        written.append(rel)

    for rel in _CAPTURE_FILES:
        copy(rel)
    for pat in _CAPTURE_GLOBS:
        for p in sorted(src.glob(pat)):
            copy(str(p.relative_to(src)))
    for rel in _cgroup_capture_files(src):
        copy(rel)
    return written


def _cgroup_capture_files(src: Path) -> list[str]:
    """The cgroup files _read_cgroup reads for the capturing process: its own cgroup dir and
    every parent up to the mount root (v2 unified, else the v1 cpuset and cpu hierarchies)."""
    paths = cgroup_paths(SysfsReader(src).text("proc/self/cgroup"))
    cg = "sys/fs/cgroup"
    if (src / cg / "cgroup.controllers").exists():
        hierarchies = [("", cg, ("cgroup.controllers", "cpuset.cpus.effective", "cpu.max"))]
        out = [f"{cg}/cgroup.controllers"]
    else:
        hierarchies = [
            ("cpuset", f"{cg}/cpuset", ("cpuset.effective_cpus", "cpuset.cpus")),
            ("cpu", f"{cg}/cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us")),
        ]
        out = []
    for ctrl, mount, files in hierarchies:
        base = src / mount
        if not base.is_dir():
            continue
        for d in walk_up(base, paths.get(ctrl, "/")):
            rel = str(d.relative_to(src))
            out.extend(f"{rel}/{f}" for f in files)
    return out

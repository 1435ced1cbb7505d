"""The machine fingerprint stored with every result (topology, software versions, the knobs in
the environment, THP, NUMA balancing, load, speed state) and the machine's short name."""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path

from coresweep.machine.hugepages import thp_state
from coresweep.machine.sysfs import SysfsReader, is_live
from coresweep.machine.topology import Topology, read_topology
from coresweep.provenance import collect_versions, now_iso

__all__ = ["fingerprint", "machine_name"]

# the threading/allocator knobs in effect: they change results
_ENV_PREFIXES = ("OMP_", "KMP_", "MKL_", "ORT_", "ONNXRUNTIME_", "OPENBLAS_", "GOMP_", "CORESWEEP_")
_ENV_NAMES = ("LD_PRELOAD", "PYTHONHASHSEED", "GLIBC_TUNABLES")


def _thp(r: SysfsReader) -> str | None:
    t = r.text("sys/kernel/mm/transparent_hugepage/enabled")
    if not t:
        return None
    m = re.search(r"\[(\w+)\]", t)
    return m.group(1) if m else t


def _loadavg(r: SysfsReader) -> list[float] | None:
    """The 1, 5 and 15 minute load averages, None when unreadable."""
    load = r.text("proc/loadavg")
    if not load:
        return None
    try:
        return [float(x) for x in load.split()[:3]]
    except ValueError:
        return None


def fingerprint(topo: Topology | None = None) -> dict:
    """Everything that describes the machine and software a result was measured on (JSON-able).

    Does not import onnxruntime: versions come from the installed distributions' metadata.
    """
    if topo is None:
        topo = read_topology("/")
    r = SysfsReader(topo.root)
    live = is_live(Path(topo.root))
    loadavg = _loadavg(r)
    nb = r.int("proc/sys/kernel/numa_balancing")
    hostname = r.text("proc/sys/kernel/hostname")
    if hostname is None and live:
        hostname = socket.gethostname()
    # the threading/allocator knobs in effect (OMP_*, KMP_*, ORT_*, ...): they change results
    env = {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES
    }
    versions = collect_versions()
    thp = thp_state(topo.root)  # enabled, defrag (huge pages the workers' memory can get)
    from coresweep.machine.speed import speed_state  # boost, EPP, hypervisor, isolation, memory

    return {
        "machine": machine_name(topo),
        "hostname": hostname,
        "timestamp": now_iso(),
        "topology": topo.to_dict(),
        "versions": versions,
        "env": env,
        "transparent_hugepage": _thp(r),
        "transparent_hugepage_defrag": thp["defrag"],
        "transparent_hugepage_khugepaged_defrag": thp["khugepaged_defrag"],
        "numa_balancing": nb,
        "loadavg": loadavg,
        "os": platform.platform() if live else None,
        "pid": os.getpid() if live else None,
        "speed": speed_state(topo.root, live),
    }


_NOISE = re.compile(
    r"\((r|tm|c)\)|\bcpu\b|\bprocessor\b|\d+-core|with radeon.*$|@.*$|\bgen\b\s*\d*",
    re.I,
)


def machine_name(topo: Topology) -> str:
    """Short slug for report folders, e.g. ``amd-epyc-2c`` or ``intel-core-i7-11800h-8c16t``."""
    model = topo.model_name or "unknown-cpu"
    s = _NOISE.sub(" ", model)
    s = re.sub(r"11th|12th|13th|14th", " ", s, flags=re.I)
    s = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "cpu"
    parts = s.split("-")
    s = "-".join(parts[:5])
    cores = topo.physical_core_count()
    threads = topo.logical_count()
    size = f"{cores}c" if threads == cores else f"{cores}c{threads}t"
    if len(topo.packages) > 1:
        size = f"{len(topo.packages)}s-{size}"
    return f"{s}-{size}"

"""The machine the tests run on, as coresweep sees it (affinity ∩ cgroup cpuset ∩ online).

Tests take CPU ids, counts and sizes from here, or from a captured tree under fixtures/, never
from the machine they were written on: CPU 0 may not be usable (a container's cpuset 2-5), there
may be one CPU, and the last-level cache may be 260 MiB.
"""

from __future__ import annotations

import functools

import pytest
from coresweep.machine.cpulist import format_cpulist
from coresweep.machine.topology import Topology, read_topology


@functools.cache
def topology() -> Topology:
    return read_topology()


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(topology().allowed)


def first_cpu() -> int:
    return usable_cpus()[0]


def cpulist(n: int) -> str:
    """The first ``n`` usable CPUs as a kernel cpulist ("0-1", "2,5"); skips the calling test
    when the machine has fewer."""
    cpus = usable_cpus()
    if len(cpus) < n:
        pytest.skip(f"needs {n} usable CPUs; this machine has {len(cpus)}")
    return format_cpulist(cpus[:n])


def needs_physical_cores(n: int) -> None:
    """Skip the calling test unless ``n`` usable physical cores exist (the 'physical' strategy
    places one thread per core)."""
    have = topology().physical_core_count(allowed=True)
    if have < n:
        pytest.skip(f"needs {n} usable physical cores; this machine has {have}")


def memory_node() -> int:
    """A NUMA node with memory (node ids need not start at 0)."""
    return topology().nodes_with_memory()[0]

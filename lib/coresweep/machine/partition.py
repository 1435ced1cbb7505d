"""Partitions: the usable CPUs split into W disjoint slices, one per worker process of a server.

Whole physical cores go to a slice (a core's SMT siblings stay in the slice of the core), taken in
physical order — NUMA node, package, P before E cores, last-level-cache domain — so that a slice
stays inside one LLC domain and one NUMA node whenever it fits. Inside a slice the CPUs are
ordered cores first, then their siblings: T threads use one CPU per core before any sibling.
When there are more workers than cores, the siblings of a core go to different workers (said in
the slice's description). Cores left over (C mod W) stay unused and are named.
"""

from __future__ import annotations

from dataclasses import dataclass

from coresweep.errors import PlacementError
from coresweep.machine.cpulist import format_cpulist
from coresweep.machine.placement import cores_then_siblings, usable_cores
from coresweep.machine.topology import Topology


@dataclass(frozen=True)
class Slice:
    index: int
    cpus: tuple[int, ...]  # ordered: one CPU per core, then siblings
    cores: int
    llc_domains: tuple[int, ...]
    nodes: tuple[int, ...]
    description: str

    @property
    def cpulist(self) -> str:
        return format_cpulist(self.cpus)

    def to_dict(self) -> dict:
        return {"index": self.index, "cpus": list(self.cpus), "cpulist": self.cpulist,
                "cores": self.cores, "llc_domains": list(self.llc_domains),
                "nodes": list(self.nodes), "description": self.description}


def _where(topo: Topology, cpus: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    llc = tuple(sorted({d for c in cpus if (d := topo.llc_of(c)) is not None}))
    nodes = tuple(sorted({topo.cpus[c].node for c in cpus
                          if c in topo.cpus and topo.cpus[c].node is not None}))
    return llc, nodes


def _groups_by_core(topo: Topology, workers: int) -> list[list[tuple[int, ...]]]:
    """Each worker's list of per-core CPU tuples."""
    cores = [mine for _, mine in usable_cores(topo)]
    if workers <= len(cores):
        per = len(cores) // workers
        return [cores[i * per:(i + 1) * per] for i in range(workers)]
    # more workers than cores: hand out single CPUs, first sibling of every core first
    cpus = cores_then_siblings(list(usable_cores(topo)))
    if workers > len(cpus):
        raise PlacementError(f"{workers} workers need at least {workers} usable CPUs; this "
                             f"machine has {len(cpus)} ({format_cpulist(cpus)}); valid worker "
                             f"counts: 1..{len(cpus)}")
    return [[(c,)] for c in cpus[:workers]]


def partition(topo: Topology, workers: int, threads: int | None = None, *,
              oversubscribe: bool = False) -> list[Slice]:
    """W disjoint slices of the usable CPUs (see the module docstring). ``threads`` (per worker)
    is checked against each slice's CPUs unless ``oversubscribe``; None = ORT's default count."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise PlacementError(f"workers must be a positive integer, got {workers!r}")
    groups = _groups_by_core(topo, workers)
    n_cores = len(usable_cores(topo))
    shared = workers > n_cores
    slices = []
    for i, group in enumerate(groups):
        cpus = tuple(g[d] for d in range(max(map(len, group))) for g in group if len(g) > d)
        llc, nodes = _where(topo, cpus)
        what = (f"worker {i}: CPUs {format_cpulist(cpus)} ({len(group)} core"
                f"{'s' * (len(group) != 1)}" + (", sharing its core with a sibling worker"
                                                 if shared else "")
                + f"; LLC {','.join(map(str, llc)) or '?'}; node {','.join(map(str, nodes)) or '?'})")
        slices.append(Slice(i, cpus, len(group), llc, nodes, what))
    if threads is not None and not oversubscribe:
        small = [s for s in slices if threads > len(s.cpus)]
        if small:
            raise PlacementError(
                f"{threads} threads per worker do not fit a slice of {len(small[0].cpus)} CPU(s) "
                f"({workers} workers on {len(topo.allowed)} usable CPUs); valid threads per "
                f"worker: 1..{min(len(s.cpus) for s in slices)}")
    return slices


def unused_cpus(topo: Topology, slices: list[Slice]) -> list[int]:
    """Usable CPUs no slice got (the C mod W cores left over)."""
    used = {c for s in slices for c in s.cpus}
    return [c for c in topo.allowed if c not in used]

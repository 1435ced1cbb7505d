"""Placement plans: a thread count and a strategy → the ordered CPUs a worker is pinned to.

Only ``topo.allowed`` CPUs (affinity ∩ cgroup cpuset ∩ online) are ever used. A plan's ``cpus``
is the process affinity mask, in the order threads are given CPUs: intra-op thread k (k = 0 is the
calling thread) goes to ``cpus[k % len(cpus)]``.

Strategies (see docs/topology.md):

- ``physical`` one CPU per physical core, filling one NUMA node / package before the next
               (P-cores before E-cores): "SMT off by placement". Capacity: the usable cores.
- ``smt``      all usable siblings of a core before the next core: "SMT on". Capacity: all CPUs.
- ``compact``  one LLC domain at a time: its cores first, then their siblings, then the next domain.
- ``scatter``  round-robin over NUMA nodes and LLC domains, one core at a time, siblings last.
- ``numa:N``   only CPUs of NUMA node N (cores first, then siblings).
- ``llc:N``    only CPUs of last-level-cache domain N (numbered as in ``coresweep topology``).
- ``pcore`` / ``ecore``  hybrid parts only: P-cores (cores first, then siblings) / E-cores.
- ``all``      every usable CPU in id order.
- ``none``     no pinning: cpus = every usable CPU, threads are left to the OS (control runs).
- an explicit CPU list in kernel syntax (``0-3,8-11``): exactly those CPUs, in that order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coresweep.errors import PlacementError
from coresweep.machine.cpulist import format_cpulist, parse_cpulist
from coresweep.machine.topology import Core, Topology

__all__ = [
    "STRATEGIES",
    "Plan",
    "make_plan",
    "plan_for_smt",
    "strategy_order",
]

STRATEGIES: tuple[str, ...] = (
    "physical",
    "cores-first",
    "smt",
    "compact",
    "scatter",
    "numa:N",
    "llc:N",
    "pcore",
    "ecore",
    "all",
    "none",
)

_VALID = (
    "valid strategies: "
    + ", ".join(STRATEGIES)
    + ", or an explicit CPU list in kernel syntax such as '0-3,8-11'"
)


@dataclass(frozen=True)
class Plan:
    strategy: str
    threads: int
    cpus: tuple[int, ...]  # ordered; the process affinity mask
    description: str
    oversubscribed: bool = False
    pinned: bool = True  # False for "none": set no per-thread affinities

    @property
    def cpulist(self) -> str:
        """The plan's CPUs in kernel syntax (sorted: the mask, not the order)."""
        return format_cpulist(self.cpus)

    def thread_cpus(self) -> list[int]:
        """The CPU of each intra-op thread k = 0..threads-1 (k = 0 is the calling thread)."""
        return [self.cpus[k % len(self.cpus)] for k in range(self.threads)]

    def ort_affinity_string(self) -> str:
        """Value for the ORT session option ``session.intra_op_thread_affinities``.

        threads−1 ';'-separated entries of **1-based** CPU ids: pool thread k (k = 1..threads−1)
        is pinned to ``cpus[k % len(cpus)]``; the calling thread (k = 0) is never pinned by ORT
        (pin it with the process affinity mask). Returns "" when there is nothing to set
        (threads == 1, or a "none" plan): callers then leave the option unset.
        """
        if not self.pinned or self.threads <= 1:
            return ""
        return ";".join(str(self.cpus[k % len(self.cpus)] + 1) for k in range(1, self.threads))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cpus"] = list(self.cpus)
        d["cpulist"] = self.cpulist
        d["ort_affinity"] = self.ort_affinity_string()
        return d


# --------------------------------------------------------------------------------------------
# orderings
# --------------------------------------------------------------------------------------------
_KIND_RANK = {"P": 0, None: 1, "E": 2}


def usable_cores(topo: Topology, cpus: set[int] | None = None) -> list[tuple[Core, tuple[int, ...]]]:
    """Cores with at least one usable CPU, in physical order, each with its usable CPUs."""
    allowed = set(topo.allowed) if cpus is None else set(cpus) & set(topo.allowed)
    out = []
    for core in topo.cores:
        mine = tuple(c for c in core.cpus if c in allowed)
        if mine:
            out.append((core, mine))

    def key(item):
        core, mine = item
        node = core.node if core.node is not None else -1
        llc = topo.llc_of(mine[0])
        return (node, core.package, _KIND_RANK.get(core.kind, 1), llc if llc is not None else -1,
                mine[0])

    out.sort(key=key)
    return out


def cores_then_siblings(cores: list[tuple[Core, tuple[int, ...]]]) -> list[int]:
    """First sibling of every core, then the second of every core, and so on."""
    out: list[int] = []
    depth = max((len(m) for _, m in cores), default=0)
    for i in range(depth):
        out.extend(m[i] for _, m in cores if len(m) > i)
    return out


def _physical(topo: Topology) -> list[int]:
    return [m[0] for _, m in usable_cores(topo)]


def _smt(topo: Topology) -> list[int]:
    return [c for _, m in usable_cores(topo) for c in m]


def _llc_groups(topo: Topology) -> list[list[tuple[Core, tuple[int, ...]]]]:
    """Usable cores grouped by LLC domain, groups in physical order."""
    groups: dict[int, list] = {}
    for core, mine in usable_cores(topo):
        groups.setdefault(topo.llc_of(mine[0]) or 0, []).append((core, mine))
    return list(groups.values())


def _compact(topo: Topology) -> list[int]:
    return [c for grp in _llc_groups(topo) for c in cores_then_siblings(grp)]


def _scatter(topo: Topology) -> list[int]:
    # domains ordered so that consecutive domains alternate between NUMA nodes
    by_node: dict[int, list[list]] = {}
    for grp in _llc_groups(topo):
        node = grp[0][0].node if grp[0][0].node is not None else -1
        by_node.setdefault(node, []).append(grp)
    domains: list[list] = []
    lists = list(by_node.values())
    for i in range(max((len(v) for v in lists), default=0)):
        domains.extend(v[i] for v in lists if len(v) > i)
    out: list[int] = []
    depth = max((len(m) for d in domains for _, m in d), default=0)
    for s in range(depth):  # sibling rank: first siblings of every core before any second one
        queues = [[m[s] for _, m in d if len(m) > s] for d in domains]
        for j in range(max((len(q) for q in queues), default=0)):
            out.extend(q[j] for q in queues if len(q) > j)
    return out


def _subset(topo: Topology, cpus: set[int]) -> list[int]:
    return cores_then_siblings(usable_cores(topo, cpus))


def _cores_first(topo: Topology) -> list[int]:
    return cores_then_siblings(usable_cores(topo))


def _all_allowed(topo: Topology) -> list[int]:
    return list(topo.allowed)


# The strategies that take no argument: name -> (ordering, the rule in a few words).
_ORDERINGS = {
    "physical": (_physical, "one CPU per physical core, node by node"),
    "cores-first": (_cores_first,
                    "one CPU per physical core first (as physical), then their SMT siblings"),
    "smt": (_smt, "all SMT siblings of a core before the next core"),
    "compact": (_compact, "one LLC domain at a time, its cores before their siblings"),
    "scatter": (_scatter, "round-robin over NUMA nodes and LLC domains, siblings last"),
    "all": (_all_allowed, "every usable CPU"),
    "none": (_all_allowed, "no pinning: the OS schedules on every usable CPU"),
}


def strategy_order(topo: Topology, strategy: str) -> tuple[list[int], str]:
    """Every CPU a strategy may use, in placement order, and a short description of the rule."""
    s = strategy.strip().lower()
    if s in _ORDERINGS:
        ordering, rule = _ORDERINGS[s]
        return ordering(topo), rule
    if s.startswith("numa:"):
        return _numa_order(topo, strategy)
    if s.startswith("llc:"):
        return _llc_order(topo, strategy)
    if s in ("pcore", "ecore"):
        return _hybrid_order(topo, strategy, "P" if s == "pcore" else "E")
    raise PlacementError(f"unknown placement strategy {strategy!r}; {_VALID}")


def _numa_order(topo: Topology, strategy: str) -> tuple[list[int], str]:
    """``numa:N``: the usable CPUs of node N, cores before siblings."""
    nid = _index(strategy, "numa")
    if nid not in topo.numa_nodes:
        raise PlacementError(
            f"NUMA node {nid} does not exist (strategy {strategy!r}); nodes: "
            + ", ".join(f"numa:{n}" for n in topo.numa_nodes)
        )
    order = _subset(topo, set(topo.numa_nodes[nid].cpus))
    if not order:
        usable = [f"numa:{n.id}" for n in topo.numa_nodes.values() if set(n.cpus) & set(topo.allowed)]
        raise PlacementError(
            f"NUMA node {nid} has no CPU usable by this process (its CPUs: "
            f"{format_cpulist(topo.numa_nodes[nid].cpus) or 'none'}; usable: "
            f"{format_cpulist(topo.allowed)}); nodes with usable CPUs: {', '.join(usable)}"
        )
    return order, f"NUMA node {nid} only, cores before siblings"


def _llc_order(topo: Topology, strategy: str) -> tuple[list[int], str]:
    """``llc:N``: the usable CPUs of LLC domain N (numbered as topo.llc_domain_map())."""
    idx = _index(strategy, "llc")
    doms = topo.llc_domain_map()
    if idx not in doms:
        raise PlacementError(
            f"LLC domain {idx} does not exist or has no usable CPU (strategy {strategy!r}); "
            "usable domains: "
            + (", ".join(f"llc:{i} ({format_cpulist(v)})" for i, v in doms.items()) or "none")
        )
    return _subset(topo, set(doms[idx])), f"LLC domain {idx} only, cores before siblings"


def _hybrid_order(topo: Topology, strategy: str, kind: str) -> tuple[list[int], str]:
    """``pcore`` / ``ecore``: the usable CPUs of one core kind on a hybrid part."""
    if not topo.hybrid:
        raise PlacementError(
            f"strategy {strategy!r} needs a hybrid CPU (P-cores and E-cores), but this machine "
            f"is not hybrid (no /sys/devices/cpu_core and cpu_atom); use one of: physical, smt, "
            "compact, scatter, all, none, numa:N, llc:N or a CPU list"
        )
    order = _subset(topo, set(topo.hybrid[kind]))
    if not order:
        raise PlacementError(
            f"no {kind}-core is usable by this process ({kind}-cores: "
            f"{format_cpulist(topo.hybrid[kind])}; usable CPUs: {format_cpulist(topo.allowed)})"
        )
    return order, f"{kind}-cores only, cores before siblings"


def _index(strategy: str, prefix: str) -> int:
    tail = strategy.split(":", 1)[1].strip()
    if not tail.isdigit():
        raise PlacementError(
            f"bad strategy {strategy!r}: {prefix}:N needs a non-negative integer N, e.g. {prefix}:0"
        )
    return int(tail)


def _looks_like_cpulist(s: str) -> bool:
    return bool(s) and s[0].isdigit()


def _explicit(topo: Topology, strategy: str) -> list[int]:
    try:
        cpus = parse_cpulist(strategy)
    except ValueError as exc:
        raise PlacementError(f"{exc}; {_VALID}") from None
    if not cpus:
        raise PlacementError(f"CPU list {strategy!r} names no CPU; {_VALID}")
    exists = set(topo.present) | set(topo.online) | set(topo.offline)
    missing = [c for c in cpus if c not in exists]
    offline = [c for c in cpus if c in exists and c not in topo.cpus]
    outside = [c for c in cpus if c in topo.cpus and c not in set(topo.allowed)]
    problems = []
    if missing:
        problems.append(f"do not exist: {format_cpulist(missing)}")
    if offline:
        problems.append(f"offline: {format_cpulist(offline)}")
    if outside:
        problems.append(
            f"outside this process's allowed set (affinity ∩ cgroup cpuset): {format_cpulist(outside)}"
        )
    if problems:
        raise PlacementError(
            f"CPU list {strategy!r} cannot be used: CPUs "
            + "; ".join(problems)
            + f". Usable CPUs: {format_cpulist(topo.allowed) or 'none'}"
        )
    return cpus


def _where(topo: Topology, cpus: tuple[int, ...]) -> str:
    cores = {tuple(topo.cpus[c].siblings) for c in cpus}
    nodes = sorted({topo.cpus[c].node for c in cpus if topo.cpus[c].node is not None})
    llcs = sorted({x for x in (topo.llc_of(c) for c in cpus) if x is not None})
    parts = [f"{len(cores)} core{'s' if len(cores) != 1 else ''}"]
    if len(topo.numa_nodes) > 1:
        parts.append("node " + ",".join(map(str, nodes)))
    if len(topo.llc_domain_map()) > 1:
        parts.append("llc " + ",".join(map(str, llcs)))
    kinds = sorted({topo.cpus[c].kind for c in cpus if topo.cpus[c].kind})
    if kinds:
        parts.append("+".join(f"{k}-cores" for k in kinds))
    return ", ".join(parts)


def make_plan(topo: Topology, threads: int, strategy: str, *, oversubscribe: bool = False) -> Plan:
    """Place ``threads`` threads with ``strategy`` (a name from STRATEGIES or a CPU list).

    Raises PlacementError before any work for: threads < 1, unknown strategy, a NUMA node / LLC
    domain that does not exist, pcore/ecore on a non-hybrid machine, CPUs that do not exist, are
    offline or not allowed, and more threads than the plan's CPUs unless ``oversubscribe``.
    With ``oversubscribe`` and more threads than CPUs, ``cpus`` is every CPU the strategy can use
    and threads wrap around it.
    """
    strategy = _checked_request(topo, threads, strategy)
    if _looks_like_cpulist(strategy):
        return _cpulist_plan(topo, threads, strategy, oversubscribe)
    order, rule = strategy_order(topo, strategy)
    name = strategy.lower()
    if not order:
        raise PlacementError(f"strategy {strategy!r} finds no usable CPU; usable: {format_cpulist(topo.allowed)}")
    over = threads > len(order)
    if over and not oversubscribe:
        what = "physical cores" if name == "physical" else "CPUs"
        raise PlacementError(
            f"{threads} threads with strategy {strategy!r} would oversubscribe: it can use "
            f"{len(order)} {what} ({format_cpulist(order)}); use at most {len(order)} threads, "
            "another strategy, or pass oversubscribe=True"
        )
    if name == "none":
        cpus = tuple(order)
        desc = f"none: no pinning, {threads} thread(s) free on usable CPUs {format_cpulist(cpus)}"
        if over:
            desc += f", oversubscribed {threads}/{len(cpus)}"
        return Plan(name, threads, cpus, desc, over, False)
    cpus = tuple(order) if over else tuple(order[:threads])
    desc = f"{name}: {threads} thread(s) on CPUs {','.join(map(str, cpus))} ({_where(topo, cpus)}); {rule}"
    if over:
        desc += f"; oversubscribed {threads} threads on {len(cpus)} CPUs"
    return Plan(name, threads, cpus, desc, over, True)


def _checked_request(topo: Topology, threads: int, strategy: str) -> str:
    """The stripped strategy, after checking the thread count, the strategy text and that this
    process may use some CPU at all."""
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise PlacementError(f"threads must be a positive integer, got {threads!r}")
    if threads < 1:
        raise PlacementError(f"threads must be a positive integer (1 or more), got {threads}")
    if not isinstance(strategy, str) or not strategy.strip():
        raise PlacementError(f"placement strategy {strategy!r} is empty; {_VALID}")
    if not topo.allowed:
        raise PlacementError("this process may use no CPU (affinity ∩ cgroup cpuset ∩ online is empty)")
    return strategy.strip()


def _cpulist_plan(topo: Topology, threads: int, strategy: str, oversubscribe: bool) -> Plan:
    """A plan on exactly the CPUs of an explicit CPU list, in the list's order."""
    order = _explicit(topo, strategy)
    over = threads > len(order)
    if over and not oversubscribe:
        raise PlacementError(
            f"{threads} threads on CPU list {strategy!r} ({len(order)} CPUs) would oversubscribe; "
            f"use at most {len(order)} threads or pass oversubscribe=True"
        )
    cpus = tuple(order)
    desc = f"CPU list {format_cpulist(cpus)}: {threads} thread(s) on {len(cpus)} CPU(s) ({_where(topo, cpus)})"
    if over:
        desc += f", oversubscribed {threads}/{len(cpus)}"
    return Plan(strategy, threads, cpus, desc, over, True)


def plan_for_smt(topo: Topology, cores: int, smt: bool) -> Plan:
    """Plans for a paired SMT comparison on the same ``cores`` physical cores.

    Picks the first ``cores`` usable cores in ``physical`` order that have two or more usable
    siblings. ``smt=True``: every usable sibling of those cores (threads = their CPU count);
    ``smt=False``: one CPU per core (threads = cores). Both plans cover the same cores, so the
    difference between them is SMT alone. PlacementError when fewer such cores exist.
    """
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise PlacementError(f"cores must be a positive integer, got {cores!r}")
    pairs = [(core, mine) for core, mine in usable_cores(topo) if len(mine) > 1]
    if not pairs:
        raise PlacementError(f"an SMT comparison needs a core with 2+ usable siblings: {topo.smt_note()}")
    if cores > len(pairs):
        raise PlacementError(
            f"{cores} cores requested for an SMT comparison, but only {len(pairs)} usable cores "
            f"have 2+ usable siblings; use cores between 1 and {len(pairs)}"
        )
    chosen = pairs[:cores]
    if smt:
        cpus = tuple(c for _, m in chosen for c in m)
        desc = f"smt on: {len(cpus)} threads on all siblings of {cores} core(s): {','.join(map(str, cpus))}"
        return Plan("smt", len(cpus), cpus, desc, False, True)
    cpus = tuple(m[0] for _, m in chosen)
    desc = f"smt off: {cores} thread(s), one per core on {cores} core(s): {','.join(map(str, cpus))}"
    return Plan("physical", cores, cpus, desc, False, True)

"""The machine model described for people: the header lines and the per-CPU table that
``coresweep topology`` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coresweep.machine.cpulist import format_cpulist

if TYPE_CHECKING:
    from coresweep.machine.cgroup import CgroupLimits
    from coresweep.machine.topology import Topology

__all__ = ["describe"]


def _human(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, div in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= div:
            return f"{round(n / div, 2):g} {unit}"
    return f"{n} B"


def _cache_line(topo: Topology, level: int, ctype: str) -> str | None:
    doms = [d for d in topo.caches if d.level == level and d.type == ctype]
    if not doms:
        return None
    core_of = {c: i for i, k in enumerate(topo.cores) for c in k.cpus}
    groups: dict[tuple[int | None, int, int], int] = {}
    for d in doms:
        ncores = len({core_of.get(c) for c in d.cpus})
        key = (d.size_bytes, ncores, len(d.cpus))
        groups[key] = groups.get(key, 0) + 1
    name = doms[0].name
    parts = []
    for (size, ncores, ncpu), n in groups.items():
        who = "per core" if ncores == 1 else f"shared by {ncores} cores"
        parts.append(f"{n} x {_human(size)} ({who}, {ncpu} CPU{'s' if ncpu > 1 else ''} each)")
    return f"{name}: " + "; ".join(parts)


def describe(topo: Topology) -> str:
    """What ``coresweep topology`` prints: header lines, then one row per CPU like ``lscpu -e``."""
    L = [
        f"Model:      {topo.model_name or '?'}  ({topo.arch or '?'}, kernel {topo.kernel or '?'})",
        _layout_line(topo),
        f"CPUs:       online {format_cpulist(topo.online) or '-'}; offline "
        f"{format_cpulist(topo.offline) or 'none'}; usable by this process "
        f"{format_cpulist(topo.allowed) or 'NONE'} ({len(topo.allowed)} CPUs on "
        f"{topo.physical_core_count(allowed=True)} cores)",
        _smt_line(topo),
        _hybrid_line(topo),
        _numa_line(topo),
    ]
    for level, ctype in ((1, "Data"), (1, "Instruction"), (2, "Unified"), (3, "Unified")):
        line = _cache_line(topo, level, ctype)
        if line:
            L.append(f"Cache:      {line}")
    llc = topo.llc_domain_map()
    if llc:
        L.append(_llc_line(topo, llc))
    L.append(_cgroup_line(topo.cgroup))
    isa = [k for k in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx", "asimddp", "i8mm", "sve")
           if topo.isa.get(k)]
    L.append(f"ISA:        {' '.join(isa) or 'none of avx2/avx512f/avx512_vnni/avx_vnni/amx'}")
    L.append(_freq_line(topo))
    L.append(f"Memory:     {_human(topo.mem_total_bytes)}")
    L.extend(f"Note:       {n}" for n in topo.notes)
    L.append("")
    L.extend(_cpu_table(topo))
    L.append("")
    L.append(
        "CORE is core_id (unique only within a package); SIBLINGS are the online CPUs of the same "
        "physical core; L2/L3 number the cache domains (same number = shared cache)."
    )
    return "\n".join(L)


def _layout_line(topo: Topology) -> str:
    """packages x cores x threads when every core has the same thread count, else the mix."""
    pk = len(topo.packages)
    cores = topo.physical_core_count()
    tpc = topo.threads_per_core()
    per_pkg = cores // max(pk, 1)
    tcounts: dict[int, int] = {}
    for k in topo.cores:
        tcounts[len(k.cpus)] = tcounts.get(len(k.cpus), 0) + 1
    if len(tcounts) == 1 and cores % max(pk, 1) == 0:
        return (
            f"Layout:     {pk} package{'s' if pk > 1 else ''} x {per_pkg} cores x {tpc} "
            f"thread{'s' if tpc > 1 else ''} = {cores} cores, {topo.logical_count()} online CPUs"
        )
    mix = ", ".join(
        f"{n} with {t} thread{'s' if t > 1 else ''}" for t, n in sorted(tcounts.items(), reverse=True)
    )
    return (
        f"Layout:     {pk} package{'s' if pk > 1 else ''}, {cores} cores ({mix}) = "
        f"{topo.logical_count()} online CPUs"
    )


def _smt_line(topo: Topology) -> str:
    smt = f"control={topo.smt_control or 'absent'}"
    if topo.smt_active is not None:
        smt += f", active={'yes' if topo.smt_active else 'no'}"
    return f"SMT:        {smt}; {topo.smt_note()}"


def _hybrid_line(topo: Topology) -> str:
    if not topo.hybrid:
        return "Hybrid:     no"
    return (
        f"Hybrid:     P-cores CPUs {format_cpulist(topo.hybrid['P'])}, "
        f"E-cores CPUs {format_cpulist(topo.hybrid['E'])}"
    )


def _numa_line(topo: Topology) -> str:
    nodes = [
        f"node{n.id} CPUs {format_cpulist(n.cpus) or '-'} mem {_human(n.mem_total_bytes)}"
        for n in topo.numa_nodes.values()
    ]
    return (
        f"NUMA:       {len(topo.numa_nodes)} node(s), {len(topo.nodes_with_memory())} with memory: "
        + "; ".join(nodes)
    )


def _llc_line(topo: Topology, llc: dict[int, tuple[int, ...]]) -> str:
    """The usable LLC domains by number (the first 8 and the last), flagging per-core "LLCs"."""
    shown = list(llc.items())
    text = "; ".join(f"llc:{i} = {format_cpulist(v)}" for i, v in shown[:8])
    if len(shown) > 8:
        text += f"; ... llc:{shown[-1][0]} = {format_cpulist(shown[-1][1])}"
    per_core = all(len({tuple(topo.cpus[c].siblings) for c in v}) == 1 for v in llc.values())
    if per_core and len(llc) > 1:
        text += " (one per core: no cache shared between cores is reported)"
    return f"LLC:        {len(llc)} domain(s) usable (level L{topo.llc_level or '?'}): {text}"


def _cgroup_line(cg: CgroupLimits) -> str:
    if cg.version is None:
        return f"cgroup:     none found; budget {cg.budget:g} CPUs"
    q = "no quota" if cg.quota_us is None else f"quota {cg.quota_us}/{cg.period_us} us"
    cs = format_cpulist(cg.cpuset) if cg.cpuset is not None else "unrestricted"
    return f"cgroup:     v{cg.version} {cg.path or ''}: cpuset {cs}; {q}; budget {cg.budget:g} CPUs"


def _freq_line(topo: Topology) -> str:
    fr = topo.freq
    if not fr.get("max_mhz"):
        return "Frequency:  not exposed (no cpufreq)"
    return (
        f"Frequency:  max {fr['max_mhz']:g} MHz, min {fr.get('min_mhz') or 0:g} MHz, "
        f"governor {topo.governor or '?'}"
    )


def _cpu_table(topo: Topology) -> list[str]:
    """One right-aligned row per present CPU, like ``lscpu -e`` (offline CPUs: "no", dashes)."""
    hdr = ("CPU", "ONLINE", "ALLOWED", "PKG", "DIE", "CORE", "SIBLINGS", "L2", "L3", "NODE", "KIND")
    rows = [hdr]
    allowed = set(topo.allowed)

    def dash(v: int | None) -> str:
        return "-" if v is None else str(v)

    for c in sorted(set(topo.online) | set(topo.offline)):
        ci = topo.cpus.get(c)
        if ci is None:
            rows.append((str(c), "no", "no", "-", "-", "-", "-", "-", "-", "-", "-"))
            continue
        rows.append((
            str(c), "yes", "yes" if c in allowed else "no", str(ci.package), str(ci.die),
            str(ci.core_id), format_cpulist(ci.siblings), dash(ci.l2), dash(ci.l3), dash(ci.node),
            ci.kind or "-",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
    return ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]

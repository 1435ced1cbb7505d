"""What the machine is: logical CPUs, cores, SMT siblings, caches, NUMA, hybrid parts, cgroup limits.

Everything is read (never written) from the files Linux exposes:

- ``/sys/devices/system/cpu/{online,offline,present,possible}``, ``smt/{control,active}``,
  ``cpuN/topology/*``, ``cpuN/cache/index*/*``, ``cpuN/cpufreq/*``
- ``/sys/devices/system/node/nodeN/{cpulist,meminfo}``
- ``/sys/devices/cpu_core/cpus`` and ``/sys/devices/cpu_atom/cpus`` (Intel hybrid parts)
- ``/proc/cpuinfo``, ``/proc/meminfo``, ``/proc/<pid>/status`` (Cpus_allowed_list),
  ``/proc/<pid>/cgroup``, ``/proc/sys/kernel/{osrelease,hostname,numa_balancing}``, ``/proc/loadavg``
- cgroup v2 ``cpuset.cpus.effective`` + ``cpu.max``, or v1 ``cpuset.effective_cpus`` +
  ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``
- ``/sys/kernel/mm/transparent_hugepage/enabled``

``root`` is injectable: ``read_topology("tests/fixtures/laptop-i7-11800h")`` reads a captured tree
laid out like ``/`` (``<root>/sys/...``, ``<root>/proc/...``).
"""

from __future__ import annotations

import os
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coresweep.errors import CoresweepError
from coresweep.machine.cgroup import CgroupLimits, read_cgroup_limits
from coresweep.machine.cpulist import format_cpulist, parse_cpulist
from coresweep.machine.sysfs import SysfsReader, is_live, meminfo_total, parse_cpuinfo, size_bytes

__all__ = [
    "CacheDomain",
    "CgroupLimits",
    "Core",
    "CpuInfo",
    "NumaNode",
    "Topology",
    "ISA_FLAGS",
    "format_cpulist",
    "parse_cpulist",
    "read_topology",
]

# /proc/cpuinfo flags that matter for INT4/INT8 matmul kernels (x86 names, then arm64 names).
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


# --------------------------------------------------------------------------------------------
# data model
# --------------------------------------------------------------------------------------------
@dataclass
class CacheDomain:
    """One cache instance and the CPUs that share it (cache/indexN/shared_cpu_list)."""

    level: int
    type: str  # "Data" | "Instruction" | "Unified"
    cpus: tuple[int, ...]  # online CPUs sharing it
    size_bytes: int | None
    index: int = 0  # number of this domain among the domains of the same level and type

    @property
    def name(self) -> str:
        suffix = {"Data": "d", "Instruction": "i"}.get(self.type, "")
        return f"L{self.level}{suffix}"


@dataclass
class CpuInfo:
    """One online logical CPU."""

    cpu: int
    package: int
    die: int
    core_id: int  # unique only within a package (and die)
    cluster: int | None  # cluster_id (x86: the L2 cluster); None when absent or 65535/-1
    node: int | None
    siblings: tuple[int, ...]  # online SMT siblings, itself included (core_cpus_list)
    l2: int | None  # index of its L2 domain (CacheDomain.index), None when not reported
    l3: int | None  # index of its L3 domain
    kind: str | None  # "P" / "E" on hybrid parts, else None
    max_freq_khz: int | None = None
    governor: str | None = None


@dataclass
class Core:
    """One physical core: the online CPUs that share it (SMT siblings)."""

    package: int
    die: int
    core_id: int
    cpus: tuple[int, ...]
    kind: str | None = None
    node: int | None = None


@dataclass
class NumaNode:
    id: int
    cpus: tuple[int, ...]  # online CPUs of the node
    mem_total_bytes: int | None


@dataclass
class Topology:
    online: tuple[int, ...]
    offline: tuple[int, ...]
    allowed: tuple[int, ...]  # affinity ∩ cgroup cpuset ∩ online
    cpus: dict[int, CpuInfo]
    cores: list[Core]
    numa_nodes: dict[int, NumaNode]
    caches: list[CacheDomain]
    hybrid: dict[str, tuple[int, ...]] | None
    smt_control: str | None
    smt_active: bool | None
    cgroup: CgroupLimits
    model_name: str | None
    isa: dict[str, bool]
    freq: dict[str, float | None]
    governor: str | None
    mem_total_bytes: int | None
    kernel: str | None
    present: tuple[int, ...] = ()
    affinity: tuple[int, ...] = ()  # the process's affinity mask (before cgroup/online)
    arch: str | None = None
    root: str = "/"
    notes: list[str] = field(default_factory=list)

    # ---- counts ------------------------------------------------------------------------
    def logical_count(self, *, allowed: bool = False) -> int:
        """Online logical CPUs (or only the allowed ones)."""
        return len(self.allowed) if allowed else len(self.online)

    def physical_core_count(self, *, allowed: bool = False) -> int:
        """Physical cores with an online CPU (or with at least one allowed CPU)."""
        if not allowed:
            return len(self.cores)
        a = set(self.allowed)
        return sum(1 for c in self.cores if a.intersection(c.cpus))

    @property
    def packages(self) -> tuple[int, ...]:
        return tuple(sorted({c.package for c in self.cpus.values()}))

    def threads_per_core(self) -> int:
        return max((len(c.cpus) for c in self.cores), default=1)

    # ---- SMT -----------------------------------------------------------------------------
    def siblings(self, cpu: int) -> tuple[int, ...]:
        """Online SMT siblings of ``cpu`` (itself included)."""
        if cpu not in self.cpus:
            raise CoresweepError(
                f"CPU {cpu} is not an online CPU of this machine; online: {format_cpulist(self.online)}"
            )
        return self.cpus[cpu].siblings

    def smt_hardware(self) -> bool:
        """True when some physical core has two or more online logical CPUs (whoever may use them)."""
        return any(len(c.cpus) > 1 for c in self.cores)

    def smt_available(self) -> bool:
        """True when this process may use two or more siblings of some core (an SMT test is possible)."""
        a = set(self.allowed)
        return any(len(a.intersection(c.cpus)) > 1 for c in self.cores)

    def has_smt(self) -> bool:
        """SMT usable here: some core has 2+ siblings in ``allowed`` (same as smt_available()).

        A container pinned to one CPU of each core has SMT hardware (``smt_hardware()``) but no
        SMT it can measure, so this is False there: "SMT on" runs are skipped.
        """
        return self.smt_available()

    def smt_note(self) -> str:
        """One line saying why SMT comparisons are or are not possible here."""
        if self.smt_available():
            n = sum(1 for c in self.cores if len(set(self.allowed).intersection(c.cpus)) > 1)
            return f"SMT available: {n} cores with 2+ usable siblings"
        why = []
        if self.smt_control is not None:
            why.append(f"smt/control={self.smt_control}")
        if self.smt_active is not None:
            why.append(f"smt/active={int(self.smt_active)}")
        if self.smt_hardware():
            why.append("siblings exist but not two of one core in the allowed CPUs")
        else:
            why.append("one logical CPU per core")
        return "no SMT here (" + ", ".join(why) + ")"

    # ---- caches --------------------------------------------------------------------------
    def cache_domains(self, level: int, type: str | None = None) -> list[CacheDomain]:
        """Cache domains of one level (Data+Unified for L1 unless ``type`` says otherwise)."""
        out = [c for c in self.caches if c.level == level]
        if type is not None:
            out = [c for c in out if c.type == type]
        elif level == 1:
            out = [c for c in out if c.type != "Instruction"]
        return out

    @property
    def llc_level(self) -> int | None:
        levels = [c.level for c in self.caches if c.type != "Instruction"]
        return max(levels) if levels else None

    def llc_domain_map(self) -> dict[int, tuple[int, ...]]:
        """Stable LLC domain number (as printed by ``coresweep topology``) → allowed CPUs in it.

        Domains with no allowed CPU are left out. Falls back to one domain per package when the
        machine reports no caches.
        """
        a = set(self.allowed)
        lvl = self.llc_level
        out: dict[int, tuple[int, ...]] = {}
        if lvl is None:
            for i, pkg in enumerate(self.packages):
                cpus = tuple(c for c in self.online if self.cpus[c].package == pkg and c in a)
                if cpus:
                    out[i] = cpus
            return out
        for dom in self.cache_domains(lvl):
            cpus = tuple(c for c in dom.cpus if c in a)
            if cpus:
                out[dom.index] = cpus
        return out

    def llc_domains(self) -> list[tuple[int, ...]]:
        """Last-level cache domains as tuples of allowed, online CPUs (empty ones left out)."""
        return list(self.llc_domain_map().values())

    def llc_of(self, cpu: int) -> int | None:
        lvl = self.llc_level
        if lvl is None:
            return self.packages.index(self.cpus[cpu].package)
        for dom in self.cache_domains(lvl):
            if cpu in dom.cpus:
                return dom.index
        return None

    # ---- NUMA ------------------------------------------------------------------------------
    def nodes_with_memory(self) -> list[int]:
        return [n.id for n in self.numa_nodes.values() if n.mem_total_bytes]

    # ---- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The whole model as JSON-able data (dict keys are strings)."""
        return {
            "root": self.root,
            "model_name": self.model_name,
            "arch": self.arch,
            "kernel": self.kernel,
            "online": format_cpulist(self.online),
            "offline": format_cpulist(self.offline),
            "present": format_cpulist(self.present),
            "affinity": format_cpulist(self.affinity),
            "allowed": format_cpulist(self.allowed),
            "counts": {
                "packages": len(self.packages),
                "physical_cores": self.physical_core_count(),
                "logical_cpus": self.logical_count(),
                "threads_per_core": self.threads_per_core(),
                "allowed_cpus": self.logical_count(allowed=True),
                "allowed_physical_cores": self.physical_core_count(allowed=True),
                "numa_nodes": len(self.numa_nodes),
            },
            "smt": {
                "control": self.smt_control,
                "active": self.smt_active,
                "hardware": self.smt_hardware(),
                "available": self.smt_available(),
                "note": self.smt_note(),
            },
            "cpus": {str(k): asdict(v) for k, v in sorted(self.cpus.items())},
            "cores": [asdict(c) for c in self.cores],
            "numa_nodes": {str(k): asdict(v) for k, v in sorted(self.numa_nodes.items())},
            "caches": [dict(asdict(c), name=c.name) for c in self.caches],
            "llc_domains": {str(k): list(v) for k, v in self.llc_domain_map().items()},
            "hybrid": {k: list(v) for k, v in self.hybrid.items()} if self.hybrid else None,
            "cgroup": dict(asdict(self.cgroup), quota_cpus=self.cgroup.quota_cpus),
            "isa": dict(self.isa),
            "freq": dict(self.freq),
            "governor": self.governor,
            "mem_total_bytes": self.mem_total_bytes,
            "notes": list(self.notes),
        }




# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def _status_allowed(r: SysfsReader, proc: str) -> list[int] | None:
    t = r.text(f"{proc}/status")
    if not t:
        return None
    m = re.search(r"^Cpus_allowed_list:\s*(\S*)\s*$", t, re.M)
    if not m:
        return None
    try:
        return sorted(parse_cpulist(m.group(1)))
    except CoresweepError:
        return None


def read_topology(root: str | Path = "/", *, pid: int | None = None) -> Topology:
    """Read the machine model from ``root`` ("/" = this machine, else a captured tree).

    Live: ``allowed`` = os.sched_getaffinity(pid or 0) ∩ cgroup cpuset ∩ online.
    Captured tree: the affinity comes from ``<root>/proc/<pid|self>/status`` Cpus_allowed_list
    when present, else all online CPUs.
    """
    rootp = Path(root)
    r = SysfsReader(rootp)
    live = is_live(rootp)
    cpu_dir = r.path("sys/devices/system/cpu")
    if not cpu_dir.is_dir():
        raise CoresweepError(
            f"{cpu_dir} does not exist: {str(root)!r} is not a Linux root or captured sysfs tree "
            "(expected <root>/sys/devices/system/cpu)"
        )
    notes: list[str] = []  # filled in reading order: per-CPU gaps, NUMA, usable CPUs
    proc = _proc_dir(r, live, pid)
    online, offline, present = _read_cpu_sets(r, cpu_dir)
    per_cpu, cache_of, caches = _read_per_cpu(r, cpu_dir, online, notes)
    numa, mem_total = _read_numa(r, online, notes)
    hybrid = _read_hybrid(r)
    freqs = {c: _read_cpufreq(r, cpu_dir, c) for c in online}
    cpus = _cpu_infos(online, per_cpu, cache_of, caches, numa, hybrid, freqs)
    freq, governor = _freq_summary(list(freqs.values()))
    smt_control, smt_active = _read_smt(r)
    cgroup = read_cgroup_limits(r, proc)
    affinity = _read_affinity(r, live, pid, proc, online)
    allowed = _allowed_cpus(affinity, online, cgroup)
    if not allowed:
        notes.append("no usable CPU: affinity ∩ cgroup cpuset ∩ online is empty")
    qc = cgroup.quota_cpus
    cgroup.budget = float(min(qc, len(allowed))) if qc is not None else float(len(allowed))
    model, isa, kernel, arch = _read_platform(r, live)
    return Topology(
        online=tuple(online), offline=tuple(offline), allowed=allowed, cpus=cpus,
        cores=_group_cores(online, cpus), numa_nodes=numa, caches=caches, hybrid=hybrid,
        smt_control=smt_control, smt_active=smt_active, cgroup=cgroup, model_name=model, isa=isa,
        freq=freq, governor=governor, mem_total_bytes=mem_total, kernel=kernel,
        present=tuple(present), affinity=tuple(affinity), arch=arch, root=str(root), notes=notes,
    )


def _proc_dir(r: SysfsReader, live: bool, pid: int | None) -> str:
    """``proc/<pid>``, or ``proc/self`` for no pid or a captured tree that lacks that pid."""
    proc = "proc/self" if pid is None else f"proc/{pid}"
    if not live and pid is not None and not r.path(proc).is_dir():
        proc = "proc/self"
    return proc


def _read_cpu_sets(r: SysfsReader, cpu_dir: Path) -> tuple[list[int], list[int], list[int]]:
    """Online, offline and present CPU ids (offline also holds every present CPU not online)."""
    online = r.cpulist("sys/devices/system/cpu/online")
    if online is None:
        # No 'online' file: every cpuN whose cpuN/online is not 0
        cpu_nodes = sorted(
            int(p.name[3:]) for p in cpu_dir.glob("cpu[0-9]*") if p.name[3:].isdigit()
        )
        online = [c for c in cpu_nodes if r.int(cpu_dir / f"cpu{c}" / "online") != 0]
    offline = r.cpulist("sys/devices/system/cpu/offline") or []
    present = r.cpulist("sys/devices/system/cpu/present") or sorted(set(online) | set(offline))
    offline = sorted(set(offline) | (set(present) - set(online)))
    return online, offline, present


def _read_per_cpu(
    r: SysfsReader, cpu_dir: Path, online: list[int], notes: list[str]
) -> tuple[dict[int, dict], dict[int, dict[tuple[int, str], tuple[int, ...]]], list[CacheDomain]]:
    """Each online CPU's topology fields and caches, and the machine's unique cache domains."""
    online_set = set(online)
    sizes: dict[tuple[int, str, tuple[int, ...]], int | None] = {}  # one entry per domain
    per_cpu: dict[int, dict] = {}
    cache_of: dict[int, dict[tuple[int, str], tuple[int, ...]]] = {}
    for c in online:
        per_cpu[c] = _read_cpu_topology(r, cpu_dir / f"cpu{c}" / "topology", c, online_set, notes)
        cache_of[c] = _read_cpu_caches(r, cpu_dir / f"cpu{c}", c, online_set, sizes)
    return per_cpu, cache_of, _number_cache_domains(sizes)


def _read_cpu_topology(r: SysfsReader, t: Path, c: int, online: set[int], notes: list[str]) -> dict:
    """package, die, core_id, cluster and online siblings of CPU ``c`` from its topology dir
    ``t``, with the kernel's "unknown" values replaced (missing package/die: 0; no core_id: the
    CPU is its own core)."""
    pkg = r.int(t / "physical_package_id")
    die = r.int(t / "die_id")
    core = r.int(t / "core_id")
    cluster = r.int(t / "cluster_id")
    sib = r.cpulist(t / "core_cpus_list") or r.cpulist(t / "thread_siblings_list") or [c]
    if pkg is None or pkg < 0:
        pkg = 0
    if die is None or die < 0:
        die = 0
    if core is None:
        core = c
        notes.append(f"cpu{c}: no topology/core_id; treated as its own core")
    if cluster is not None and cluster in (65535, -1, 4294967295):
        cluster = None
    sib = tuple(s for s in sib if s in online) or (c,)
    return dict(package=pkg, die=die, core_id=core, cluster=cluster, siblings=sib)


def _read_cpu_caches(
    r: SysfsReader, base: Path, c: int, online: set[int],
    sizes: dict[tuple[int, str, tuple[int, ...]], int | None],
) -> dict[tuple[int, str], tuple[int, ...]]:
    """(level, type) → online CPUs sharing that cache of CPU ``c``; records each domain's size
    in ``sizes`` the first time a CPU of it is read."""
    mine: dict[tuple[int, str], tuple[int, ...]] = {}
    for idx in sorted(base.glob("cache/index[0-9]*")):
        level = r.int(idx / "level")
        ctype = r.text(idx / "type") or "Unified"
        shared = r.cpulist(idx / "shared_cpu_list")
        if level is None or shared is None:
            continue
        shared_t = tuple(s for s in shared if s in online) or (c,)
        sizes.setdefault((level, ctype, shared_t), size_bytes(r.text(idx / "size")))
        mine[(level, ctype)] = shared_t
    return mine


_CACHE_TYPE_ORDER = {"Data": 0, "Instruction": 1, "Unified": 2}


def _number_cache_domains(
    sizes: dict[tuple[int, str, tuple[int, ...]], int | None],
) -> list[CacheDomain]:
    """The unique domains ordered by level, type and first CPU, numbered within level and type
    (these numbers are the L2/L3 columns of ``coresweep topology`` and ``llc:N``)."""
    caches: list[CacheDomain] = []
    counters: dict[tuple[int, str], int] = {}
    for level, ctype, shared in sorted(
        sizes, key=lambda k: (k[0], _CACHE_TYPE_ORDER.get(k[1], 3), k[2][0], k[2])
    ):
        n = counters.get((level, ctype), 0)
        counters[(level, ctype)] = n + 1
        caches.append(CacheDomain(level, ctype, shared, sizes[(level, ctype, shared)], n))
    return caches


def _read_numa(
    r: SysfsReader, online: list[int], notes: list[str]
) -> tuple[dict[int, NumaNode], int | None]:
    """NUMA nodes (one node with all memory when sysfs has none) and the total memory."""
    online_set = set(online)
    numa: dict[int, NumaNode] = {}
    node_dir = r.path("sys/devices/system/node")
    for nd in sorted(node_dir.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        nid = int(nd.name[4:])
        cl = [x for x in (r.cpulist(nd / "cpulist") or []) if x in online_set]
        numa[nid] = NumaNode(nid, tuple(cl), meminfo_total(r.text(nd / "meminfo")))
    mem_total = meminfo_total(r.text("proc/meminfo"))
    if not numa:
        numa[0] = NumaNode(0, tuple(online), mem_total)
        notes.append("no /sys/devices/system/node: one NUMA node assumed")
    return numa, mem_total


def _read_hybrid(r: SysfsReader) -> dict[str, tuple[int, ...]] | None:
    """{"P": CPUs, "E": CPUs} on Intel hybrid parts (cpu_core / cpu_atom PMUs), else None."""
    pc = r.cpulist("sys/devices/cpu_core/cpus")
    ec = r.cpulist("sys/devices/cpu_atom/cpus")
    if pc is not None and ec is not None and (pc or ec):
        return {"P": tuple(pc), "E": tuple(ec)}
    return None


_CpuFreq = tuple[int | None, int | None, int | None, str | None]  # max, min, scaling max, governor


def _read_cpufreq(r: SysfsReader, cpu_dir: Path, c: int) -> _CpuFreq:
    cf = cpu_dir / f"cpu{c}" / "cpufreq"
    return (
        r.int(cf / "cpuinfo_max_freq"),
        r.int(cf / "cpuinfo_min_freq"),
        r.int(cf / "scaling_max_freq"),
        r.text(cf / "scaling_governor"),
    )


def _freq_summary(freqs: list[_CpuFreq]) -> tuple[dict[str, float | None], str | None]:
    """Machine-wide MHz (max of the maxima, min of the minima; unreported values skipped) and
    the governors in use, comma-joined."""

    def mhz(values: list[int | None], pick) -> float | None:
        v = [x for x in values if x]
        return round(pick(v) / 1000.0, 1) if v else None

    freq = {
        "max_mhz": mhz([f[0] for f in freqs], max),
        "min_mhz": mhz([f[1] for f in freqs], min),
        "scaling_max_mhz": mhz([f[2] for f in freqs], max),
    }
    govs = {f[3] for f in freqs if f[3]}
    return freq, ",".join(sorted(govs)) if govs else None


def _cpu_infos(
    online: list[int], per_cpu: dict[int, dict],
    cache_of: dict[int, dict[tuple[int, str], tuple[int, ...]]], caches: list[CacheDomain],
    numa: dict[int, NumaNode], hybrid: dict[str, tuple[int, ...]] | None,
    freqs: dict[int, _CpuFreq],
) -> dict[int, CpuInfo]:
    """One CpuInfo per online CPU: its topology fields plus node, L2/L3 domain number and kind."""
    dom_index = {(d.level, d.type, d.cpus): d.index for d in caches}
    node_of = {c: n.id for n in numa.values() for c in n.cpus}
    kind_of = {c: kind for kind, ids in (hybrid or {}).items() for c in ids}

    def domain(c: int, level: int) -> int | None:
        shared = cache_of[c].get((level, "Unified"))
        return dom_index.get((level, "Unified", shared)) if shared else None

    return {
        c: CpuInfo(
            cpu=c, **per_cpu[c], node=node_of.get(c), l2=domain(c, 2), l3=domain(c, 3),
            kind=kind_of.get(c), max_freq_khz=freqs[c][0], governor=freqs[c][3],
        )
        for c in online
    }


def _group_cores(online: list[int], cpus: dict[int, CpuInfo]) -> list[Core]:
    """Physical cores (one per distinct sibling set), ordered by their first CPU."""
    cores: list[Core] = []
    seen: set[tuple[int, ...]] = set()
    for c in online:
        sib = cpus[c].siblings
        if sib in seen:
            continue
        seen.add(sib)
        ci = cpus[sib[0]] if sib[0] in cpus else cpus[c]
        cores.append(Core(ci.package, ci.die, ci.core_id, sib, ci.kind, ci.node))
    cores.sort(key=lambda k: k.cpus[0])
    return cores


def _read_smt(r: SysfsReader) -> tuple[str | None, bool | None]:
    """smt/control ("on", "off", "notsupported", ...) and smt/active, None where absent."""
    control = r.text("sys/devices/system/cpu/smt/control")
    act = r.int("sys/devices/system/cpu/smt/active")
    return control, None if act is None else bool(act)


def _read_affinity(
    r: SysfsReader, live: bool, pid: int | None, proc: str, online: list[int]
) -> list[int]:
    """The process's affinity mask: the kernel's (live), else the captured Cpus_allowed_list,
    else every online CPU."""
    if live:
        try:
            return sorted(os.sched_getaffinity(pid or 0))
        except OSError as exc:
            raise CoresweepError(f"cannot read the CPU affinity of pid {pid}: {exc}") from exc
    affinity = _status_allowed(r, proc)
    return list(online) if affinity is None else affinity


def _allowed_cpus(affinity: list[int], online: list[int], cgroup: CgroupLimits) -> tuple[int, ...]:
    """affinity ∩ online ∩ cgroup cpuset, sorted."""
    allowed = set(affinity) & set(online)
    if cgroup.cpuset is not None:
        allowed &= set(cgroup.cpuset)
    return tuple(sorted(allowed))


def _read_platform(r: SysfsReader, live: bool) -> tuple[str | None, dict[str, bool], str | None, str | None]:
    """CPU model name, ISA flags, kernel release and architecture. A captured tree has no
    platform module to ask, so its architecture is guessed from /proc/cpuinfo (x86 has a vendor)."""
    model, flags, vendor = parse_cpuinfo(r.text("proc/cpuinfo"))
    isa = {f: (f in flags) for f in ISA_FLAGS}
    isa["amx"] = bool(flags & {"amx_tile", "amx_int8", "amx_bf16"})
    if model is None and live:
        model = platform.processor() or None
    kernel = r.text("proc/sys/kernel/osrelease")
    if kernel is None and live:
        kernel = platform.release()
    arch = platform.machine() if live else ("x86_64" if vendor else ("aarch64" if flags else None))
    return model, isa, kernel, arch



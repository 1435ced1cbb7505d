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

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coresweep.errors import CoresweepError

__all__ = [
    "CacheDomain",
    "CgroupLimits",
    "Core",
    "CpuInfo",
    "NumaNode",
    "Topology",
    "ISA_FLAGS",
    "capture_tree",
    "fingerprint",
    "machine_name",
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

_ENV_PREFIXES = ("OMP_", "KMP_", "MKL_", "ORT_", "ONNXRUNTIME_", "OPENBLAS_", "GOMP_", "CORESWEEP_")
_ENV_NAMES = ("LD_PRELOAD", "PYTHONHASHSEED")


# --------------------------------------------------------------------------------------------
# CPU lists (the kernel's "0-3,8-11" syntax). placement re-exports these.
# --------------------------------------------------------------------------------------------
_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+)(?:/(\d+))?)?)?$")


def parse_cpulist(s: str) -> list[int]:
    """Parse a CPU list in the kernel's syntax into ids, keeping first-seen order, no duplicates.

    Accepts ``"0-3,8-11"``, single ids, the empty string (no CPUs), a stride ``"0-15:2"`` (as
    ``taskset -c`` does) and the kernel's group form ``"0-15:2/4"`` (use 2 of every 4).
    """
    if s is None:
        raise CoresweepError("CPU list is None; expected text like '0-3,8-11'")
    text = str(s).strip()
    out: list[int] = []
    seen: set[int] = set()
    if not text:
        return out
    for part in text.split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if not m:
            raise CoresweepError(
                f"bad CPU list {s!r}: cannot read {part!r}; expected ids and ranges like "
                "'0-3,8-11' (optionally a stride '0-15:2' or groups '0-15:2/4')"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise CoresweepError(f"bad CPU list {s!r}: range {part!r} runs backwards")
        if m.group(3) is not None and m.group(4) is not None:  # kernel: used/group
            used, group = int(m.group(3)), int(m.group(4))
            if used <= 0 or group <= 0 or used > group:
                raise CoresweepError(f"bad CPU list {s!r}: group {part!r} needs 0 < used <= size")
            ids = [c for c in range(lo, hi + 1) if (c - lo) % group < used]
        elif m.group(3) is not None:  # stride
            step = int(m.group(3))
            if step <= 0:
                raise CoresweepError(f"bad CPU list {s!r}: stride in {part!r} must be positive")
            ids = list(range(lo, hi + 1, step))
        else:
            ids = list(range(lo, hi + 1))
        for c in ids:
            if c not in seen:
                seen.add(c)
                out.append(c)
    return out


def format_cpulist(cpus: Iterable[int]) -> str:
    """Format CPU ids as the kernel does: sorted, ranges collapsed (``[0,1,2,3,8]`` → ``"0-3,8"``)."""
    ids = sorted(set(int(c) for c in cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)


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

    def summary(self) -> str:
        """A readable summary: header lines, then one row per CPU like ``lscpu -e``."""
        return _summary(self)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def text(self, p: str | Path) -> str | None:
        path = p if isinstance(p, Path) else self.path(p)
        try:
            return path.read_text(errors="replace").strip()
        except (OSError, ValueError):
            return None

    def int(self, p: str | Path) -> int | None:
        t = self.text(p)
        if t is None:
            return None
        try:
            return int(t.split()[0])
        except (ValueError, IndexError):
            return None

    def cpulist(self, p: str | Path) -> list[int] | None:
        t = self.text(p)
        if t is None:
            return None
        try:
            return sorted(parse_cpulist(t))
        except CoresweepError:
            return None


_SIZE = re.compile(r"^(\d+)\s*([KMG]?)", re.I)


def _size_bytes(t: str | None) -> int | None:
    if not t:
        return None
    m = _SIZE.match(t.strip())
    if not m:
        return None
    mult = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]
    return int(m.group(1)) * mult


def _meminfo_total(text: str | None) -> int | None:
    if not text:
        return None
    m = re.search(r"MemTotal:\s+(\d+)\s*kB", text)
    return int(m.group(1)) * 1024 if m else None


# arm64 /proc/cpuinfo names no model: (implementer, part) -> core name, as lscpu does
_ARM_PARTS = {
    (0x41, 0xD03): "Cortex-A53",
    (0x41, 0xD07): "Cortex-A57",
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD0B): "Cortex-A76",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0xC0, 0xAC3): "Ampere-1",
}


def _cpuinfo(text: str | None) -> tuple[str | None, set[str], str | None]:
    model = None
    flags: set[str] = set()
    vendor = None
    impl = part = None
    if not text:
        return model, flags, vendor
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip().lower()
        val = val.strip()
        if key == "model name" and model is None:
            model = val
        elif key in ("flags", "features") and not flags:
            flags = set(val.split())
        elif key == "vendor_id" and vendor is None:
            vendor = val
        elif key == "cpu implementer" and impl is None:
            impl = val
        elif key == "cpu part" and part is None:
            part = val
    if model is None and impl and part:
        try:
            key2 = (int(impl, 16), int(part, 16))
            model = _ARM_PARTS.get(key2, f"ARM implementer {impl} part {part}")
        except ValueError:
            pass
    return model, flags, vendor


def _cgroup_paths(text: str | None) -> dict[str, str]:
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


def _walk_up(base: Path, rel: str) -> list[Path]:
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


def _read_cgroup(r: _Reader, proc: str) -> CgroupLimits:
    paths = _cgroup_paths(r.text(f"{proc}/cgroup"))
    cg = r.path("sys/fs/cgroup")
    lim = CgroupLimits()
    if (cg / "cgroup.controllers").exists() and "" in paths:  # unified v2
        lim.version = 2
        lim.path = paths[""]
        dirs = _walk_up(cg, paths[""])
        for d in dirs:
            cs = r.cpulist(d / "cpuset.cpus.effective")
            if cs is not None and cs:
                lim.cpuset = tuple(cs)
                break
        best: tuple[int, int] | None = None
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
            if pi > 0 and (best is None or qi / pi < best[0] / best[1]):
                best = (qi, pi)
        if best:
            lim.quota_us, lim.period_us = best
        elif dirs:
            lim.period_us = 100000
        return lim
    # v1: separate hierarchies (cpu may be co-mounted with cpuacct)
    cpuset_dir = next((cg / n for n in ("cpuset",) if (cg / n).is_dir()), None)
    cpu_dir = next(
        (cg / n for n in ("cpu", "cpu,cpuacct", "cpuacct,cpu") if (cg / n).is_dir()), None
    )
    if cpuset_dir is None and cpu_dir is None:
        return lim
    lim.version = 1
    lim.path = paths.get("cpuset", paths.get("cpu"))
    if cpuset_dir is not None:
        for d in _walk_up(cpuset_dir, paths.get("cpuset", "/")):
            cs = r.cpulist(d / "cpuset.effective_cpus")
            if cs is None:
                cs = r.cpulist(d / "cpuset.cpus")
            if cs:
                lim.cpuset = tuple(cs)
                break
    if cpu_dir is not None:
        best = None
        for d in _walk_up(cpu_dir, paths.get("cpu", "/")):
            q = r.int(d / "cpu.cfs_quota_us")
            per = r.int(d / "cpu.cfs_period_us")
            if q is None or q < 0 or not per:
                continue
            if best is None or q / per < best[0] / best[1]:
                best = (q, per)
        if best:
            lim.quota_us, lim.period_us = best
        else:
            lim.period_us = r.int(cpu_dir / "cpu.cfs_period_us")
    return lim


def _status_allowed(r: _Reader, proc: str) -> list[int] | None:
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


def _is_live(root: Path) -> bool:
    try:
        return root.resolve() == Path("/")
    except OSError:
        return False


def read_topology(root: str | Path = "/", *, pid: int | None = None) -> Topology:
    """Read the machine model from ``root`` ("/" = this machine, else a captured tree).

    Live: ``allowed`` = os.sched_getaffinity(pid or 0) ∩ cgroup cpuset ∩ online.
    Captured tree: the affinity comes from ``<root>/proc/<pid|self>/status`` Cpus_allowed_list
    when present, else all online CPUs.
    """
    rootp = Path(root)
    r = _Reader(rootp)
    live = _is_live(rootp)
    cpu_dir = r.path("sys/devices/system/cpu")
    if not cpu_dir.is_dir():
        raise CoresweepError(
            f"{cpu_dir} does not exist: {str(root)!r} is not a Linux root or captured sysfs tree "
            "(expected <root>/sys/devices/system/cpu)"
        )
    notes: list[str] = []
    proc = "proc/self" if pid is None else f"proc/{pid}"
    if not live and pid is not None and not r.path(proc).is_dir():
        proc = "proc/self"

    # ---- logical CPUs --------------------------------------------------------------------
    cpu_nodes = sorted(
        int(p.name[3:]) for p in cpu_dir.glob("cpu[0-9]*") if p.name[3:].isdigit()
    )
    online = r.cpulist("sys/devices/system/cpu/online")
    if online is None:
        # No 'online' file: every cpuN whose cpuN/online is not 0
        online = [c for c in cpu_nodes if r.int(cpu_dir / f"cpu{c}" / "online") != 0]
    offline = r.cpulist("sys/devices/system/cpu/offline") or []
    present = r.cpulist("sys/devices/system/cpu/present") or sorted(set(online) | set(offline))
    offline = sorted(set(offline) | (set(present) - set(online)))

    # ---- per-CPU topology and caches --------------------------------------------------------
    raw_cache: dict[tuple[int, str, tuple[int, ...]], int | None] = {}
    per_cpu_cache: dict[int, dict[tuple[int, str], tuple[int, ...]]] = {}
    topo_raw: dict[int, dict] = {}
    for c in online:
        base = cpu_dir / f"cpu{c}"
        t = base / "topology"
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
        sib = tuple(s for s in sib if s in set(online)) or (c,)
        topo_raw[c] = dict(package=pkg, die=die, core_id=core, cluster=cluster, siblings=sib)
        per_cpu_cache[c] = {}
        for idx in sorted(base.glob("cache/index[0-9]*")):
            level = r.int(idx / "level")
            ctype = r.text(idx / "type") or "Unified"
            shared = r.cpulist(idx / "shared_cpu_list")
            if level is None or shared is None:
                continue
            shared_t = tuple(s for s in shared if s in set(online)) or (c,)
            key = (level, ctype, shared_t)
            raw_cache.setdefault(key, _size_bytes(r.text(idx / "size")))
            per_cpu_cache[c][(level, ctype)] = shared_t
    caches: list[CacheDomain] = []
    counters: dict[tuple[int, str], int] = {}
    order = {"Data": 0, "Instruction": 1, "Unified": 2}
    for level, ctype, shared in sorted(
        raw_cache, key=lambda k: (k[0], order.get(k[1], 3), k[2][0], k[2])
    ):
        n = counters.get((level, ctype), 0)
        counters[(level, ctype)] = n + 1
        caches.append(CacheDomain(level, ctype, shared, raw_cache[(level, ctype, shared)], n))
    dom_index = {(d.level, d.type, d.cpus): d.index for d in caches}

    # ---- NUMA -------------------------------------------------------------------------------
    numa: dict[int, NumaNode] = {}
    node_dir = r.path("sys/devices/system/node")
    for nd in sorted(node_dir.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        nid = int(nd.name[4:])
        cl = r.cpulist(nd / "cpulist") or []
        cl = [x for x in cl if x in set(online)]
        numa[nid] = NumaNode(nid, tuple(cl), _meminfo_total(r.text(nd / "meminfo")))
    mem_total = _meminfo_total(r.text("proc/meminfo"))
    if not numa:
        numa[0] = NumaNode(0, tuple(online), mem_total)
        notes.append("no /sys/devices/system/node: one NUMA node assumed")
    node_of = {c: n.id for n in numa.values() for c in n.cpus}

    # ---- hybrid ---------------------------------------------------------------------------
    hybrid = None
    pc = r.cpulist("sys/devices/cpu_core/cpus")
    ec = r.cpulist("sys/devices/cpu_atom/cpus")
    if pc is not None and ec is not None and (pc or ec):
        hybrid = {"P": tuple(pc), "E": tuple(ec)}
    kind_of = {}
    if hybrid:
        kind_of.update({c: "P" for c in hybrid["P"]})
        kind_of.update({c: "E" for c in hybrid["E"]})

    # ---- frequency --------------------------------------------------------------------------
    govs: set[str] = set()
    max_khz: list[int] = []
    min_khz: list[int] = []
    smax_khz: list[int] = []
    cpus: dict[int, CpuInfo] = {}
    for c in online:
        tr = topo_raw[c]
        cf = cpu_dir / f"cpu{c}" / "cpufreq"
        mx = r.int(cf / "cpuinfo_max_freq")
        mn = r.int(cf / "cpuinfo_min_freq")
        smx = r.int(cf / "scaling_max_freq")
        gov = r.text(cf / "scaling_governor")
        if mx:
            max_khz.append(mx)
        if mn:
            min_khz.append(mn)
        if smx:
            smax_khz.append(smx)
        if gov:
            govs.add(gov)
        pcc = per_cpu_cache[c]
        l2 = pcc.get((2, "Unified"))
        l3 = pcc.get((3, "Unified"))
        cpus[c] = CpuInfo(
            cpu=c,
            package=tr["package"],
            die=tr["die"],
            core_id=tr["core_id"],
            cluster=tr["cluster"],
            node=node_of.get(c),
            siblings=tr["siblings"],
            l2=dom_index.get((2, "Unified", l2)) if l2 else None,
            l3=dom_index.get((3, "Unified", l3)) if l3 else None,
            kind=kind_of.get(c),
            max_freq_khz=mx,
            governor=gov,
        )

    # ---- cores --------------------------------------------------------------------------------
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

    # ---- SMT, cgroup, affinity -------------------------------------------------------------
    smt_control = r.text("sys/devices/system/cpu/smt/control")
    act = r.int("sys/devices/system/cpu/smt/active")
    smt_active = None if act is None else bool(act)

    cgroup = _read_cgroup(r, proc)
    if live:
        try:
            affinity = sorted(os.sched_getaffinity(pid or 0))
        except OSError as exc:
            raise CoresweepError(f"cannot read the CPU affinity of pid {pid}: {exc}") from exc
    else:
        affinity = _status_allowed(r, proc)
        if affinity is None:
            affinity = list(online)
    allowed_set = set(affinity) & set(online)
    if cgroup.cpuset is not None:
        allowed_set &= set(cgroup.cpuset)
    allowed = tuple(sorted(allowed_set))
    if not allowed:
        notes.append("no usable CPU: affinity ∩ cgroup cpuset ∩ online is empty")
    qc = cgroup.quota_cpus
    cgroup.budget = float(min(qc, len(allowed))) if qc is not None else float(len(allowed))

    # ---- model, ISA, memory, kernel ---------------------------------------------------------
    model, flags, vendor = _cpuinfo(r.text("proc/cpuinfo"))
    isa = {f: (f in flags) for f in ISA_FLAGS}
    isa["amx"] = bool(flags & {"amx_tile", "amx_int8", "amx_bf16"})
    if model is None and live:
        model = platform.processor() or None
    kernel = r.text("proc/sys/kernel/osrelease")
    if kernel is None and live:
        kernel = platform.release()
    arch = platform.machine() if live else ("x86_64" if vendor else ("aarch64" if flags else None))

    def _mhz(v: list[int], f) -> float | None:
        return round(f(v) / 1000.0, 1) if v else None

    freq = {
        "max_mhz": _mhz(max_khz, max),
        "min_mhz": _mhz(min_khz, min),
        "scaling_max_mhz": _mhz(smax_khz, max),
    }
    return Topology(
        online=tuple(online),
        offline=tuple(offline),
        allowed=allowed,
        cpus=cpus,
        cores=cores,
        numa_nodes=numa,
        caches=caches,
        hybrid=hybrid,
        smt_control=smt_control,
        smt_active=smt_active,
        cgroup=cgroup,
        model_name=model,
        isa=isa,
        freq=freq,
        governor=",".join(sorted(govs)) if govs else None,
        mem_total_bytes=mem_total,
        kernel=kernel,
        present=tuple(present),
        affinity=tuple(affinity),
        arch=arch,
        root=str(root),
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------
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


def _summary(topo: Topology) -> str:
    L: list[str] = []
    pk = len(topo.packages)
    cores = topo.physical_core_count()
    tpc = topo.threads_per_core()
    L.append(f"Model:      {topo.model_name or '?'}  ({topo.arch or '?'}, kernel {topo.kernel or '?'})")
    per_pkg = cores // max(pk, 1)
    tcounts: dict[int, int] = {}
    for k in topo.cores:
        tcounts[len(k.cpus)] = tcounts.get(len(k.cpus), 0) + 1
    if len(tcounts) == 1 and cores % max(pk, 1) == 0:
        L.append(
            f"Layout:     {pk} package{'s' if pk > 1 else ''} x {per_pkg} cores x {tpc} "
            f"thread{'s' if tpc > 1 else ''} = {cores} cores, {topo.logical_count()} online CPUs"
        )
    else:
        mix = ", ".join(
            f"{n} with {t} thread{'s' if t > 1 else ''}" for t, n in sorted(tcounts.items(), reverse=True)
        )
        L.append(
            f"Layout:     {pk} package{'s' if pk > 1 else ''}, {cores} cores ({mix}) = "
            f"{topo.logical_count()} online CPUs"
        )
    L.append(
        f"CPUs:       online {format_cpulist(topo.online) or '-'}; offline "
        f"{format_cpulist(topo.offline) or 'none'}; usable by this process "
        f"{format_cpulist(topo.allowed) or 'NONE'} ({len(topo.allowed)} CPUs on "
        f"{topo.physical_core_count(allowed=True)} cores)"
    )
    smt = f"control={topo.smt_control or 'absent'}"
    if topo.smt_active is not None:
        smt += f", active={'yes' if topo.smt_active else 'no'}"
    L.append(f"SMT:        {smt}; {topo.smt_note()}")
    if topo.hybrid:
        L.append(
            f"Hybrid:     P-cores CPUs {format_cpulist(topo.hybrid['P'])}, "
            f"E-cores CPUs {format_cpulist(topo.hybrid['E'])}"
        )
    else:
        L.append("Hybrid:     no")
    nodes = []
    for n in topo.numa_nodes.values():
        nodes.append(f"node{n.id} CPUs {format_cpulist(n.cpus) or '-'} mem {_human(n.mem_total_bytes)}")
    L.append(
        f"NUMA:       {len(topo.numa_nodes)} node(s), {len(topo.nodes_with_memory())} with memory: "
        + "; ".join(nodes)
    )
    for level, ctype in ((1, "Data"), (1, "Instruction"), (2, "Unified"), (3, "Unified")):
        line = _cache_line(topo, level, ctype)
        if line:
            L.append(f"Cache:      {line}")
    llc = topo.llc_domain_map()
    if llc:
        shown = list(llc.items())
        text = "; ".join(f"llc:{i} = {format_cpulist(v)}" for i, v in shown[:8])
        if len(shown) > 8:
            text += f"; ... llc:{shown[-1][0]} = {format_cpulist(shown[-1][1])}"
        per_core = all(len({tuple(topo.cpus[c].siblings) for c in v}) == 1 for v in llc.values())
        if per_core and len(llc) > 1:
            text += " (one per core: no cache shared between cores is reported)"
        L.append(f"LLC:        {len(llc)} domain(s) usable (level L{topo.llc_level or '?'}): {text}")
    cg = topo.cgroup
    if cg.version is None:
        L.append(f"cgroup:     none found; budget {cg.budget:g} CPUs")
    else:
        q = "no quota" if cg.quota_us is None else f"quota {cg.quota_us}/{cg.period_us} us"
        cs = format_cpulist(cg.cpuset) if cg.cpuset is not None else "unrestricted"
        L.append(f"cgroup:     v{cg.version} {cg.path or ''}: cpuset {cs}; {q}; budget {cg.budget:g} CPUs")
    isa = [k for k in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx", "asimddp", "i8mm", "sve")
           if topo.isa.get(k)]
    L.append(f"ISA:        {' '.join(isa) or 'none of avx2/avx512f/avx512_vnni/avx_vnni/amx'}")
    fr = topo.freq
    if fr.get("max_mhz"):
        L.append(
            f"Frequency:  max {fr['max_mhz']:g} MHz, min {fr.get('min_mhz') or 0:g} MHz, "
            f"governor {topo.governor or '?'}"
        )
    else:
        L.append("Frequency:  not exposed (no cpufreq)")
    L.append(f"Memory:     {_human(topo.mem_total_bytes)}")
    for n in topo.notes:
        L.append(f"Note:       {n}")
    L.append("")
    hdr = ("CPU", "ONLINE", "ALLOWED", "PKG", "DIE", "CORE", "SIBLINGS", "L2", "L3", "NODE", "KIND")
    rows = [hdr]
    allowed = set(topo.allowed)
    for c in sorted(set(topo.online) | set(topo.offline)):
        ci = topo.cpus.get(c)
        if ci is None:
            rows.append((str(c), "no", "no", "-", "-", "-", "-", "-", "-", "-", "-"))
            continue
        rows.append(
            (
                str(c),
                "yes",
                "yes" if c in allowed else "no",
                str(ci.package),
                str(ci.die),
                str(ci.core_id),
                format_cpulist(ci.siblings),
                "-" if ci.l2 is None else str(ci.l2),
                "-" if ci.l3 is None else str(ci.l3),
                "-" if ci.node is None else str(ci.node),
                ci.kind or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(hdr))]
    for row in rows:
        L.append("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    L.append("")
    L.append(
        "CORE is core_id (unique only within a package); SIBLINGS are the online CPUs of the same "
        "physical core; L2/L3 number the cache domains (same number = shared cache)."
    )
    return "\n".join(L)


# --------------------------------------------------------------------------------------------
# fingerprint, machine name, capture
# --------------------------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _thp(r: _Reader) -> str | None:
    t = r.text("sys/kernel/mm/transparent_hugepage/enabled")
    if not t:
        return None
    m = re.search(r"\[(\w+)\]", t)
    return m.group(1) if m else t


def fingerprint(topo: Topology | None = None) -> dict:
    """Everything that describes the machine and software a result was measured on (JSON-able).

    Does not import onnxruntime: versions come from the installed distributions' metadata.
    """
    if topo is None:
        topo = read_topology("/")
    r = _Reader(topo.root)
    live = _is_live(Path(topo.root))
    load = r.text("proc/loadavg")
    loadavg = None
    if load:
        try:
            loadavg = [float(x) for x in load.split()[:3]]
        except ValueError:
            loadavg = None
    nb = r.int("proc/sys/kernel/numa_balancing")
    hostname = r.text("proc/sys/kernel/hostname")
    if hostname is None and live:
        hostname = socket.gethostname()
    env = {
        k: v
        for k, v in sorted(os.environ.items())
        if k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES
    }
    versions = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }
    for dist in (
        "coresweep",
        "onnxruntime",
        "onnxruntime-genai",
        "onnx",
        "numpy",
        "psutil",
        "transformers",
        "torch",
    ):
        versions[dist] = _version(dist)
    for alt in ("onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"):
        v = _version(alt)
        if v:
            versions[alt] = v
    return {
        "machine": machine_name(topo),
        "hostname": hostname,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "topology": topo.to_dict(),
        "versions": versions,
        "env": env,
        "transparent_hugepage": _thp(r),
        "numa_balancing": nb,
        "loadavg": loadavg,
        "os": platform.platform() if live else None,
        "pid": os.getpid() if live else None,
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
    r = _Reader(src)
    paths = _cgroup_paths(r.text("proc/self/cgroup"))
    cg = "sys/fs/cgroup"
    if (src / cg / "cgroup.controllers").exists():
        copy(f"{cg}/cgroup.controllers")
        for d in _walk_up(src / cg, paths.get("", "/")):
            rel = str(d.relative_to(src))
            for f in ("cgroup.controllers", "cpuset.cpus.effective", "cpu.max"):
                copy(f"{rel}/{f}")
    else:
        for ctrl, files in (
            ("cpuset", ("cpuset.effective_cpus", "cpuset.cpus")),
            ("cpu", ("cpu.cfs_quota_us", "cpu.cfs_period_us")),
        ):
            base = src / cg / ctrl
            if not base.is_dir():
                continue
            for d in _walk_up(base, paths.get(ctrl, "/")):
                rel = str(d.relative_to(src))
                for f in files:
                    copy(f"{rel}/{f}")
    return written

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
from collections.abc import Iterable, Iterator
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


MAX_CPU_ID = 65535  # x86-64 Linux is built for at most 8192 CPUs (NR_CPUS): larger ids are typos


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
        if hi > MAX_CPU_ID:  # a typo, not a machine: refuse before building a huge list
            raise CoresweepError(f"bad CPU list {s!r}: CPU id {hi} is past the largest accepted "
                                 f"({MAX_CPU_ID})")
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
    if (cg / "cgroup.controllers").exists() and "" in paths:  # unified v2
        return _read_cgroup_v2(r, cg, paths[""])
    return _read_cgroup_v1(r, cg, paths)


def _read_cgroup_v2(r: _Reader, cg: Path, rel: str) -> CgroupLimits:
    """cpuset and quota of a unified (v2) hierarchy: the nearest non-empty effective cpuset and
    the tightest cpu.max on the path from the process's cgroup up to the root."""
    lim = CgroupLimits(version=2, path=rel)
    dirs = _walk_up(cg, rel)
    lim.cpuset = _first_cpuset(r, dirs, ("cpuset.cpus.effective",))
    best = _tightest_quota(_v2_quotas(r, dirs))
    if best:
        lim.quota_us, lim.period_us = best
    elif dirs:
        lim.period_us = 100000
    return lim


def _read_cgroup_v1(r: _Reader, cg: Path, paths: dict[str, str]) -> CgroupLimits:
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
        dirs = _walk_up(cpuset_dir, paths.get("cpuset", "/"))
        lim.cpuset = _first_cpuset(r, dirs, ("cpuset.effective_cpus", "cpuset.cpus"))
    if cpu_dir is not None:
        best = _tightest_quota(_v1_quotas(r, _walk_up(cpu_dir, paths.get("cpu", "/"))))
        if best:
            lim.quota_us, lim.period_us = best
        else:
            lim.period_us = r.int(cpu_dir / "cpu.cfs_period_us")
    return lim


def _first_cpuset(r: _Reader, dirs: list[Path], files: tuple[str, ...]) -> tuple[int, ...] | None:
    """The nearest non-empty cpuset on the path up; in each dir the first of ``files`` present."""
    for d in dirs:
        cs = next((cl for cl in (r.cpulist(d / f) for f in files) if cl is not None), None)
        if cs:
            return tuple(cs)
    return None


def _v2_quotas(r: _Reader, dirs: list[Path]) -> Iterator[tuple[int, int]]:
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


def _v1_quotas(r: _Reader, dirs: list[Path]) -> Iterator[tuple[int, int]]:
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
    cgroup = _read_cgroup(r, proc)
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


def _proc_dir(r: _Reader, live: bool, pid: int | None) -> str:
    """``proc/<pid>``, or ``proc/self`` for no pid or a captured tree that lacks that pid."""
    proc = "proc/self" if pid is None else f"proc/{pid}"
    if not live and pid is not None and not r.path(proc).is_dir():
        proc = "proc/self"
    return proc


def _read_cpu_sets(r: _Reader, cpu_dir: Path) -> tuple[list[int], list[int], list[int]]:
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
    r: _Reader, cpu_dir: Path, online: list[int], notes: list[str]
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


def _read_cpu_topology(r: _Reader, t: Path, c: int, online: set[int], notes: list[str]) -> dict:
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
    r: _Reader, base: Path, c: int, online: set[int],
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
        sizes.setdefault((level, ctype, shared_t), _size_bytes(r.text(idx / "size")))
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
    r: _Reader, online: list[int], notes: list[str]
) -> tuple[dict[int, NumaNode], int | None]:
    """NUMA nodes (one node with all memory when sysfs has none) and the total memory."""
    online_set = set(online)
    numa: dict[int, NumaNode] = {}
    node_dir = r.path("sys/devices/system/node")
    for nd in sorted(node_dir.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        nid = int(nd.name[4:])
        cl = [x for x in (r.cpulist(nd / "cpulist") or []) if x in online_set]
        numa[nid] = NumaNode(nid, tuple(cl), _meminfo_total(r.text(nd / "meminfo")))
    mem_total = _meminfo_total(r.text("proc/meminfo"))
    if not numa:
        numa[0] = NumaNode(0, tuple(online), mem_total)
        notes.append("no /sys/devices/system/node: one NUMA node assumed")
    return numa, mem_total


def _read_hybrid(r: _Reader) -> dict[str, tuple[int, ...]] | None:
    """{"P": CPUs, "E": CPUs} on Intel hybrid parts (cpu_core / cpu_atom PMUs), else None."""
    pc = r.cpulist("sys/devices/cpu_core/cpus")
    ec = r.cpulist("sys/devices/cpu_atom/cpus")
    if pc is not None and ec is not None and (pc or ec):
        return {"P": tuple(pc), "E": tuple(ec)}
    return None


_CpuFreq = tuple[int | None, int | None, int | None, str | None]  # max, min, scaling max, governor


def _read_cpufreq(r: _Reader, cpu_dir: Path, c: int) -> _CpuFreq:
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


def _read_smt(r: _Reader) -> tuple[str | None, bool | None]:
    """smt/control ("on", "off", "notsupported", ...) and smt/active, None where absent."""
    control = r.text("sys/devices/system/cpu/smt/control")
    act = r.int("sys/devices/system/cpu/smt/active")
    return control, None if act is None else bool(act)


def _read_affinity(
    r: _Reader, live: bool, pid: int | None, proc: str, online: list[int]
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


def _read_platform(r: _Reader, live: bool) -> tuple[str | None, dict[str, bool], str | None, str | None]:
    """CPU model name, ISA flags, kernel release and architecture. A captured tree has no
    platform module to ask, so its architecture is guessed from /proc/cpuinfo (x86 has a vendor)."""
    model, flags, vendor = _cpuinfo(r.text("proc/cpuinfo"))
    isa = {f: (f in flags) for f in ISA_FLAGS}
    isa["amx"] = bool(flags & {"amx_tile", "amx_int8", "amx_bf16"})
    if model is None and live:
        model = platform.processor() or None
    kernel = r.text("proc/sys/kernel/osrelease")
    if kernel is None and live:
        kernel = platform.release()
    arch = platform.machine() if live else ("x86_64" if vendor else ("aarch64" if flags else None))
    return model, isa, kernel, arch


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


def _loadavg(r: _Reader) -> list[float] | None:
    """The 1, 5 and 15 minute load averages, None when unreadable."""
    load = r.text("proc/loadavg")
    if not load:
        return None
    try:
        return [float(x) for x in load.split()[:3]]
    except ValueError:
        return None


def _software_versions() -> dict[str, str | None]:
    """Python and the packages that shape a measurement (None: not installed); the alternative
    onnxruntime builds only when installed."""
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
    return versions


def fingerprint(topo: Topology | None = None) -> dict:
    """Everything that describes the machine and software a result was measured on (JSON-able).

    Does not import onnxruntime: versions come from the installed distributions' metadata.
    """
    if topo is None:
        topo = read_topology("/")
    r = _Reader(topo.root)
    live = _is_live(Path(topo.root))
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
    versions = _software_versions()
    from coresweep.machine.speed import speed_state  # boost, EPP, hypervisor, isolation, memory

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
    for rel in _cgroup_capture_files(src):
        copy(rel)
    return written


def _cgroup_capture_files(src: Path) -> list[str]:
    """The cgroup files _read_cgroup reads for the capturing process: its own cgroup dir and
    every parent up to the mount root (v2 unified, else the v1 cpuset and cpu hierarchies)."""
    paths = _cgroup_paths(_Reader(src).text("proc/self/cgroup"))
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
        for d in _walk_up(base, paths.get(ctrl, "/")):
            rel = str(d.relative_to(src))
            out.extend(f"{rel}/{f}" for f in files)
    return out

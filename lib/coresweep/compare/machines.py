"""Machine fingerprints side by side: the facts that change results (CPU, cores, SMT, caches,
memory, frequency policy, kernel, library versions, threading knobs), and which of them differ
between the runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd


def _gib(n: Any) -> str | None:
    return f"{n / 2**30:.1f} GiB" if isinstance(n, (int, float)) and n else None


def _llc(topo: dict[str, Any]) -> str | None:
    caches = topo.get("caches") or []
    if not caches:
        return None
    top = max(c.get("level", 0) for c in caches)
    sizes = {c.get("size_bytes", 0) for c in caches if c.get("level") == top}
    domains = len({tuple(c.get("cpus", [])) for c in caches if c.get("level") == top})
    return f"L{top} {max(sizes) / 2**20:g} MiB × {domains}"


def _json(v: Any) -> str | None:
    return json.dumps(v, sort_keys=True) if v else None


def facts(fp: dict[str, Any]) -> dict[str, str]:
    """The comparable facts of a run.json fingerprint, as display strings ("–" when unknown)."""
    topo = fp.get("topology") or {}
    counts = topo.get("counts") or {}
    smt = topo.get("smt") or {}
    freq = topo.get("freq") or {}
    isa = sorted(k for k, v in (topo.get("isa") or {}).items() if v)
    speed = fp.get("speed") or {}  # recorded since the speed fingerprint; older runs: unknown
    out = {
        "CPU": topo.get("model_name"), "architecture": topo.get("arch"),
        "packages": counts.get("packages"), "physical cores": counts.get("physical_cores"),
        "logical CPUs": counts.get("logical_cpus"),
        "usable CPUs (affinity, cgroup)": counts.get("allowed_cpus"),
        "cgroup CPU budget": (topo.get("cgroup") or {}).get("budget"),
        "threads per core": counts.get("threads_per_core"),
        "SMT active": smt.get("active"), "NUMA nodes": counts.get("numa_nodes"),
        "last-level cache": _llc(topo), "memory": _gib(topo.get("mem_total_bytes")),
        "max frequency MHz": freq.get("max_mhz"), "governor": topo.get("governor"),
        "hybrid (P/E cores)": "yes" if topo.get("hybrid") else "no",
        "ISA extensions": ", ".join(isa) or None, "kernel": topo.get("kernel"),
        "OS": fp.get("os"), "transparent hugepages": fp.get("transparent_hugepage"),
        "THP defrag": fp.get("transparent_hugepage_defrag"),
        "NUMA balancing": fp.get("numa_balancing"),
        "boost": speed.get("boost"),
        "energy-performance preference": _json(speed.get("energy_performance_preference")),
        "hypervisor": speed.get("hypervisor"), "CPU isolation": _json(speed.get("isolation")),
        "memory modules": _json(speed.get("memory")),
        "environment knobs recorded": _json(fp.get("env")),
    }
    for name, version in sorted((fp.get("versions") or {}).items()):
        out[name] = version
    return {k: "–" if v is None else str(v) for k, v in out.items()}


def fingerprint_diff(names: Sequence[str], fingerprints: Sequence[dict[str, Any]]
                     ) -> tuple[pd.DataFrame, list[str]]:
    """(one row per fact that differs: fact | one column per run, [the facts every run shares])."""
    table = [facts(fp) for fp in fingerprints]
    keys = list(dict.fromkeys(k for t in table for k in t))
    differ, same = [], []
    for k in keys:
        values = [t.get(k, "–") for t in table]
        if len(set(values)) > 1:
            differ.append({"": k, **dict(zip(names, values, strict=True))})
        else:
            same.append(f"{k} {values[0]}")
    return pd.DataFrame(differ, columns=["", *names]), same

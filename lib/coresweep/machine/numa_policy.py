"""NUMA memory policy of a worker process: set before the model loads, verified from
/proc/PID/numa_maps.

The policy is the process's own (``set_mempolicy``, called through libc's ``syscall``: no libnuma
needed), so every page the model's weights and the KV cache touch after it is set follows it;
mappings made before (the interpreter itself) keep the default and are left out of the check.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError

POLICIES = ("default", "local", "interleave")
_MPOL = {"default": 0, "interleave": 3, "local": 4}  # linux/mempolicy.h
_SYS_SET_MEMPOLICY = {"x86_64": 238, "aarch64": 237, "ppc64le": 261, "s390x": 237,
                      "riscv64": 237}
_NODE_PAGES = re.compile(r"\bN(\d+)=(\d+)")


def set_memory_policy(policy: str, nodes: Iterable[int] = ()) -> None:
    """Make ``policy`` this process's memory policy ("interleave" spreads pages over ``nodes``).
    Raises CoresweepError naming the policy when the kernel refuses it."""
    if policy not in POLICIES:
        raise CoresweepError(f"unknown NUMA memory policy {policy!r}; valid: {', '.join(POLICIES)}")
    nr = _SYS_SET_MEMPOLICY.get(platform.machine())
    if nr is None:
        raise CoresweepError(f"set_mempolicy: unknown syscall number on {platform.machine()}")
    nodes = sorted(set(nodes))
    if policy == "interleave" and not nodes:
        raise CoresweepError("interleave needs at least one NUMA node with memory")
    mask = 0
    for n in nodes if policy == "interleave" else ():
        mask |= 1 << n
    maxnode = (max(nodes) + 2) if policy == "interleave" else 0
    cmask = ctypes.c_ulong(mask)
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(ctypes.c_long(nr), ctypes.c_int(_MPOL[policy]),
                      ctypes.byref(cmask) if maxnode else None, ctypes.c_ulong(maxnode))
    if rc != 0:
        err = ctypes.get_errno()
        raise CoresweepError(f"set_mempolicy({policy}, nodes {nodes}) failed: {os.strerror(err)}")


def parse_numa_maps(text: str) -> dict[str, Any]:
    """Pages per node and the policies seen in a numa_maps file (page counts weight each)."""
    pages: Counter[int] = Counter()
    policies: Counter[str] = Counter()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        counts = {int(n): int(p) for n, p in _NODE_PAGES.findall(line)}
        pages.update(counts)
        policies[parts[1].split(":", 1)[0]] += sum(counts.values())
    return {"pages": {str(n): pages[n] for n in sorted(pages)},
            "policies": dict(policies.most_common())}


def read_numa_maps(pid: int | str = "self", proc: str | Path = "/proc") -> dict[str, Any] | None:
    """``parse_numa_maps`` of a live process; None where the kernel has no NUMA support."""
    try:
        return parse_numa_maps(Path(proc, str(pid), "numa_maps").read_text())
    except OSError:
        return None


def policy_verified(policy: str, maps: dict[str, Any] | None) -> bool | None:
    """True when most mapped pages carry ``policy`` (the weights dominate a worker's memory);
    None when numa_maps could not be read. ``default`` is always verified."""
    if maps is None:
        return None
    if policy == "default":
        return True
    counts = maps.get("policies", {})
    total = sum(counts.values())
    return bool(total) and counts.get(policy, 0) > total / 2

"""Transparent huge pages: the machine's THP state (fingerprint), a process's huge pages read back
from /proc (AnonHugePages in smaps_rollup), and the two ways a worker can ask for them:

- ``malloc``: glibc's tunable ``glibc.malloc.hugetlb=1`` (glibc >= 2.35), set in the environment
  the worker is started with (glibc reads it at start-up only): malloc then advises THP
  (madvise MADV_HUGEPAGE) on the memory it maps and on its heap, so with THP in ``madvise`` mode
  onnxruntime's allocations — prepacked weights, the arena — can get 2 MiB pages;
- ``madvise``: after the model is loaded, the worker advises THP on every anonymous mapping of at
  least one huge page and asks the kernel to collapse it at once (MADV_COLLAPSE, Linux >= 6.1;
  without it, khugepaged collapses them later, in the background).

A 4 KiB page covers 4 KiB of weights, a 2 MiB page 512 times more: a decode step that streams a
gigabyte of weights through 4 KiB pages walks ~250 000 page-table entries, far beyond the TLB.
"""

from __future__ import annotations

import ctypes
import os
import re
import time
from pathlib import Path
from typing import Any

MODES = ("default", "malloc", "madvise")
TUNABLE = "glibc.malloc.hugetlb=1"
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
_THP = "sys/kernel/mm/transparent_hugepage"


def _bracketed(text: str | None) -> str | None:
    """The selected value of a sysfs choice list ("always [madvise] never" -> "madvise")."""
    if not text:
        return None
    m = re.search(r"\[([\w+]+)\]", text)
    return m.group(1) if m else text.strip()


def thp_state(root: str | Path = "/") -> dict[str, Any]:
    """THP as the kernel has it: enabled, defrag, khugepaged's defrag and the huge page size
    (None for what the machine does not say)."""
    base = Path(root) / _THP

    def read(name: str) -> str | None:
        try:
            return (base / name).read_text().strip()
        except OSError:
            return None

    size = read("hpage_pmd_size")
    return {"enabled": _bracketed(read("enabled")), "defrag": _bracketed(read("defrag")),
            "khugepaged_defrag": read("khugepaged/defrag"),
            "hpage_pmd_size": int(size) if size and size.isdigit() else None}


def memory_of(pid: int | str = "self") -> dict[str, int]:
    """Bytes of a process's memory from smaps_rollup: Rss, Anonymous, AnonHugePages (anonymous
    memory in transparent huge pages) and FilePmdMapped; {} when unreadable."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    out = {}
    for key in ("Rss", "Anonymous", "AnonHugePages", "FilePmdMapped"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if m:
            out[key] = int(m.group(1)) * 1024
    return out


def glibc_version() -> tuple[int, int] | None:
    """The C library's version when it is glibc, else None."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (ValueError, OSError, AttributeError):
        return None


def why_not(mode: str, root: str | Path = "/") -> str:
    """"" when ``mode`` can act on this machine, else why it cannot."""
    state = thp_state(root)
    if mode == "default":
        return ""
    if state["enabled"] is None:
        return "this kernel has no transparent huge pages"
    if mode == "malloc":
        v = glibc_version()
        if v is None or v < (2, 35):
            return "glibc.malloc.hugetlb needs glibc 2.35 or later"
        if state["enabled"] == "never":
            return "transparent huge pages are off (enabled = never)"
    return ""


def spawn_env(mode: str, env: dict[str, str]) -> dict[str, str]:
    """The environment a worker starts with for ``mode``: ``malloc`` adds the glibc tunable
    (to any GLIBC_TUNABLES already set)."""
    if mode != "malloc":
        return env
    have = env.get("GLIBC_TUNABLES", "")
    return {**env, "GLIBC_TUNABLES": f"{have}:{TUNABLE}" if have else TUNABLE}


def anonymous_mappings(min_bytes: int) -> list[tuple[int, int]]:
    """(start, length) of this process's private anonymous writable mappings of at least
    ``min_bytes`` (the heap included), from /proc/self/maps."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split()
        start, end = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5] if len(parts) > 5 else ""
        if parts[1].startswith("rw") and parts[1][3] == "p" and path in ("", "[heap]") \
                and end - start >= min_bytes:
            out.append((start, end - start))
    return out


def advise_huge(collapse: bool = True, huge: int = 2 << 20) -> dict[str, Any]:
    """MADV_HUGEPAGE on every large anonymous mapping of this process, then (``collapse``)
    MADV_COLLAPSE: what was advised, what the kernel refused, how long it took and the huge
    pages before and after."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    before, t0 = memory_of(), time.perf_counter()
    advised, errors = 0, {}
    for start, length in anonymous_mappings(huge):
        lo = -(-start // huge) * huge  # whole huge pages inside the mapping
        hi = (start + length) // huge * huge
        if hi <= lo:
            continue
        for advice in (MADV_HUGEPAGE, MADV_COLLAPSE) if collapse else (MADV_HUGEPAGE,):
            if libc.madvise(lo, hi - lo, advice) != 0:
                err = os.strerror(ctypes.get_errno())
                errors[err] = errors.get(err, 0) + 1
        advised += hi - lo
    after = memory_of()
    return {"advised_bytes": advised, "errors": errors, "seconds": time.perf_counter() - t0,
            "anon_huge_before": before.get("AnonHugePages"),
            "anon_huge_after": after.get("AnonHugePages")}

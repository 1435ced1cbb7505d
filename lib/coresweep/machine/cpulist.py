"""CPU lists in the kernel's syntax ("0-3,8-11"): parsing and formatting, used wherever CPUs are
named (placements, cgroups, /proc, reports)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from coresweep.errors import CoresweepError

__all__ = ["MAX_CPU_ID", "format_cpulist", "parse_cpulist"]

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

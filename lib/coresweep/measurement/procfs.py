"""Reading a process's threads from /proc: name, allowed CPUs, the CPU each last ran on, and
their CPU time (exact on-CPU nanoseconds from schedstat; stat's ticks as a fallback)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_thread_stat(path: str | Path) -> dict[str, Any] | None:
    """Parse /proc/PID/task/TID/stat: name, utime/stime seconds, last CPU (field 39), and the
    exact on-CPU time from the sibling schedstat file (cpu_s)."""
    path = str(path)
    raw = _read(path)
    if not raw:
        return None
    lpar, rpar = raw.index("("), raw.rindex(")")
    name = raw[lpar + 1 : rpar]
    rest = raw[rpar + 2 :].split()  # rest[0] is field 3 (state)
    user_s, sys_s = int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK
    # schedstat's first field is the thread's on-CPU time in ns (exact; stat has 10 ms ticks)
    sched = _read(path[: -len("stat")] + "schedstat")
    try:
        cpu_s = int(sched.split()[0]) / 1e9 if sched else user_s + sys_s
    except (ValueError, IndexError):
        cpu_s = user_s + sys_s
    return {
        "tid": int(raw[:lpar]),
        "name": name,
        "state": rest[0],
        "user_s": user_s,
        "sys_s": sys_s,
        "cpu_s": cpu_s,
        "last_cpu": int(rest[36]),
    }


def read_threads(pid: int | str = "self", *, proc: str | Path = "/proc", status: bool = True) -> list[dict]:
    """Every thread of a process: tid, name, allowed CPUs (Cpus_allowed_list), last CPU, CPU time."""
    base = f"{proc}/{pid}/task"
    rows = []
    try:
        tids = sorted(os.listdir(base), key=int)
    except (FileNotFoundError, ProcessLookupError):
        return rows
    for tid in tids:
        st = read_thread_stat(f"{base}/{tid}/stat")
        if st is None:
            continue
        if status:
            text = _read(f"{base}/{tid}/status")
            if text is None:
                continue
            st["allowed"] = ""
            for line in text.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    st["allowed"] = line.split(":", 1)[1].strip()
                    break
        rows.append(st)
    return rows

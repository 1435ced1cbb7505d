"""Memory read bandwidth measured where the trials run: the ceiling of the roofline.

A decode step of an LLM reads (almost) every weight once, so decode tok/s × bytes read per token
is the bandwidth the decoder achieves; this module measures the ceiling at the same placement
(the same CPUs, the same thread count), two ways:

- ``"likwid"``, the field's tool: ``likwid-bench -t load_avx -w N:<size>kB:<threads>`` from
  Debian's ``likwid`` package, started with its CPU mask already set to ``cpus`` (likwid-bench
  builds its "N" domain from the process's affinity, so the workgroup is exactly those CPUs;
  each thread's hwthread is read back from its output and checked).
- ``"ort"``, the portable fallback: a fresh worker process pinned to ``cpus`` before it imports
  onnxruntime runs ReduceSum over a float32 [rows, 4096] input (far larger than the LLC, bound
  through IOBinding) with ``threads`` intra-op threads; GB/s = bytes read / seconds.

``measure_bandwidth`` returns long-form rows (one per method run); ``roofline_method`` says which
one a roofline should use. 1 GB = 1e9 bytes throughout.
"""

from __future__ import annotations

import json
import math
import operator
import re
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from coresweep.errors import CoresweepError, PlacementError
from coresweep.machine.cpulist import format_cpulist
from coresweep.machine.topology import Topology, read_topology
from coresweep.measurement.process import run_group

__all__ = [
    "DEFAULT_REPS",
    "LIKWID_ITERATIONS",
    "METHODS",
    "default_size_bytes",
    "likwid_command",
    "likwid_kernel",
    "measure_bandwidth",
    "minimum_size_bytes",
    "parse_likwid_output",
    "roofline_method",
]

METHODS = ("auto", "ort", "likwid")
GIB = 1 << 30
LIKWID_HINT = "install it with: apt-get install likwid (Debian/Ubuntu, as root)"
_WORKER = [sys.executable, "-m", "coresweep.measurement.bandwidth_worker"]


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _largest_llc_bytes(topo: Topology) -> int:
    lvl = topo.llc_level
    sizes = [c.size_bytes or 0 for c in topo.cache_domains(lvl)] if lvl is not None else []
    return max(sizes, default=0)


DEFAULT_REPS = 5  # runs per method and placement (likwid-bench's spread between runs is ~15 %)


def default_size_bytes(topo: Topology | None = None) -> int:
    """max(1 GiB, 8 × the largest last-level cache): far out of cache, so DRAM is what is read."""
    return max(GIB, 8 * _largest_llc_bytes(topo or read_topology()))


def minimum_size_bytes(topo: Topology | None = None) -> int:
    """The smallest buffer that measures memory, not cache: 2 × the largest last-level cache
    (at least 1 MiB)."""
    return max(2 * _largest_llc_bytes(topo or read_topology()), 1 << 20)


def _check_memory(size_bytes: int) -> None:
    """The buffer (plus room for the interpreter and runtime) must fit in available memory."""
    import psutil

    avail = psutil.virtual_memory().available
    need = int(size_bytes * 1.1) + 256 * (1 << 20)
    if need > avail:
        raise CoresweepError(
            f"bandwidth buffer size_bytes={size_bytes} needs about {need / GIB:.2f} GiB but only "
            f"{avail / GIB:.2f} GiB is available; pass a smaller size_bytes (at least 2 × the "
            "last-level cache) or free memory"
        )


def _integer(value: Any, what: str, error: type[CoresweepError] = PlacementError) -> int:
    """An int (numpy integers too); a bool, float or text is refused by name."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise error(f"{what} {value!r} is not an integer") from None


def _check_inputs(cpus: Sequence[int], threads: int, method: str, size_bytes: int | None,
                  reps: int, topo: Topology) -> tuple[list[int], int]:
    """Every bad input raises here, before any process starts; returns (cpus, size_bytes)."""
    if method not in METHODS:
        raise CoresweepError(f"unknown bandwidth method {method!r}; valid: {', '.join(METHODS)}")
    usable = format_cpulist(topo.allowed)
    ids = [_integer(c, "a CPU id") for c in cpus]
    if not ids:
        raise PlacementError(f"cpus is empty; give one or more of the usable CPUs {usable}")
    bad = sorted(set(ids) - set(topo.allowed))
    if bad:
        raise PlacementError(f"CPUs {format_cpulist(bad)} are not usable by this process; "
                             f"usable CPUs: {usable}")
    if _integer(threads, "threads") < 1:
        raise PlacementError(f"threads={threads!r}: need an integer >= 1 (e.g. 1..{len(ids)} "
                             f"for cpus {format_cpulist(ids)})")
    if _integer(reps, "reps", CoresweepError) < 1:
        raise CoresweepError(f"reps={reps!r}: need an integer >= 1")
    minimum = minimum_size_bytes(topo)
    size = default_size_bytes(topo) if size_bytes is None else int(size_bytes)
    if size < minimum:
        raise CoresweepError(
            f"size_bytes={size_bytes}: the buffer must be at least {minimum} bytes (2 × the "
            f"largest last-level cache) to measure memory, not cache; default {default_size_bytes(topo)}"
        )
    _check_memory(size)
    return ids, size


# --------------------------------------------------------------------------------------------
# rows and child processes
# --------------------------------------------------------------------------------------------
def _row(method: str, cpus: list[int], threads: int, size: int, values: list[float],
         reps: int, *, reason: str = "", version: str = "", kernel: str = "",
         busy_cpus: float | None = None) -> dict[str, Any]:
    ok = not reason and bool(values) and all(math.isfinite(v) and v > 0 for v in values)
    nan = float("nan")
    return {
        "method": method, "cpus": format_cpulist(cpus), "threads": threads, "size_bytes": size,
        "gb_s": statistics.median(values) if ok else nan,
        "gb_s_min": min(values) if ok else nan, "gb_s_max": max(values) if ok else nan,
        "reps": len(values) if ok else reps, "ok": ok,
        "reason": reason or ("" if ok else "no positive, finite measurement"),
        "tool_version": version, "kernel": kernel,
        "busy_cpus": nan if busy_cpus is None else float(busy_cpus),
    }


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _ort_version() -> str:
    """From the distribution's metadata: the parent never imports onnxruntime."""
    import importlib.metadata

    try:
        return "onnxruntime " + importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return ""


# --------------------------------------------------------------------------------------------
# the portable method: ONNX Runtime's own thread pool
# --------------------------------------------------------------------------------------------
def _measure_ort(cpus: list[int], threads: int, size: int, reps: int,
                 timeout_s: float) -> dict[str, Any]:
    """One fresh worker, pinned before it imports onnxruntime (see bandwidth_worker)."""
    payload = json.dumps({"cpus": cpus, "threads": threads, "size_bytes": size, "reps": reps})
    rc, out, err = run_group([*_WORKER, "ort", payload], timeout_s)
    version = _ort_version()
    if rc is None:
        return _row("ort", cpus, threads, size, [], reps, version=version,
                    reason=f"timed out after {timeout_s:g} s (worker process group killed)")
    try:
        res = json.loads(_last_line(out))
    except ValueError:
        res = {"ok": False, "error": _last_line(err) or f"worker exited with status {rc}"}
    if not res.get("ok"):
        return _row("ort", cpus, threads, size, [], reps, version=version,
                    reason=str(res.get("error") or f"worker exited with status {rc}"))
    if sorted(res["affinity"]) != sorted(cpus):  # the worker read its mask back
        return _row("ort", cpus, threads, size, [], reps, version=version,
                    reason=f"worker ran on CPUs {format_cpulist(res['affinity'])}, "
                           f"not {format_cpulist(cpus)}")
    return _row("ort", cpus, threads, int(res["size_bytes"]), res["gb_s"], reps,
                version="onnxruntime " + res["onnxruntime_version"], kernel=res["kernel"],
                busy_cpus=res.get("busy_cpus"))


# --------------------------------------------------------------------------------------------
# the field tool: likwid-bench
# --------------------------------------------------------------------------------------------
_LIKWID_VERSION = re.compile(r"Version\s+([0-9][0-9.]*)")
_MBYTE = re.compile(r"^MByte/s:\s*([0-9.eE+-]+)", re.M)
_SIZE = re.compile(r"^Size \(Byte\):\s*(\d+)", re.M)
_HWTHREAD = re.compile(r"Global Thread (\d+) running on hwthread (\d+)")


def likwid_kernel(isa: dict[str, bool], kernels: Sequence[str] = ()) -> str:
    """``load_avx`` when the CPU has AVX, else ``load_sse`` (x86-64 always has SSE2), else
    ``load``; limited to the kernels likwid-bench lists (``-a``) when that list is given."""
    wanted = ["load_avx"] if isa.get("avx") else []
    if isa.get("avx") or isa.get("sse4_2"):
        wanted.append("load_sse")
    wanted.append("load")
    available = [k for k in wanted if not kernels or k in kernels]
    return available[0] if available else "load"


# passes over the buffer per run: likwid-bench's own choice (64 here, ~2 s of reads at 1 GiB)
# made a run take 7 s; 20 passes read 20 GiB, plenty for a steady rate, and a run takes ~2.5 s
LIKWID_ITERATIONS = 20


def likwid_command(kernel: str, size_bytes: int, threads: int, exe: str = "likwid-bench") -> list[str]:
    """The workgroup is domain N (every CPU the process may use: the caller sets the mask) with
    ``threads`` threads; the size in likwid's decimal kB (1 kB = 1000 bytes)."""
    return [exe, "-t", kernel, "-i", str(LIKWID_ITERATIONS), "-w",
            f"N:{max(1, size_bytes // 1000)}kB:{threads}"]


def parse_likwid_output(text: str) -> dict[str, Any]:
    """GB/s (likwid's MByte/s are 1e6 bytes/s), the size it used, and each thread's hwthread."""
    m = _MBYTE.search(text or "")
    if not m:
        raise ValueError("no 'MByte/s:' line in likwid-bench output; last line: "
                         + repr(_last_line(text)))
    size = _SIZE.search(text)
    return {"gb_s": float(m.group(1)) / 1000.0,
            "size_bytes": int(size.group(1)) if size else None,
            "hwthreads": {int(t): int(c) for t, c in _HWTHREAD.findall(text)}}


def _likwid_info(exe: str, timeout_s: float) -> tuple[str, list[str]]:
    """likwid-bench's version (from -h) and the kernels it lists (-a) on this CPU."""
    _, help_text, _ = run_group([exe, "-h"], timeout_s)
    m = _LIKWID_VERSION.search(help_text or "")
    _, listing, _ = run_group([exe, "-a"], timeout_s)
    kernels = [ln.split(" - ")[0].strip() for ln in (listing or "").splitlines() if " - " in ln]
    return ("likwid-bench " + m.group(1) if m else "likwid-bench"), kernels


def _measure_likwid(cpus: list[int], threads: int, size: int, reps: int, timeout_s: float,
                    isa: dict[str, bool]) -> dict[str, Any]:
    """``reps`` runs of likwid-bench, each started pinned to ``cpus`` (never raises for a
    missing or failing tool: the row says why, with how to get it)."""
    exe = shutil.which("likwid-bench")
    if exe is None:
        return _row("likwid", cpus, threads, size, [], reps,
                    reason=f"likwid-bench is not installed (not on PATH); {LIKWID_HINT}")
    deadline = time.monotonic() + timeout_s
    version, kernels = _likwid_info(exe, min(30.0, timeout_s))
    kernel = likwid_kernel(isa, kernels)
    cmd = [*_WORKER, "pin", ",".join(map(str, cpus)), *likwid_command(kernel, size, threads, exe)]
    values: list[float] = []
    for _ in range(reps):
        rc, out, err = run_group(cmd, max(1.0, deadline - time.monotonic()))
        why = _likwid_failure(rc, out, err, cpus, threads, timeout_s)
        if why:
            return _row("likwid", cpus, threads, size, [], reps, reason=why, version=version,
                        kernel=kernel)
        parsed = parse_likwid_output(out)
        size = parsed["size_bytes"] or size
        values.append(parsed["gb_s"])
    return _row("likwid", cpus, threads, size, values, reps, version=version, kernel=kernel)


def _likwid_failure(rc: int | None, out: str, err: str, cpus: list[int], threads: int,
                    timeout_s: float) -> str:
    """Why one likwid-bench run cannot be used ("" when it can)."""
    if rc is None:
        return f"likwid-bench timed out after {timeout_s:g} s (process group killed)"
    if rc != 0:
        return (f"likwid-bench exited with status {rc}: "
                f"{_last_line(err) or _last_line(out) or 'no output'}; {LIKWID_HINT}")
    try:
        placed = parse_likwid_output(out)["hwthreads"]
    except ValueError as exc:
        return str(exc)
    if len(placed) != threads or not set(placed.values()) <= set(cpus):
        return (f"likwid-bench placed threads on hwthreads {sorted(set(placed.values()))} "
                f"({len(placed)} threads), asked for {threads} on CPUs {format_cpulist(cpus)}")
    return ""


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------
def measure_bandwidth(cpus: Sequence[int], threads: int, *, method: str = "auto",
                      size_bytes: int | None = None, reps: int = DEFAULT_REPS,
                      timeout_s: float = 120, topo: Topology | None = None) -> list[dict[str, Any]]:
    """Memory read bandwidth of ``threads`` threads on exactly ``cpus``: one row per method.

    ``method``: "ort" (portable, always possible), "likwid" (likwid-bench) or "auto" (both; a
    missing or failing likwid-bench gives a row with ok=False and the reason). ``size_bytes``:
    the buffer read (default max(1 GiB, 8 × largest LLC)). ``timeout_s``: the limit of each
    method's measurement (all its reps); past it the process group is killed and the row says so.
    Rows: method, cpus (kernel cpulist), threads, size_bytes, gb_s (median of reps), gb_s_min,
    gb_s_max, reps, ok, reason, tool_version, kernel, busy_cpus (ort: process CPU time / wall
    while timed, i.e. how many threads really worked; NaN for likwid).
    ``topo``: the machine the CPUs and the cache sizes are checked against (default: this one).
    Bad inputs raise PlacementError / CoresweepError before any process starts.
    """
    topo = topo or read_topology()
    ids, size = _check_inputs(cpus, threads, method, size_bytes, reps, topo)
    rows = []
    if method in ("auto", "likwid"):
        rows.append(_measure_likwid(ids, threads, size, reps, timeout_s, topo.isa))
    if method in ("auto", "ort"):
        rows.append(_measure_ort(ids, threads, size, reps, timeout_s))
    return rows


def roofline_method(rows: Sequence[dict[str, Any]]) -> str:
    """The roofline's ceiling: "likwid" when it ran ok (the field's tool, pinned, measures the
    ceiling), else "ort" (the portable fallback); reports say which one was used."""
    ok = any(r.get("method") == "likwid" and r.get("ok") for r in rows)
    return "likwid" if ok else "ort"

"""Each worker reports itself in the server's state folder (at start and at every request's
start and end); ``describe`` reads every report back and checks it against /proc: the CPUs each
worker's threads are allowed (read back, not the plan), whether the worker is alive, whether its
placement matches its slice, its state (idle/busy) and the requests it served; with HAProxy
dispatch also whether HAProxy sends it requests and how many wait in HAProxy's queue (read from
HAProxy's stats socket in the state folder)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from coresweep.machine.cpulist import format_cpulist, parse_cpulist
from coresweep.serving.config import ServeConfig

HAPROXY_SOCKET = "haproxy.sock"  # in the state folder (haproxy.cfg names it the same way)
BACKEND = "workers"  # haproxy.cfg's backend of the worker ports


def _state_file(cfg: ServeConfig, slot: int) -> Path:
    return Path(cfg.state_dir) / f"worker-{slot}.json"


def report_worker(cfg: ServeConfig, slot: int, fields: dict[str, Any]) -> None:
    """A worker's own report (atomic write: /health never reads half of one)."""
    path = _state_file(cfg, slot)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one temporary file per thread: a batched worker reports from its batch thread too
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"slot": slot, "pid": os.getpid(), "updated": time.time(),
                               **fields}))
    tmp.replace(path)


def _allowed_by_thread(pid: int) -> dict[int, str] | None:
    """tid → Cpus_allowed_list of every thread of ``pid``; None when the process is gone."""
    from coresweep.measurement.procfs import read_threads

    if not Path(f"/proc/{pid}").exists():
        return None
    return {t["tid"]: t.get("allowed", "") for t in read_threads(pid)}


def _worker_view(cfg: ServeConfig, report: dict[str, Any]) -> dict[str, Any]:
    slot, pid = report["slot"], report["pid"]
    threads = _allowed_by_thread(pid)
    plan = cfg.cpus_of(slot)
    view = {"slot": slot, "pid": pid, "alive": threads is not None, "model": cfg.model_name,
            "threads": cfg.threads, "plan_cpus": format_cpulist(plan) if plan else "unpinned",
            "load_s": report.get("load_s"), "started": report.get("started"),
            "state": report.get("state", "starting"),
            "waiting": report.get("waiting", 0), "served": report.get("served", 0),
            "batch": report.get("batch", 1), "active": report.get("active", 0)}
    if threads is None:
        return {**view, "state": "dead", "allowed_cpus": "", "os_threads": 0,
                "placement_ok": False}
    allowed = sorted({c for a in threads.values() if a for c in parse_cpulist(a)})
    ok = plan is None or all(set(parse_cpulist(a)) <= set(plan) for a in threads.values() if a)
    return {**view, "allowed_cpus": format_cpulist(allowed), "os_threads": len(threads),
            "placement_ok": ok}


def haproxy_stats(state_dir: str | Path, timeout_s: float = 1.0) -> list[dict[str, str]]:
    """HAProxy's `show stat` (one dict per proxy/server), or [] when its socket does not answer."""
    path = Path(state_dir) / HAPROXY_SOCKET
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(b"show stat\n")
        data = b"".join(iter(lambda: s.recv(65536), b""))
        return list(csv.DictReader(io.StringIO(data.decode().lstrip("# "))))
    return []


def _dispatcher(cfg: ServeConfig) -> dict[str, Any]:
    """The front's view: HAProxy's queue and which worker ports it sends to (UP)."""
    if cfg.dispatch != "haproxy":  # prefork: the queue is the kernel's listen backlog, unread
        return {"queued": None if cfg.dispatch == "prefork" else 0, "in_rotation": {}}
    rows = [r for r in haproxy_stats(cfg.state_dir) if r.get("pxname") == BACKEND]
    if not rows:
        return {"queued": None, "in_rotation": {}}
    queued = sum(int(r.get("qcur") or 0) for r in rows if r.get("svname") == "BACKEND")
    up = {int(r["svname"][1:]): r.get("status", "").startswith("UP")
          for r in rows if r.get("svname", "").startswith("w")}
    return {"queued": queued, "in_rotation": up}


def describe(cfg: ServeConfig) -> dict[str, Any]:
    """Every worker slot's latest report, read back from /proc; ready when all are alive (and,
    behind HAProxy, in rotation). ``queue``: requests waiting for a worker (HAProxy's queue plus
    those waiting inside a worker)."""
    workers = []
    for slot in range(cfg.workers):
        path = _state_file(cfg, slot)
        with contextlib.suppress(OSError, ValueError):
            workers.append(_worker_view(cfg, json.loads(path.read_text())))
    front = _dispatcher(cfg)
    for w in workers:
        w["in_rotation"] = front["in_rotation"].get(w["slot"], cfg.dispatch != "haproxy")
    ready = len(workers) == cfg.workers and all(w["alive"] and w["in_rotation"]
                                                for w in workers)
    inside = sum(w["waiting"] for w in workers if w["alive"])
    return {"status": "ok" if ready else "starting", "dispatch": cfg.dispatch,
            "workers": workers, "placement_ok": ready and all(w["placement_ok"] for w in workers),
            "queue": None if front["queued"] is None else front["queued"] + inside,
            "served": sum(w["served"] for w in workers), "runtime": cfg.runtime,
            "threads_per_worker": cfg.threads}

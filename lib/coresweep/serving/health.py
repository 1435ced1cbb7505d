"""Each worker reports itself in the server's state folder; ``describe`` reads every report back
and checks it against /proc: the CPUs each worker's threads are allowed (read back, not the plan),
whether the worker is alive, and whether its placement matches its slice."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from coresweep.machine.topology import format_cpulist, parse_cpulist
from coresweep.serving.config import ServeConfig


def _state_file(cfg: ServeConfig, slot: int) -> Path:
    return Path(cfg.state_dir) / f"worker-{slot}.json"


def report_worker(cfg: ServeConfig, slot: int, load_s: float) -> None:
    """Called by a worker once its model is loaded (atomic write: /health never reads half)."""
    path = _state_file(cfg, slot)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"slot": slot, "pid": os.getpid(), "load_s": load_s,
                               "started": time.time()}))
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
            "load_s": report.get("load_s")}
    if threads is None:
        return {**view, "allowed_cpus": "", "os_threads": 0, "placement_ok": False}
    allowed = sorted({c for a in threads.values() if a for c in parse_cpulist(a)})
    ok = plan is None or all(set(parse_cpulist(a)) <= set(plan) for a in threads.values() if a)
    return {**view, "allowed_cpus": format_cpulist(allowed), "os_threads": len(threads),
            "placement_ok": ok}


def describe(cfg: ServeConfig) -> dict[str, Any]:
    """Every worker slot's latest report, read back from /proc; ready when all are alive."""
    workers = []
    for slot in range(cfg.workers):
        path = _state_file(cfg, slot)
        if path.exists():
            workers.append(_worker_view(cfg, json.loads(path.read_text())))
    ready = len(workers) == cfg.workers and all(w["alive"] for w in workers)
    return {"status": "ok" if ready else "starting", "workers": workers,
            "placement_ok": ready and all(w["placement_ok"] for w in workers),
            "engine": cfg.engine, "threads_per_worker": cfg.threads}

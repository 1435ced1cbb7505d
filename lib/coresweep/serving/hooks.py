"""gunicorn hooks that give each worker its own CPU slice.

gunicorn has no per-worker affinity (its issue #1436 stalled), and its workers have no stable
index: ``pre_fork`` (in the master) gives the new worker the lowest slot no live worker holds, so
a replaced worker gets the slot — and the CPUs — of the one it replaces; ``post_fork`` (in the
worker, before the app and so onnxruntime are imported) sets the affinity mask of that slot.
"""

from __future__ import annotations

import os
from typing import Any

from coresweep.serving.config import SLOT_ENV, ServeConfig


def pre_fork(server: Any, worker: Any) -> None:
    taken = {getattr(w, "coresweep_slot", None) for w in server.WORKERS.values()}
    worker.coresweep_slot = next(i for i in range(len(taken) + 1) if i not in taken)


def post_fork(server: Any, worker: Any) -> None:
    slot = worker.coresweep_slot
    cpus = ServeConfig.read().cpus_of(slot)
    if cpus:
        os.sched_setaffinity(0, cpus)  # threads created from now on (ORT's pool) inherit it
    os.environ[SLOT_ENV] = str(slot)
    server.log.info("coresweep worker %s (pid %s) pinned to CPUs %s", slot, os.getpid(),
                    sorted(os.sched_getaffinity(0)))


def settings(cfg: ServeConfig) -> dict[str, Any]:
    """gunicorn settings for a plan (the study's stack: uvicorn workers, one model each)."""
    return {
        "bind": f"{cfg.host}:{cfg.port}",
        "workers": cfg.workers,
        "worker_class": "uvicorn_worker.UvicornWorker",
        "timeout": int(cfg.timeout_s),
        "graceful_timeout": 10,
        "max_requests": cfg.max_requests,
        "max_requests_jitter": cfg.max_requests_jitter,
        "preload_app": False,  # load the model after fork, in each pinned worker
        "pre_fork": pre_fork,
        "post_fork": post_fork,
    }

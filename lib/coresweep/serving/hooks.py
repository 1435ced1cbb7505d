"""gunicorn hooks that give each worker its own CPU slice (and, behind HAProxy, its own port),
and the uvicorn worker class the written gunicorn.conf.py names.

gunicorn has no per-worker affinity (its issue #1436 stalled), and its workers have no stable
index: ``pre_fork`` (in the master) gives the new worker the lowest slot no live worker holds, so
a replaced worker gets the slot — the CPUs and the port — of the one it replaces; ``post_fork``
(in the worker, before the app and so onnxruntime are imported) sets the affinity mask of that
slot and, with HAProxy dispatch, keeps only that slot's listening socket (the master binds one
port per slot: HAProxy sends each worker one request at a time on its own port).
"""

from __future__ import annotations

import os
from typing import Any

from coresweep.serving.config import SLOT_ENV, ServeConfig

# uvicorn's gunicorn worker with its event loop and HTTP parser fixed (asyncio, h11): the plain
# UvicornWorker's "auto" switches to uvloop/httptools whenever another package installs them, and
# the measured server would not be the deployed one.
WORKER_CLASS = "uvicorn_worker.UvicornH11Worker"


def pre_fork(server: Any, worker: Any) -> None:
    taken = {getattr(w, "coresweep_slot", None) for w in server.WORKERS.values()}
    worker.coresweep_slot = next(i for i in range(len(taken) + 1) if i not in taken)


def post_fork(server: Any, worker: Any) -> None:
    slot = worker.coresweep_slot
    cfg = ServeConfig.read()
    cpus = cfg.cpus_of(slot)
    if cpus:
        os.sched_setaffinity(0, cpus)  # threads created from now on (ORT's pool) inherit it
    os.environ[SLOT_ENV] = str(slot)
    if cfg.dispatch == "haproxy":
        port = cfg.port_of(slot)
        worker.sockets = [s for s in worker.sockets if _port(s) == port]
    server.log.info("coresweep worker %s (pid %s) pinned to CPUs %s, serving %s", slot,
                    os.getpid(), sorted(os.sched_getaffinity(0)),
                    ", ".join(str(s) for s in worker.sockets))


def _port(listener: Any) -> int | None:
    addr = listener.sock.getsockname()
    return addr[1] if isinstance(addr, tuple) else None

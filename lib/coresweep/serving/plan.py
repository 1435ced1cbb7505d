"""Serving plans: W workers × T threads on this machine's usable cores, pinned to disjoint slices
or left unpinned, and the ServeConfig that runs one."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from coresweep.errors import PlacementError
from coresweep.serving.config import ServeConfig


@dataclass(frozen=True)
class ServePlan:
    """One way to deploy: ``workers`` processes × ``threads`` intra-op threads (None = ORT's
    default count), each pinned to its own slice or not, reached through ``dispatch`` (see
    config.DISPATCHES), with extra environment (``env``, e.g. the study's OMP_NUM_THREADS) and
    gunicorn's recycling (``max_requests``, jitter a tenth of it); ``batch`` > 1: each worker
    decodes up to that many requests together (continuous batching). ``role`` says what the plan
    is for in the study (e.g. ``{"control": "study"}``); it is not part of the key."""

    workers: int
    threads: int | None
    pinned: bool = True
    role: dict[str, Any] = field(default_factory=dict)
    dispatch: str = "haproxy"
    env: dict[str, str] = field(default_factory=dict)
    max_requests: int = 0
    batch: int = 1

    @property
    def label(self) -> str:
        t = "ORT-default" if self.threads is None else str(self.threads)
        return (f"{self.workers}x{t}" + ("" if self.batch == 1 else f" batch {self.batch}")
                + ("" if self.pinned else " unpinned")
                + ("" if self.dispatch == "haproxy" else f" {self.dispatch}"))

    def key(self) -> str:
        fields = {"workers": self.workers, "threads": self.threads, "pinned": self.pinned,
                  "dispatch": self.dispatch, "env": self.env, "max_requests": self.max_requests}
        if self.batch != 1:  # keyed only when set: the keys of earlier plans stay
            fields["batch"] = self.batch
        blob = json.dumps(fields, sort_keys=True)
        return "s" + hashlib.sha256(blob.encode()).hexdigest()[:11]

    def config(self, model_dir: str, topo: Any, **kw: Any) -> ServeConfig:
        """The ServeConfig that serves this plan (``kw``: port, state_dir, model_name, ...)."""
        return ServeConfig(model_dir=str(model_dir), workers=self.workers, threads=self.threads,
                           slices=self.slices(topo), dispatch=self.dispatch, env=dict(self.env),
                           max_requests=self.max_requests,
                           max_requests_jitter=self.max_requests // 10, batch=self.batch, **kw)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label, "key": self.key()}

    def slices(self, topo: Any) -> list[list[int]] | None:
        """Each worker's CPUs (PlacementError when the plan does not fit); None when unpinned."""
        from coresweep.machine.partition import partition

        if not self.pinned:
            if self.workers > len(topo.allowed):
                raise PlacementError(f"{self.workers} workers on {len(topo.allowed)} usable "
                                     f"CPUs; valid worker counts: 1..{len(topo.allowed)}")
            return None
        return [list(s.cpus) for s in partition(topo, self.workers, self.threads)]


def auto_threads(topo: Any, workers: int) -> int:
    """Threads per worker when asked for "auto": the physical cores of the smallest slice."""
    from coresweep.machine.partition import partition

    return max(1, min(s.cores for s in partition(topo, workers)))


def serve_config(model: str, precision: str = "int4", *, workers: int = 1,
                 threads: int | str | None = "auto", pinned: bool = True, runtime: str = "ort",
                 topo: Any = None, **kw: Any) -> ServeConfig:
    """The ServeConfig of a plan on this machine: slices made and every value checked before
    the model is resolved (a preset is built if missing) and before any server starts. ``kw``:
    the other ServeConfig fields (host, port, dispatch, max_queue, ...)."""
    from coresweep.engines import model_format
    from coresweep.machine.topology import read_topology
    from coresweep.models import resolve_model

    topo = topo if topo is not None else read_topology()
    if workers < 1:
        raise PlacementError(f"workers must be at least 1, got {workers}")
    if threads == "auto":
        threads = auto_threads(topo, workers) if pinned else max(1, len(topo.allowed) // workers)
    slices = ServePlan(workers, threads, pinned).slices(topo)
    cfg = ServeConfig(model_dir="", workers=workers, threads=threads, slices=slices,
                      runtime=runtime, model_name=str(model), **kw)
    cfg.check()
    cfg.model_dir = str(resolve_model(model, precision, build=True, fmt=model_format(runtime)))
    return cfg

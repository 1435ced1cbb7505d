"""What one server runs: model, runtime, W workers × T threads, each worker's CPUs, and how
requests reach the workers (the dispatch). Written as JSON for the supervisor, the gunicorn
master and its workers (``CORESWEEP_SERVE_CONFIG`` holds the file's path or the JSON itself)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coresweep.errors import CoresweepError

ENV = "CORESWEEP_SERVE_CONFIG"
SLOT_ENV = "CORESWEEP_WORKER_SLOT"
STATE_ENV = "CORESWEEP_STATE_DIR"
DEFAULT_STATE_DIR = "/tmp/coresweep-serve"  # a deployment's default; `coresweep serve` sets its own

# How a request reaches a worker (docs/architecture.md, "Serving: dispatch"):
#   haproxy       - load-aware: HAProxy in front, `balance leastconn`, `maxconn 1` per worker
#                   port, one bounded queue (max_queue, then 503 + Retry-After). The default.
#   shared-socket - the motivating study's setup: every uvicorn worker accepts on one socket
#                   (not load-aware: a generating worker keeps accepting).
#   prefork       - gunicorn's sync workers on one socket: only an idle worker accepts; the
#                   queue is the kernel's listen backlog (no 503, no queue depth).
DISPATCHES = ("haproxy", "shared-socket", "prefork")
PORT_RANGE = (1, 65535)


@dataclass
class ServeConfig:
    model_dir: str
    workers: int
    threads: int | None  # intra-op threads per worker; None = ORT's default count
    slices: list[list[int]] | None  # CPUs per worker slot; None = unpinned
    runtime: str = "ort"  # engines.RUNTIMES (llamacpp: model_dir holds the GGUF)
    host: str = "127.0.0.1"
    port: int = 8000
    dispatch: str = "haproxy"
    worker_ports: list[int] = field(default_factory=list)  # haproxy: one per worker; [] = port+1+i
    max_queue: int = 16  # haproxy: at most this many wait for a worker; more get 503 at once
    request_timeout_s: float = 600.0  # longest wait in the queue, and longest generation
    drain_timeout_s: float = 60.0  # SIGTERM: in-flight and queued requests get this long
    state_dir: str = ""  # where workers report themselves for /health ("" = a new temp folder)
    max_requests: int = 0  # gunicorn's recycling (the study's advice: 100 with jitter 10)
    max_requests_jitter: int = 0
    env: dict[str, str] = field(default_factory=dict)  # e.g. the study's OMP_NUM_THREADS
    model_name: str = ""
    batch: int = 1  # requests one worker decodes together (HAProxy sends it up to this many)
    batching: str = "continuous"  # batcher.POLICIES: join between steps, or wait for the batch
    batch_window_s: float = 0.02  # an empty batch waits this long for more requests to join

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, source: str | Path | None = None) -> ServeConfig:
        """From a JSON file, or JSON text (a written gunicorn.conf.py sets the text itself)."""
        raw = str(source or os.environ[ENV])
        text = raw if raw.lstrip().startswith("{") else Path(raw).read_text()
        fields = json.loads(text)
        if "engine" in fields:  # written before `engine` was renamed `runtime`
            fields["runtime"] = fields.pop("engine")
        return cls(**fields)

    def cpus_of(self, slot: int) -> list[int] | None:
        return None if self.slices is None else list(self.slices[slot])

    def port_of(self, slot: int) -> int:
        """The port worker ``slot`` listens on behind HAProxy."""
        return self.worker_ports[slot] if self.worker_ports else self.port + 1 + slot

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def check(self) -> None:
        """CoresweepError naming the bad field and its valid values; called before any start."""
        if self.dispatch not in DISPATCHES:
            raise CoresweepError(f"dispatch {self.dispatch!r} is not known; valid choices: "
                                 f"{', '.join(DISPATCHES)}")
        if self.workers < 1:
            raise CoresweepError(f"workers must be at least 1, got {self.workers}")
        ports = [self.port] + ([self.port_of(i) for i in range(self.workers)]
                               if self.dispatch == "haproxy" else [])
        lo, hi = PORT_RANGE
        bad = [p for p in ports if not lo <= p <= hi]
        if bad:
            what = "port" if bad[0] == self.port else "worker port"
            raise CoresweepError(f"{what} {bad[0]} is out of range; valid ports: {lo}..{hi}"
                                 + ("" if what == "port" else f" (workers use port+1 .. "
                                    f"port+{self.workers})"))
        if len(set(ports)) != len(ports):
            raise CoresweepError(f"ports {ports} repeat: the front port and each worker's port "
                                 "must differ")
        self._check_batch()
        if self.max_queue < 1:
            raise CoresweepError(f"max_queue (--max-queue) must be at least 1, got "
                                 f"{self.max_queue}")
        for name, flag in (("request_timeout_s", "--request-timeout"),
                           ("drain_timeout_s", "--drain-timeout")):
            if not getattr(self, name) > 0:
                raise CoresweepError(f"{name} ({flag}) must be a positive number of seconds, "
                                     f"got {getattr(self, name)}")

    def _check_batch(self) -> None:
        from coresweep.engines.base import check_batch
        from coresweep.serving.batcher import POLICIES

        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1:
            raise CoresweepError(f"batch (--batch) must be a whole number >= 1, got {self.batch!r}")
        if self.batching not in POLICIES:
            raise CoresweepError(f"batching {self.batching!r} is not known; valid choices: "
                                 f"{', '.join(POLICIES)}")
        if not self.batch_window_s >= 0:
            raise CoresweepError(f"batch_window_s (--batch-window) must be 0 or more seconds, got "
                                 f"{self.batch_window_s}")
        if self.batch > 1 and self.dispatch == "prefork":
            raise CoresweepError("batch > 1 needs the asyncio workers: dispatch prefork's sync "
                                 "workers serve one request at a time; valid dispatches with a "
                                 "batch: haproxy, shared-socket")
        check_batch(self.runtime, self.batch, serving=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


"""What one server runs: model, engine, W workers × T threads and each worker's CPUs. Written as
JSON for the gunicorn master and its workers (``CORESWEEP_SERVE_CONFIG`` names the file)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENV = "CORESWEEP_SERVE_CONFIG"
SLOT_ENV = "CORESWEEP_WORKER_SLOT"


@dataclass
class ServeConfig:
    model_dir: str
    workers: int
    threads: int | None  # intra-op threads per worker; None = ORT's default count
    slices: list[list[int]] | None  # CPUs per worker slot; None = unpinned
    engine: str = "ort"
    host: str = "127.0.0.1"
    port: int = 8000
    state_dir: str = ""  # where workers report themselves for /health
    timeout_s: float = 600.0  # gunicorn worker timeout (a long generation is not a hang)
    max_requests: int = 0  # gunicorn's recycling (the study's advice: 100 with jitter 10)
    max_requests_jitter: int = 0
    model_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, source: str | Path | None = None) -> ServeConfig:
        """From a JSON file, or JSON text (a printed gunicorn.conf.py sets the text itself)."""
        raw = str(source or os.environ[ENV])
        text = raw if raw.lstrip().startswith("{") else Path(raw).read_text()
        return cls(**json.loads(text))

    def cpus_of(self, slot: int) -> list[int] | None:
        return None if self.slices is None else list(self.slices[slot])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

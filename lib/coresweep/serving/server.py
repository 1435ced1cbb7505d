"""Running the server: gunicorn in the foreground (``coresweep serve``), a printable
``gunicorn.conf.py`` for any plan, and `ServerProcess`, the handle the serving study and the tests
use to start a server in its own process group, wait until every worker is up, and stop it with
nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.serving.config import ENV, ServeConfig


def serve(cfg: ServeConfig) -> None:
    """Run gunicorn with the plan's workers in this process (returns when it stops)."""
    from gunicorn.app.base import BaseApplication

    from coresweep.serving.hooks import settings

    class _App(BaseApplication):
        def load_config(self) -> None:
            for k, v in settings(cfg).items():
                self.cfg.set(k, v)

        def load(self) -> Any:  # in the worker, after post_fork pinned it
            from coresweep.serving.app import create_app

            return create_app(cfg)

    if not cfg.state_dir:
        cfg.state_dir = tempfile.mkdtemp(prefix="coresweep-serve-")
    path = cfg.write(Path(cfg.state_dir) / "serve.json")
    os.environ[ENV] = str(path)
    _App().run()


_CONF = '''"""gunicorn.conf.py written by `coresweep serve --print-config`: {workers} worker(s) x {threads}
intra-op thread(s), each pinned to its own CPUs before it imports onnxruntime.

Run: gunicorn -c gunicorn.conf.py   (coresweep must be installed: the app and hooks are its own)
"""
import json
import os

from coresweep.serving.hooks import post_fork, pre_fork  # noqa: F401  (gunicorn reads them)

PLAN = {plan}
os.environ["{env}"] = json.dumps(PLAN)  # the workers read their slice and model from it

wsgi_app = "coresweep.serving.app:create_app()"
bind = "{host}:{port}"
workers = {workers}
worker_class = "uvicorn_worker.UvicornWorker"
timeout = {timeout}
graceful_timeout = 10
preload_app = False  # load the model after fork, in each pinned worker
max_requests = {max_requests}
max_requests_jitter = {max_requests_jitter}
'''


def print_config(cfg: ServeConfig) -> str:
    """A ready-to-use gunicorn.conf.py for the plan (slices and model inlined)."""
    import pprint
    from dataclasses import asdict

    plan = pprint.pformat({**asdict(cfg), "state_dir": cfg.state_dir or "/tmp/coresweep-serve"},
                          sort_dicts=False)
    return _CONF.format(workers=cfg.workers, threads=cfg.threads or "ORT-default", plan=plan,
                        env=ENV, host=cfg.host, port=cfg.port, timeout=int(cfg.timeout_s),
                        max_requests=cfg.max_requests,
                        max_requests_jitter=cfg.max_requests_jitter)


class ServerProcess:
    """A server in a child process group: ``with ServerProcess(cfg) as srv: srv.url ...``."""

    def __init__(self, cfg: ServeConfig, *, ready_timeout_s: float = 300.0,
                 log: str | Path | None = None):
        self.cfg, self.ready_timeout_s = cfg, ready_timeout_s
        if not cfg.state_dir:
            cfg.state_dir = tempfile.mkdtemp(prefix="coresweep-serve-")
        Path(cfg.state_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log) if log else Path(cfg.state_dir) / "server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.cfg.url

    def __enter__(self) -> ServerProcess:
        path = self.cfg.write(Path(self.cfg.state_dir) / "serve.json")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "coresweep.serving", str(path)], stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def health(self) -> dict[str, Any] | None:
        import httpx

        try:
            return httpx.get(f"{self.url}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return None

    def wait_ready(self) -> dict[str, Any]:
        """Until /health says every worker is up; CoresweepError with the log's tail if not."""
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CoresweepError(f"server exited with {self.proc.returncode}: {self.tail()}")
            h = self.health()
            if h and h.get("status") == "ok":
                return h
            time.sleep(0.2)
        raise CoresweepError(f"server not ready after {self.ready_timeout_s:g} s: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM to the master (gunicorn stops its workers), then SIGKILL to the whole group."""
        if self.proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group go too
        if rc is None:
            rc = self.proc.wait()
        return rc

"""Running the server: ``coresweep serve`` writes the plan's deployment (deploy.py: gunicorn.conf.py,
haproxy.cfg, run.sh) and runs its run.sh in the foreground; `ServerProcess` is the handle the
serving study, the benches and the tests use to start one in its own process group, wait until
every worker is up (and in the dispatcher's rotation), and stop it with nothing left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.measurement.process import kill_group, launch
from coresweep.serving.config import STATE_ENV, ServeConfig

HAPROXY_MISSING = ("HAProxy is not installed, and dispatch 'haproxy' (the default: load-aware) "
                   "needs it: install Debian's haproxy (as root: apt-get install haproxy, or "
                   "`make tools`), or choose --dispatch shared-socket (the study's setup, not "
                   "load-aware)")


def haproxy_path() -> str | None:
    """The haproxy binary to run (CORESWEEP_HAPROXY overrides PATH), None when there is none."""
    return shutil.which(os.environ.get("CORESWEEP_HAPROXY", "haproxy"))


def check_can_serve(cfg: ServeConfig) -> None:
    """Every check that needs no server: the config's values, and HAProxy where it is needed."""
    cfg.check()
    cfg.model_dir = os.path.abspath(cfg.model_dir)  # run.sh runs in the state folder
    if cfg.dispatch == "haproxy" and haproxy_path() is None:
        raise CoresweepError(HAPROXY_MISSING)


def check_ports_free(cfg: ServeConfig) -> None:
    """CoresweepError when the server's port (or a worker's, behind HAProxy) cannot be bound."""
    ports = [(cfg.host, cfg.port)] + ([("127.0.0.1", cfg.port_of(i)) for i in range(cfg.workers)]
                                      if cfg.dispatch == "haproxy" else [])
    for host, port in ports:
        try:
            with socket.create_server((host, port)):
                pass
        except OSError as exc:
            raise CoresweepError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                 "choose another --port (or --host)") from None


def write_deployment(cfg: ServeConfig, folder: str | Path) -> Path:
    """The plan's deployment files in ``folder`` (run.sh executable); returns run.sh's path."""
    from coresweep.serving.deploy import deployment_files

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in deployment_files(cfg).items():
        (folder / name).write_text(text)
    run = folder / "run.sh"
    run.chmod(0o755)
    return run


def serve(cfg: ServeConfig) -> None:
    """Write the plan's deployment into its state folder and become its run.sh (exec): what
    runs is exactly the files a report hands out. Does not return."""
    check_can_serve(cfg)
    if not cfg.state_dir:
        cfg.state_dir = tempfile.mkdtemp(prefix="coresweep-serve-")
    run = write_deployment(cfg, cfg.state_dir)
    os.environ.update({STATE_ENV: cfg.state_dir, "PYTHON": sys.executable})
    if cfg.dispatch == "haproxy":
        os.environ["HAPROXY"] = haproxy_path() or "haproxy"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp("bash", ["bash", str(run)])


def print_config(cfg: ServeConfig) -> str:
    """The plan's gunicorn.conf.py (`deploy.deployment_files` gives every file of it)."""
    from coresweep.serving.deploy import deployment_files

    return deployment_files(cfg)["gunicorn.conf.py"]


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
        check_can_serve(self.cfg)
        path = self.cfg.write(Path(self.cfg.state_dir) / "serve.json")
        with open(self.log_path, "ab") as log:
            self.proc = launch([sys.executable, "-m", "coresweep.serving", str(path)],
                               stdout=log, stderr=subprocess.STDOUT)
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
        """SIGTERM to run.sh (it drains: the dispatcher first, then gunicorn), then SIGKILL to
        whatever of the process group is left."""
        if self.proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        kill_group(self.proc)  # stragglers of the group go too
        if rc is None:
            rc = self.proc.wait()
        return rc

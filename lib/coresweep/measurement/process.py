"""Child processes, the one way coresweep starts them: in their own session (process group), so
that on the way out — finished, timed out, interrupted or crashed — the whole group is killed
and nothing outlives the parent (pyperf's ``popen_killer``). ``launch`` starts one, ``killing``
is the cleanup context, ``run_group`` runs a command to its end or its deadline; the trial
worker (``WorkerProcess``), the bandwidth probe and the server all use them.

``WorkerProcess`` handles one trial worker: its JSON payload on stdin, its protocol events
streamed with a deadline, the exit status and the end of its stderr kept."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def launch(cmd: list[str], *, stdin: Any = None, stdout: Any = None, stderr: Any = None,
           env: dict[str, str] | None = None, text: bool = False) -> subprocess.Popen:
    """Start ``cmd`` in its own session: its process group is its own to kill."""
    return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=stderr, env=env, text=text,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to ``proc``'s whole process group (gone already: nothing to do)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def killing(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``with killing(launch(cmd)) as p: ...``: however the block ends, the group is killed and
    ``p`` reaped (pyperf's popen_killer)."""
    try:
        yield proc
    finally:
        kill_group(proc)
        proc.wait()


def run_group(cmd: list[str], timeout_s: float) -> tuple[int | None, str, str]:
    """Run ``cmd`` to its end: (returncode, stdout, stderr); at the deadline the whole group is
    killed and the returncode is None."""
    with killing(launch(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)) as p:
        try:
            out, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(p)
            out, err = p.communicate()
            return None, out, err
        return p.returncode, out, err


def worker_command() -> list[str]:
    return [sys.executable, "-m", "coresweep.measurement.worker"]


def oom_kills() -> int | None:
    """cgroup v2 oom_kill counter for our cgroup, when readable."""
    try:
        cg = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        f = Path("/sys/fs/cgroup") / cg.lstrip("/") / "memory.events"
        if not f.exists():
            f = Path("/sys/fs/cgroup/memory.events")
        for line in f.read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


class WorkerProcess:
    """``with WorkerProcess(payload, timeout_s) as w: for event in w.events(): ...``; after the
    block: ``w.returncode``, ``w.stderr_tail``, ``w.timed_out``, ``w.wall_s``."""

    def __init__(self, payload: dict[str, Any], timeout_s: float | None = None,
                 env: dict[str, str] | None = None, command: list[str] | None = None):
        self.payload, self.timeout_s = payload, timeout_s
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.command = command or worker_command()
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.stderr_tail = ""
        self.timed_out = False
        self.t0 = 0.0
        self.wall_s = 0.0
        self.oom_before = oom_kills()
        self._stderr = tempfile.TemporaryFile(mode="w+b")
        self._lines: queue.Queue = queue.Queue()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> WorkerProcess:
        self.t0 = time.monotonic()
        self.proc = launch(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=self._stderr, env=self.env)
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(json.dumps(self.payload).encode())
            self.proc.stdin.close()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        return self

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            self._lines.put(raw)
        self._lines.put(None)

    def events(self) -> Iterator[dict[str, Any]]:
        """Protocol events until the worker closes its output or the deadline passes."""
        deadline = None if not self.timeout_s else self.t0 + self.timeout_s
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = self._lines.get(timeout=wait)
            except queue.Empty:
                self.timed_out = True
                return
            if raw is None:
                return
            try:
                msg = json.loads(raw)
            except ValueError:
                continue  # not a protocol line
            if isinstance(msg, dict) and "event" in msg:
                yield msg

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None or self.timed_out:
            kill_group(self.proc)  # an interrupt, a callback error or a time-out: nothing survives
        try:
            self.returncode = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.returncode = self.proc.wait()
        kill_group(self.proc)  # stragglers of the worker's group (e.g. helper processes) go too
        self.wall_s = time.monotonic() - self.t0
        self._stderr.seek(0)
        self.stderr_tail = self._stderr.read()[-4000:].decode("utf-8", "replace")
        self._stderr.close()


def failure_reason(rc: int | None, error: str | None, finished: bool, *, timed_out: bool,
                   timeout_s: float | None, oom_before: int | None,
                   oom_after: int | None) -> tuple[str, str] | None:
    """(status, reason) of a failed worker, or None when it finished well: one way to say why."""
    if timed_out:
        return "timeout", f"timeout after {timeout_s:g} s: process group killed"
    if rc == 0 and not error and finished:
        return None
    if error:
        return "failed", f"worker error: {error}"
    if rc is not None and rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if rc == -signal.SIGKILL and oom_before is not None and (oom_after or 0) > oom_before:
            return "failed", f"killed by {name}: out of memory (cgroup oom_kill count rose)"
        return "failed", f"killed by {name}"
    return "failed", f"worker exited with code {rc} before finishing"

"""SMT (hyper-threading) modes for a trial.

- ``placement`` (default): SMT is emulated by the plan. "off" = one CPU per physical core
  (strategy "physical"), "on" = sibling CPUs used (strategy "smt"). Works without privileges on
  any machine that has siblings; on a machine without SMT, "on" points are skipped.
- ``sysfs``: the kernel switch ``<root>/sys/devices/system/cpu/smt/control`` is written ("on"/"off",
  root only), ``smt/active`` is checked to confirm, and the previous state is restored on normal
  exit, on an exception, on SIGINT and on SIGTERM. ``root`` is injectable so tests drive a fake tree.
- ``notsupported`` / absent control file: the point is skipped with that reason recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError

MODES = ("placement", "sysfs")
STATES = ("on", "off")


class SmtError(CoresweepError):
    """The SMT state cannot be set or verified."""


class SmtControl:
    """Reads and writes <root>/sys/devices/system/cpu/smt/{control,active}."""

    def __init__(self, root: str | Path = "/"):
        self.root = Path(root)
        self.dir = self.root / "sys/devices/system/cpu/smt"
        self.control = self.dir / "control"
        self.active = self.dir / "active"

    def read_control(self) -> str | None:
        try:
            return self.control.read_text().strip()
        except OSError:
            return None

    def read_active(self) -> bool | None:
        try:
            return self.active.read_text().strip() == "1"
        except OSError:
            return None

    def unsupported_reason(self) -> str | None:
        """Why sysfs mode cannot be used here, or None."""
        c = self.read_control()
        if c is None:
            return f"SMT control {self.control} is absent"
        if c in ("notsupported", "notimplemented", "forceoff"):
            return f"SMT control {self.control} = {c}"
        if not os.access(self.control, os.W_OK):
            return f"SMT control {self.control} is not writable (sysfs mode needs root)"
        return None

    def set(self, state: str, *, timeout_s: float = 5.0) -> None:
        """Write `state` to smt/control and wait until smt/active agrees."""
        if state not in STATES:
            raise SmtError(f"unknown SMT state {state!r}; valid: {', '.join(STATES)}")
        why = self.unsupported_reason()
        if why:
            raise SmtError(why)
        try:
            self.control.write_text(state)
        except OSError as exc:
            raise SmtError(f"cannot write {state!r} to {self.control}: {exc}") from exc
        want = state == "on"
        deadline = time.monotonic() + timeout_s
        while self.read_active() != want:
            if time.monotonic() > deadline:
                raise SmtError(
                    f"wrote {state!r} to {self.control} but {self.active} still reads "
                    f"{self.read_active()!r}"
                )
            time.sleep(0.01)


@contextlib.contextmanager
def smt_state(state: str, root: str | Path = "/", *, timeout_s: float = 5.0) -> Iterator[SmtControl]:
    """Hold the kernel SMT switch at `state`; restore the previous value however the block ends.

    Restores on normal exit and exceptions (finally), on SIGINT/SIGTERM (signal handlers installed
    while the block runs, main thread only; the previous handler then runs, or the default action is
    re-raised) and at interpreter exit (atexit) as a last resort.
    """
    ctl = SmtControl(root)
    previous = ctl.read_control()
    if previous == state:
        yield ctl
        return
    restored = threading.Event()

    def restore() -> None:
        if restored.is_set():
            return
        restored.set()
        if previous in STATES:
            with contextlib.suppress(OSError):
                ctl.control.write_text(previous)

    installed: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        restore()
        prev = installed.get(signum, signal.SIG_DFL)
        signal.signal(signum, prev)
        if callable(prev):
            prev(signum, frame)
        elif prev != signal.SIG_IGN:
            os.kill(os.getpid(), signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            installed[sig] = signal.getsignal(sig)
            signal.signal(sig, handler)
    atexit.register(restore)
    try:
        ctl.set(state, timeout_s=timeout_s)
        yield ctl
    finally:
        restore()
        for sig, prev in installed.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        atexit.unregister(restore)


def skip_reason(cfg: Any, topo: Any = None, root: str | Path = "/") -> str | None:
    """Why a trial config's SMT setting cannot be run on this machine (recorded, not raised)."""
    if getattr(cfg, "smt", None) is None:
        return None
    if cfg.smt_mode == "sysfs":
        return SmtControl(root).unsupported_reason()
    if cfg.smt == "on":
        has = topo.has_smt() if topo is not None and hasattr(topo, "has_smt") else False
        if not has:
            ctl = SmtControl(root).read_control()
            return f"SMT not available on this machine (no sibling CPUs; smt/control = {ctl})"
    return None

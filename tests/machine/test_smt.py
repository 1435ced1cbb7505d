"""SMT sysfs mode against a fake sysfs tree: set, verify, and restore however the block ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from coresweep.machine.smt import SmtControl, SmtError, skip_reason, smt_state
from coresweep.measurement.trial import TrialConfig

SMT = "sys/devices/system/cpu/smt"

# Emulates the kernel: smt/active follows smt/control (what the real sysfs does by itself).
KERNEL = textwrap.dedent(
    """
    import threading, time
    from pathlib import Path

    def emulate_kernel(root, stop):
        d = Path(root) / "sys/devices/system/cpu/smt"
        while not stop.is_set():
            c = (d / "control").read_text().strip()
            want = "1" if c == "on" else "0"
            if (d / "active").read_text().strip() != want:
                (d / "active").write_text(want)
            time.sleep(0.002)
    """
)
ns: dict = {}
exec(KERNEL, ns)
emulate_kernel = ns["emulate_kernel"]


def fake_tree(root: Path, control: str = "on", active: str = "1") -> Path:
    d = root / SMT
    d.mkdir(parents=True)
    (d / "control").write_text(control + "\n")
    (d / "active").write_text(active + "\n")
    return root


@pytest.fixture
def kernel(tmp_path):
    root = fake_tree(tmp_path)
    stop = threading.Event()
    t = threading.Thread(target=emulate_kernel, args=(root, stop), daemon=True)
    t.start()
    yield root
    stop.set()
    t.join()


def test_set_and_restore_on_normal_exit(kernel):
    ctl = SmtControl(kernel)
    with smt_state("off", kernel) as c:
        assert c.read_control() == "off" and c.read_active() is False
    assert ctl.read_control() == "on"


def test_restore_after_exception(kernel):
    with pytest.raises(RuntimeError):
        with smt_state("off", kernel):
            raise RuntimeError("boom")
    assert SmtControl(kernel).read_control() == "on"


def test_signal_handlers_are_put_back(kernel):
    before = signal.getsignal(signal.SIGTERM)
    with smt_state("off", kernel):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_verification_failure_raises_and_restores(tmp_path):
    root = fake_tree(tmp_path)  # no kernel: active never follows
    with pytest.raises(SmtError, match="still reads"):
        with smt_state("off", root, timeout_s=0.2):
            pass
    assert SmtControl(root).read_control() == "on"


def test_notsupported_and_absent(tmp_path):
    root = fake_tree(tmp_path, control="notsupported", active="0")
    assert "notsupported" in SmtControl(root).unsupported_reason()
    with pytest.raises(SmtError, match="notsupported"):
        SmtControl(root).set("off")
    assert "absent" in SmtControl(tmp_path / "nowhere").unsupported_reason()
    cfg = TrialConfig(smt="off", smt_mode="sysfs")
    assert "notsupported" in skip_reason(cfg, None, root)
    assert skip_reason(TrialConfig(), None, root) is None
    with pytest.raises(SmtError, match="valid"):
        SmtControl(root).set("maybe")


class _NoSmt:
    def has_smt(self):
        return False


def test_placement_mode_skips_smt_on_without_siblings(tmp_path):
    root = fake_tree(tmp_path, control="notsupported", active="0")
    assert "no sibling" in skip_reason(TrialConfig(smt="on"), _NoSmt(), root)
    assert skip_reason(TrialConfig(smt="off"), _NoSmt(), root) is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_restore_after_signal(tmp_path, sig):
    root = fake_tree(tmp_path)
    code = KERNEL + textwrap.dedent(
        f"""
        import sys, threading
        from coresweep.machine.smt import smt_state
        stop = threading.Event()
        threading.Thread(target=emulate_kernel, args=({str(root)!r}, stop), daemon=True).start()
        with smt_state("off", {str(root)!r}):
            print("READY", flush=True)
            time.sleep(60)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "READY"
    assert (root / SMT / "control").read_text().strip() == "off"
    p.send_signal(sig)
    rc = p.wait(timeout=20)
    assert (root / SMT / "control").read_text().strip() == "on"
    if sig == signal.SIGTERM:
        assert rc == -signal.SIGTERM  # default action re-raised after restoring
    else:
        assert rc != 0  # KeyboardInterrupt
    time.sleep(0)

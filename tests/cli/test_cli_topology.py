"""`coresweep topology` on every captured tree and on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from coresweep.cli import main
from coresweep.machine.cpulist import format_cpulist
from coresweep.machine.topology import read_topology

FIX = Path(__file__).resolve().parents[1] / "fixtures"
MACHINES = sorted(p.name for p in FIX.iterdir() if (p / "sys").is_dir())


def run(capsys, *argv):
    code = main(["topology", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("machine", MACHINES)
def test_summary_on_fixture(capsys, machine):
    t = read_topology(FIX / machine)
    code, out, _ = run(capsys, "--sysfs", str(FIX / machine))
    assert code == 0
    assert t.model_name in out
    assert f"usable by this process {format_cpulist(t.allowed)}" in out
    assert f"budget {t.cgroup.budget:g} CPUs" in out
    header = next(ln for ln in out.splitlines() if ln.lstrip().startswith("CPU "))
    for col in ("ONLINE", "ALLOWED", "PKG", "DIE", "CORE", "SIBLINGS", "L2", "L3", "NODE", "KIND"):
        assert col in header
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == sorted(set(t.online) | set(t.offline))
    for row in rows:
        cpu = int(row[0])
        if cpu in t.cpus:
            assert row[1] == "yes" and row[6] == format_cpulist(t.siblings(cpu))
            assert row[2] == ("yes" if cpu in t.allowed else "no")
        else:
            assert row[1] == "no"


@pytest.mark.parametrize("machine", MACHINES)
def test_json_on_fixture(capsys, machine):
    code, out, _ = run(capsys, "--json", "--sysfs", str(FIX / machine))
    assert code == 0
    d = json.loads(out)
    t = read_topology(FIX / machine)
    assert d["online"] == format_cpulist(t.online)
    assert d["counts"]["physical_cores"] == t.physical_core_count()
    assert d["cgroup"]["budget"] == pytest.approx(t.cgroup.budget)
    assert set(d["cpus"]) == {str(c) for c in t.online}


def test_hybrid_summary_shows_kinds(capsys):
    _, out, _ = run(capsys, "--sysfs", str(FIX / "hybrid-i7-12700h"))
    assert "P-cores CPUs 0-11, E-cores CPUs 12-19" in out
    assert "14 cores (6 with 2 threads, 8 with 1 thread)" in out
    assert "2 x 2 MiB (shared by 4 cores" in out


def test_container_summary_shows_budget(capsys):
    _, out, _ = run(capsys, "--sysfs", str(FIX / "container-cgv2-quota"))
    assert "cpuset 2-5; quota 250000/100000 us; budget 2.5 CPUs" in out
    assert "no SMT here" in out


def test_plan_option(capsys):
    code, out, _ = run(capsys, "--sysfs", str(FIX / "laptop-i7-11800h"), "--plan", "smt", "--threads", "4")
    assert code == 0 and "0,8,1,9" in out and "'9;2;10'" in out
    code, out, _ = run(capsys, "--json", "--sysfs", str(FIX / "server-2s-xeon-6226r"),
                       "--plan", "scatter", "--threads", "2")
    assert json.loads(out)["plan"]["cpus"] == [0, 16]


def test_errors_are_clear(capsys):
    code, _, err = run(capsys, "--sysfs", str(FIX / "laptop-i7-11800h"), "--plan", "pcore", "--threads", "2")
    assert code == 2 and "not hybrid" in err
    code, _, err = run(capsys, "--plan", "physical")
    assert code == 2 and "--threads" in err
    code, _, err = run(capsys, "--sysfs", "/nonexistent-root")
    assert code == 2 and "--sysfs: '/nonexistent-root': no such folder" in err
    code, _, err = run(capsys, "--sysfs", str(FIX))  # a folder, but not a captured tree
    assert code == 2 and "sys/devices/system/cpu" in err


def test_live_machine(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "SIBLINGS" in out
    code, out, _ = run(capsys, "--json")
    d = json.loads(out)
    assert d["counts"]["logical_cpus"] == os.cpu_count()
    assert set(map(int, d["cpus"])) >= set(os.sched_getaffinity(0)) & set(map(int, d["cpus"]))
    code, out, _ = run(capsys, "--json", "--fingerprint")
    fp = json.loads(out)
    assert fp["topology"]["allowed"] and fp["versions"]["python"] and fp["machine"]


def test_capture_then_read(capsys, tmp_path):
    code, out, _ = run(capsys, "--capture", str(tmp_path / "me"))
    assert code == 0 and "captured" in out
    code, out, _ = run(capsys, "--json", "--sysfs", str(tmp_path / "me"))
    assert json.loads(out)["online"] == format_cpulist(read_topology("/").online)


def test_console_entry_point():
    """python -m coresweep topology works as a separate process."""
    out = subprocess.run(
        [sys.executable, "-m", "coresweep", "topology", "--sysfs", str(FIX / "vm-2vcpu")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "AMD EPYC" in out.stdout

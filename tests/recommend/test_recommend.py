"""Emitted configurations parse and, applied in a fresh process, give the placement they claim
(read back from /proc)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from coresweep.machine.cpulist import parse_cpulist
from coresweep.models import inspect_model
from coresweep.recommend.configs import Deployment, all_formats, python, shell

CPUS = sorted(os.sched_getaffinity(0))
READ_BACK = ("import json, os\n"
             "from coresweep.measurement.procfs import read_threads\n"
             "print(json.dumps([t['allowed'] for t in read_threads('self')]))\n")


def _allowed_per_thread(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) missing")
def test_shell_line_pins_the_command():
    d = Deployment(threads=1, cpus=(CPUS[-1],), env={"OMP_NUM_THREADS": "1"})
    line = shell(d, command=f"{sys.executable} -c 'import os; print(sorted(os.sched_getaffinity(0)),"
                            " os.environ[\"OMP_NUM_THREADS\"])'")
    assert line.startswith("OMP_NUM_THREADS=1 taskset -c ")
    out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [f"[{CPUS[-1]}]", "1"]


def test_numactl_line_when_memory_follows_the_cpus():
    d = Deployment(threads=2, cpus=(0, 1), numa_node=0)
    assert shell(d, "serve").startswith("numactl --physcpubind=0-1 --membind=0 serve")


@pytest.mark.parametrize("pin", [False, True])
def test_python_config_gives_the_claimed_threads_and_cpus(tiny_int4, pin):
    threads = min(2, len(CPUS))
    d = Deployment(threads=threads, cpus=tuple(CPUS[:threads]), pin_threads=pin, spinning=False)
    code = python(d, str(inspect_model(tiny_int4).onnx_path)) + "\n" + READ_BACK
    allowed = _allowed_per_thread(code)
    assert len(allowed) >= threads  # the calling thread + threads-1 pool threads
    for a in allowed:  # every thread stays inside the claimed CPUs
        assert set(parse_cpulist(a)) <= set(d.cpus), (a, d.cpus)
    if pin and threads > 1:  # ORT pinned its pool thread to the plan's next CPU
        assert str(d.cpus[1]) in allowed


def test_genai_options_parse_and_say_the_thread_count():
    d = Deployment(threads=3, cpus=(0, 1, 2))
    cfg = json.loads(all_formats(d)["genai_config.json"])
    opts = cfg["model"]["decoder"]["session_options"]
    assert opts["intra_op_num_threads"] == 3 and opts["inter_op_num_threads"] == 1
    assert Deployment(threads=3, cpus=(0, 1, 2), pin_threads=True).ort_affinities() == "2;3"

"""Every command's bad input is one clear line, never a traceback (`coresweep serve` is tested
with the server). Each case runs the real command line in a fresh process, from an empty folder,
and needs no model: every value is refused before any model, trial or file is touched.

Placeholders in the arguments: {file} an existing file, {dir} an empty folder, {foreign} a folder
holding someone else's file, {missing} a path that does not exist, {unwritable} a path under
/proc (refused even to root), {run} / {run2} captured run folders, {archive} an exported run,
{no_cpu} / {no_node} a CPU id / NUMA node this machine does not have, {quick} params/quick.yaml.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _machine import topology

REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "tests" / "fixtures" / "runs"

# (arguments, what the one error line must name: the flag, or the value of a positional)
BAD = [
    # run
    (["run", "{missing}"], "params"),
    (["run", "{dir}"], "params"),
    (["run", "{quick}", "--out", "{file}"], "--out"),  # was FileExistsError
    (["run", "{quick}", "--out", "{unwritable}"], "--out"),
    (["run", "{quick}", "--out", "{foreign}"], "--out"),
    (["run", "{quick}", "--notebooks"], "--notebooks"),
    (["run", "{quick}", "--notebooks", "99"], "--notebooks"),
    (["run", "{quick}", "-p", "reps=0"], "-p"),
    (["run", "{quick}", "-p", "bogus=1"], "-p"),
    (["run", "{quick}", "-p", "threads=[]"], "-p"),
    (["run", "{quick}", "-p", "timeout_s=1e300"], "-p"),
    (["run", "{quick}", "-p", "placement=numa:{no_node}"], "'placement'"),
    # report and params
    (["report"], "RUN_DIR"),  # nothing under ./reports to re-render
    (["report", "{dir}"], "RUN_DIR"),
    (["report", "{file}"], "RUN_DIR"),
    (["report", "{missing}"], "RUN_DIR"),
    (["params", "{missing}"], "params"),
    (["params", "-p", "precision=int3"], "-p"),
    (["params", "--markdown", "-p", "reps=2"], "--markdown"),
    # trial
    (["trial", "--model", "tiny"], "--threads"),
    (["trial", "--threads", "0"], "--threads"),
    (["trial", "--threads", "many"], "--threads"),
    (["trial", "--threads", "99999"], "--threads"),
    (["trial", "--threads", "1", "--cpus", ""], "--cpus"),
    (["trial", "--threads", "1", "--cpus", "0-99999999"], "--cpus"),
    (["trial", "--threads", "1", "--cpus", "{no_cpu}"], "--cpus"),
    (["trial", "--threads", "1", "--cpus", "0", "--placement", "physical"], "--placement"),
    (["trial", "--threads", "1", "--placement", "bogus"], "--placement"),
    (["trial", "--threads", "1", "--placement", "numa:{no_node}"], "--placement"),
    (["trial", "--threads", "1", "--processes", "0"], "--processes"),
    (["trial", "--threads", "1", "--processes", "-3"], "--processes"),
    (["trial", "--threads", "1", "--reps", "0"], "--reps"),
    (["trial", "--threads", "1", "--warmup", "-1"], "--warmup"),
    (["trial", "--threads", "1", "--timeout-s", "1e300"], "--timeout-s"),
    (["trial", "--threads", "1", "--timeout-s", "nan"], "--timeout-s"),
    (["trial", "--threads", "1", "--sample-interval-s", "0"], "--sample-interval-s"),
    (["trial", "--threads", "1", "--prompt-tokens", "0"], "--prompt-tokens"),
    (["trial", "--threads", "1", "--prompt-tokens", "8,16"], "--prompt-tokens"),
    (["trial", "--threads", "1", "--gen-tokens", "1"], "--gen-tokens"),
    (["trial", "--threads", "1", "--precision", "int3"], "--precision"),
    (["trial", "--threads", "1", "--runtime", "torch"], "--runtime"),
    (["trial", "--threads", "1", "--runtime", "ort,llamacpp"], "--runtime"),
    (["trial", "--threads", "1", "--smt", "maybe"], "--smt"),
    (["trial", "--threads", "1", "--smt-mode", "bios"], "--smt-mode"),
    (["trial", "--threads", "1", "--graph-optimization", "max"], "--graph-optimization"),
    (["trial", "--threads", "1", "--numa-memory", "bind"], "--numa-memory"),
    (["trial", "--threads", "1", "--inter-op-threads", "-1"], "--inter-op-threads"),
    (["trial", "--threads", "1", "--inter-op-threads", "100000"], "--inter-op-threads"),
    (["trial", "--threads", "1", "--dynamic-block-base", "-1"], "--dynamic-block-base"),
    (["trial", "--threads", "1", "--adaptive-target", "5"], "adaptive_target"),
    (["trial", "--threads", "1", "--env", "=x"], "--env"),
    (["trial", "--threads", "1", "--env", "NOVALUE"], "--env"),
    (["trial", "--threads", "1", "--out", "{file}"], "--out"),
    (["trial", "--threads", "1", "--out", "{unwritable}"], "--out"),
    (["trial", "--threads", "1", "--out", "{foreign}"], "--out"),
    (["trial", "--threads", "1", "--model", "{missing}"], "{missing}"),
    # topology
    (["topology", "--sysfs", "{missing}"], "--sysfs"),
    (["topology", "--sysfs", "{file}"], "--sysfs"),
    (["topology", "--sysfs", "{dir}"], "--sysfs"),
    (["topology", "--capture", "{file}"], "--capture"),
    (["topology", "--capture", "{unwritable}"], "--capture"),
    (["topology", "--capture", "{missing}", "--json"], "--capture"),
    (["topology", "--capture", "{foreign}"], "--capture"),
    (["topology", "--plan", "physical"], "--threads"),
    (["topology", "--threads", "2"], "--plan"),
    (["topology", "--plan", "physical", "--threads", "0"], "--threads"),
    (["topology", "--plan", "physical", "--threads", "x"], "--threads"),
    (["topology", "--plan", "bogus", "--threads", "1"], "--plan"),
    (["topology", "--fingerprint"], "--fingerprint"),
    # model
    (["model"], "ACTION"),
    (["model", "build", "bogus"], "PRESET"),
    (["model", "build", "tiny", "--precision", "int3"], "--precision"),
    (["model", "build", "tiny", "--accuracy-level", "9"], "--accuracy-level"),
    (["model", "build", "tiny", "--accuracy-level", "x"], "--accuracy-level"),
    (["model", "build", "tiny", "--set", "layers"], "--set"),
    (["model", "build", "tiny", "--set", "layers=0"], "--set"),
    (["model", "build", "tiny", "--set", "bogus=1"], "--set"),
    (["model", "build", "tiny", "--cache", "{file}"], "--cache"),
    (["model", "build", "tiny", "--cache", "{unwritable}"], "--cache"),
    (["model", "list", "--cache", "{missing}"], "--cache"),
    (["model", "list", "--cache", "{file}"], "--cache"),
    (["model", "info", "{missing}"], "{missing}"),
    (["model", "info", "{dir}"], "{dir}"),
    (["model", "info", "tiny", "--cache", "{missing}"], "--cache"),
    (["model", "info", "tiny", "--precision", "int3"], "--precision"),
    (["model", "info", "{dir}", "--precision", "int8"], "--precision"),
    # compare
    (["compare", "{run}"], "two or more run folders"),
    (["compare", "{run}", "{dir}"], "RUN_DIR"),
    (["compare", "{run}", "{missing}"], "RUN_DIR"),
    (["compare", "{run}", "{run}"], "more than once"),
    (["compare", "{run}", "{run2}", "--out", "{file}"], "--out"),
    (["compare", "{run}", "{run2}", "--out", "{unwritable}"], "--out"),
    (["compare", "{run}", "{run2}", "--out", "{foreign}"], "--out"),
    # export and import
    (["export", "{dir}"], "RUN_DIR"),
    (["export", "{missing}"], "RUN_DIR"),
    (["export", "{run}", "--out", "{unwritable}"], "--out"),
    (["export", "{run}", "--out", "{missing}/x.tar.gz"], "--out"),
    (["import", "{missing}"], "ARCHIVE"),
    (["import", "{dir}"], "ARCHIVE"),
    (["import", "{file}"], "{file}"),
    (["import", "{archive}", "--reports", "{file}"], "--reports"),
    (["import", "{archive}", "--reports", "{unwritable}"], "--reports"),
    (["import", "{archive}", "--max-size", "0"], "--max-size"),
    (["import", "{archive}", "--max-size", "lots"], "--max-size"),
    (["import", "{archive}", "--max-size", "1K"], "--max-size"),  # smaller than the archive
]


@pytest.fixture(scope="module")
def places(tmp_path_factory) -> dict[str, str]:
    from coresweep.compare import export_run

    base = tmp_path_factory.mktemp("cli")
    (base / "a-file.txt").write_text("not what the flag wants\n")
    (base / "empty").mkdir()
    (base / "foreign").mkdir()
    (base / "foreign" / "notes.txt").write_text("someone's\n")
    topo = topology()
    return {
        "file": str(base / "a-file.txt"), "dir": str(base / "empty"),
        "foreign": str(base / "foreign"), "missing": str(base / "no-such-thing"),
        "unwritable": "/proc/coresweep-test/out", "run": str(RUNS / "quick-t12"),
        "run2": str(RUNS / "quick-t124"), "quick": str(REPO / "params" / "quick.yaml"),
        "archive": str(export_run(RUNS / "quick-t12", out=base)),
        "no_cpu": str(max(topo.present or topo.online) + 1),
        "no_node": str(max(topo.numa_nodes) + 1),
        "cwd": str(base / "empty"),
    }


def _fill(text: str, places: dict[str, str]) -> str:
    for k, v in places.items():
        text = text.replace("{" + k + "}", v)
    return text


@pytest.mark.parametrize(("argv", "names"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_status_2(places, argv, names):
    args = [_fill(a, places) for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "lib"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-m", "coresweep", *args], capture_output=True,
                         text=True, timeout=60, cwd=places["cwd"], env=env)
    lines = out.stderr.splitlines()
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"coresweep {argv[0]}"), lines[0]
    assert ": error: " in lines[0] and _fill(names, places) in lines[0], lines[0]
    assert out.stdout == ""
    assert not any(Path(places["cwd"]).iterdir()), "the command wrote into its folder"
    assert not Path(places["missing"]).exists(), "the command created a path it refused"


@pytest.mark.parametrize(("argv", "flag"), [
    (["run", "{quick}"], "--out"),
    (["compare", "{run}", "{run2}"], "--out"),
    (["export", "{run}"], "--out"),
    (["import", "{archive}"], "--reports"),
])
def test_an_unwritable_default_folder_names_the_flag_to_pass(places, argv, flag):
    """Run from a folder nothing can be written into (/proc): the default output place
    (./reports, or . for export) is refused before any work, naming the flag that moves it."""
    args = [_fill(a, places) for a in argv]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "lib"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-m", "coresweep", *args], capture_output=True,
                         text=True, timeout=60, cwd="/proc", env=env)
    (line,) = out.stderr.splitlines()
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{flag} not given" in line and "cannot write into /proc" in line, line

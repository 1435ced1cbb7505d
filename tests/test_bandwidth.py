"""Memory read bandwidth (coresweep.machine.bandwidth): live measurements kept short (256 MiB,
one or two reps), input errors, the likwid-bench parser on a captured output, the roofline choice.
Speed targets (ort against likwid, scaling with threads) live in bench/bandwidth.py."""

from __future__ import annotations

import math
import os
import shutil

import pytest
from coresweep.errors import CoresweepError, PlacementError
from coresweep.machine import bandwidth as bw
from coresweep.machine.topology import read_topology

SIZE = 256 << 20
FIRST_CPU = min(os.sched_getaffinity(0))

# likwid-bench 5.2 (Debian's likwid), `likwid-bench -t load_avx -w N:268435kB:2` on the 2-vCPU
# AMD EPYC VM, 2026-11-25, while another job was running (hence the low figure); trimmed.
LIKWID_2T = """\
Running without Marker API. Activate Marker API with -m on commandline.
Warning: Sanitizing vector length to a multiple of the loop stride 16 and thread count 2 from \
33554375 elements (268435000 bytes) to 33554368 elements (268434944 bytes)
Allocate: Process running on hwthread 0 (Domain N) - Vector length 33554368/268434944 Offset 0 \
Alignment 512
Initialization: First thread in domain initializes the whole stream
--------------------------------------------------------------------------------
LIKWID MICRO BENCHMARK
Test: load_avx
--------------------------------------------------------------------------------
Using 1 work groups
Using 2 threads
--------------------------------------------------------------------------------
--------------------------------------------------------------------------------
Group: 0 Thread 0 Global Thread 0 running on hwthread 0 - Vector length 16777184 Offset 0
Group: 0 Thread 1 Global Thread 1 running on hwthread 1 - Vector length 16777184 Offset 16777184
--------------------------------------------------------------------------------
Cycles:\t\t\t11864324668
CPU Clock:\t\t2596106266
Time:\t\t\t4.570046e+00 sec
Iterations:\t\t512
Size (Byte):\t\t268434944
Size per thread:\t134217472
Data volume (Byte):\t68719345664
MByte/s:\t\t15036.91
Cycles per update:\t1.381192
--------------------------------------------------------------------------------
"""


def _check_row(row: dict, method: str, threads: int) -> None:
    assert row["method"] == method
    assert row["cpus"] == str(FIRST_CPU)
    assert row["threads"] == threads
    assert row["size_bytes"] > 0


def test_ort_measures_on_the_first_cpu():
    (row,) = bw.measure_bandwidth([FIRST_CPU], 1, method="ort", size_bytes=SIZE, reps=2)
    _check_row(row, "ort", 1)
    assert row["ok"], row["reason"]
    assert row["reason"] == ""
    assert math.isfinite(row["gb_s"]) and row["gb_s"] > 0
    assert row["gb_s_min"] <= row["gb_s"] <= row["gb_s_max"]
    assert row["reps"] == 2
    assert row["tool_version"].startswith("onnxruntime ")
    assert row["kernel"].startswith("ReduceSum")


def test_likwid_measures_or_says_how_to_get_it():
    (row,) = bw.measure_bandwidth([FIRST_CPU], 1, method="likwid", size_bytes=SIZE, reps=1)
    _check_row(row, "likwid", 1)
    if shutil.which("likwid-bench"):
        assert row["ok"], row["reason"]
        assert math.isfinite(row["gb_s"]) and row["gb_s"] > 0
        assert row["tool_version"].startswith("likwid-bench")
    else:
        assert not row["ok"]
        assert "apt-get install likwid" in row["reason"]
        assert math.isnan(row["gb_s"])


def test_a_timeout_kills_the_worker_and_is_a_row():
    (row,) = bw.measure_bandwidth([FIRST_CPU], 1, method="ort", size_bytes=SIZE, reps=1,
                                  timeout_s=0.3)
    assert not row["ok"]
    assert "timed out after 0.3 s" in row["reason"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"cpus": []}, PlacementError, ["empty", "usable CPUs"]),
        ({"cpus": [99999]}, PlacementError, ["99999", "usable CPUs"]),
        ({"threads": 0}, PlacementError, ["threads=0", ">= 1"]),
        ({"method": "stream"}, CoresweepError, ["'stream'", "auto, ort, likwid"]),
        ({"reps": 0}, CoresweepError, ["reps=0"]),
        ({"threads": 1.5}, PlacementError, ["threads 1.5", "not an integer"]),
        ({"size_bytes": 4096}, CoresweepError, ["size_bytes=4096", "last-level cache"]),
        ({"size_bytes": 1 << 60}, CoresweepError, ["available", "smaller size_bytes"]),
    ],
)
def test_bad_inputs_raise_before_any_process(monkeypatch, kwargs, error, words):
    def no_process(*a, **k):
        raise AssertionError("a process was started")

    monkeypatch.setattr(bw, "_run", no_process)
    args = {"cpus": [FIRST_CPU], "threads": 1, **kwargs}
    with pytest.raises(error) as exc:
        bw.measure_bandwidth(args.pop("cpus"), args.pop("threads"), **args)
    for w in words:
        assert w in str(exc.value)


def test_default_size_is_far_out_of_cache():
    topo = read_topology()
    llc = max((c.size_bytes or 0) for c in topo.caches if c.type != "Instruction")
    assert bw.default_size_bytes(topo) == max(1 << 30, 8 * llc)


def test_parse_likwid_output_on_a_captured_run():
    parsed = bw.parse_likwid_output(LIKWID_2T)
    assert parsed["gb_s"] == pytest.approx(15.03691)
    assert parsed["size_bytes"] == 268434944
    assert parsed["hwthreads"] == {0: 0, 1: 1}
    with pytest.raises(ValueError, match="Unknown test case"):
        bw.parse_likwid_output("Error: Unknown test case load_foo\n")


def test_likwid_failure_reasons():
    ok = bw._likwid_failure(0, LIKWID_2T, "", [0, 1], 2, 10)
    assert ok == ""
    assert "hwthreads [0, 1]" in bw._likwid_failure(0, LIKWID_2T, "", [0], 2, 10)
    assert "timed out" in bw._likwid_failure(None, "", "", [0], 1, 10)
    why = bw._likwid_failure(1, "", "Error: Unknown test case x\n", [0], 1, 10)
    assert "status 1: Error: Unknown test case x" in why and "apt-get install likwid" in why


def test_likwid_command_and_kernel():
    assert bw.likwid_command("load_avx", 2 * 10**9, 2) == [
        "likwid-bench", "-t", "load_avx", "-w", "N:2000000kB:2"]
    assert bw.likwid_kernel({"avx": True}) == "load_avx"
    assert bw.likwid_kernel({"avx": True}, ["load", "load_sse"]) == "load_sse"
    assert bw.likwid_kernel({"sse4_2": True}) == "load_sse"
    assert bw.likwid_kernel({"asimd": True}) == "load"


def test_roofline_method_prefers_likwid_when_it_ran():
    ort = {"method": "ort", "ok": True}
    assert bw.roofline_method([{"method": "likwid", "ok": True}, ort]) == "likwid"
    assert bw.roofline_method([{"method": "likwid", "ok": False}, ort]) == "ort"
    assert bw.roofline_method([ort]) == "ort"

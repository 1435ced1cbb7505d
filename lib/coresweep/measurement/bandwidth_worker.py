"""Bandwidth worker: `python -m coresweep.measurement.bandwidth_worker ort PAYLOAD_JSON`
or `python -m coresweep.measurement.bandwidth_worker pin CPULIST PROGRAM [ARGS...]`.

Both modes set the CPU mask FIRST (os.sched_setaffinity), like the trial worker:
- ``ort``: only then imports onnxruntime, streams a float32 tensor far larger than the LLC through
  ReduceSum with ORT's own pool of ``threads`` intra-op threads, and prints one JSON object on
  stdout (``{"ok": true, "gb_s": [...], ...}`` or ``{"ok": false, "error": ...}``);
- ``pin``: execs PROGRAM (likwid-bench) with the mask already set, so that its "N" domain is
  exactly the given CPUs (likwid-bench builds its domains from the process's affinity).

Started by coresweep.measurement.bandwidth_probe in its own process group; the parent enforces the time-out.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from typing import Any

# One row is 16 KiB: many rows so that ORT's parallel-for over rows has work for every thread.
COLS = 4096
REP_MIN_S = 0.3  # a rep repeats the run until it lasts this long (like likwid-bench's -s)


def _die_with_parent() -> None:
    """SIGKILL when the parent dies (Linux), so a killed caller leaves no 1-GiB reader behind."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _session(threads: int, rows: int) -> Any:
    """ReduceSum over the last axis of a [rows, COLS] float32 input: ORT's fast K/R reduction
    splits the rows over its thread pool (a full reduction to a scalar runs on one thread)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, COLS])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    graph = helper.make_graph([node], "read_bandwidth", [x], [y], initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads  # an explicit count: ORT sets no affinity of its own
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def measure_ort(payload: dict[str, Any]) -> dict[str, Any]:
    """Warm-up, then ``reps`` timed reps of bytes read / seconds (GB/s, 1 GB = 1e9 bytes)."""
    import numpy as np
    import onnxruntime as ort

    rows = max(1, int(payload["size_bytes"]) // (4 * COLS))
    nbytes = rows * COLS * 4
    data = np.full((rows, COLS), 0.5, dtype=np.float32)  # written: every page is backed
    sess = _session(int(payload["threads"]), rows)
    io = sess.io_binding()
    io.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(data))  # no copy on CPU
    io.bind_output("y")
    t0 = time.perf_counter()
    sess.run_with_iobinding(io)  # warm-up: thread pool start, output allocation
    runs = max(1, int(REP_MIN_S / max(time.perf_counter() - t0, 1e-6)))
    gb_s, r0, wall = [], resource.getrusage(resource.RUSAGE_SELF), 0.0
    for _ in range(int(payload["reps"])):
        t = time.perf_counter()
        for _ in range(runs):
            sess.run_with_iobinding(io)
        dt = time.perf_counter() - t
        wall += dt
        gb_s.append(nbytes * runs / dt / 1e9)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    total = float(io.get_outputs()[0].numpy().sum())
    if not np.isclose(total, 0.5 * rows * COLS, rtol=1e-3):  # the op really read every element
        raise RuntimeError(f"ReduceSum returned {total}, expected {0.5 * rows * COLS}")
    return {"ok": True, "gb_s": gb_s, "size_bytes": nbytes, "runs_per_rep": runs,
            "busy_cpus": cpu / wall if wall > 0 else None,
            "kernel": f"ReduceSum(axis=1) float32[{rows},{COLS}]",
            "affinity": sorted(os.sched_getaffinity(0)), "onnxruntime_version": ort.__version__}


def main(argv: list[str]) -> int:
    _die_with_parent()
    if len(argv) >= 3 and argv[0] == "pin":
        os.sched_setaffinity(0, [int(c) for c in argv[1].split(",")])
        os.execvp(argv[2], argv[2:])  # never returns; OSError goes to the caller's stderr
    if len(argv) != 2 or argv[0] != "ort":
        print(__doc__, file=sys.stderr)
        return 2
    payload = json.loads(argv[1])
    os.sched_setaffinity(0, [int(c) for c in payload["cpus"]])  # before onnxruntime is imported
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything the runtime prints lands in stderr, not in our JSON
    try:
        result = measure_ort(payload)
    except Exception as exc:  # reported to the parent as a row with ok=False
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    out.write(json.dumps(result) + "\n")
    out.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    rc = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(rc)  # skip interpreter teardown of native runtimes, as the trial worker does

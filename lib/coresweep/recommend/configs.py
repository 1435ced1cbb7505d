"""Ready-to-paste configurations for a recommended point: a shell line (environment + taskset or
numactl), Python (`onnxruntime.SessionOptions`), onnxruntime-genai's `genai_config.json`
`session_options`, and — for a serving plan — gunicorn.conf.py; for a llama.cpp point, its own
command line and llama-cpp-python. Each says exactly what the measured point did: the same CPUs,
the same thread count, the same session options."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from coresweep.machine.cpulist import format_cpulist


@dataclass(frozen=True)
class Deployment:
    """What a recommended point runs with."""

    threads: int
    cpus: tuple[int, ...]  # the process mask, in the plan's order
    numa_node: int | None = None  # bind memory there too (numactl), when the CPUs are one node
    spinning: bool = True
    pin_threads: bool = False  # ORT per-thread affinities from the plan
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cpulist(self) -> str:
        return format_cpulist(self.cpus)

    def ort_affinities(self) -> str:
        """session.intra_op_thread_affinities: threads−1 entries of 1-based CPU ids."""
        if not self.pin_threads or self.threads <= 1:
            return ""
        return ";".join(str(self.cpus[k % len(self.cpus)] + 1) for k in range(1, self.threads))

    def config_entries(self) -> dict[str, str]:
        out = {"session.intra_op.allow_spinning": "1" if self.spinning else "0"}
        if self.ort_affinities():
            out["session.intra_op_thread_affinities"] = self.ort_affinities()
        return out


def shell(d: Deployment, command: str = "python serve.py") -> str:
    """Environment + CPU binding + your command (numactl when memory should follow the CPUs)."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(d.env.items()))
    bind = (f"numactl --physcpubind={d.cpulist} --membind={d.numa_node}"
            if d.numa_node is not None else f"taskset -c {d.cpulist}")
    return " ".join(p for p in (env, bind, command) if p)


def python(d: Deployment, model_path: str = "model.onnx") -> str:
    """The session the measured point used: pin the process first, then import onnxruntime."""
    lines = [
        "import os",
        f"os.sched_setaffinity(0, {sorted(d.cpus)!r})  # before onnxruntime is imported",
        "import onnxruntime as ort",
        "",
        "so = ort.SessionOptions()",
        f"so.intra_op_num_threads = {d.threads}  # the thread knob (OMP_NUM_THREADS is not)",
        "so.inter_op_num_threads = 1",
        "so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL",
    ]
    lines += [f"so.add_session_config_entry({k!r}, {v!r})" for k, v in d.config_entries().items()]
    lines.append(f"session = ort.InferenceSession({model_path!r}, so, "
                 "providers=['CPUExecutionProvider'])")
    return "\n".join(lines)


def genai_session_options(d: Deployment) -> str:
    """The `model.decoder.session_options` block of genai_config.json (launch the process with
    the shell line's taskset/numactl: genai has no affinity option of its own)."""
    opts: dict[str, Any] = {"intra_op_num_threads": d.threads, "inter_op_num_threads": 1,
                            "execution_mode": "ORT_SEQUENTIAL"}
    # spinning off and per-thread affinities are ORT config entries, which genai's
    # session_options do not carry (coresweep's genai engine refuses them for that reason)
    return json.dumps({"model": {"decoder": {"session_options": opts}}}, indent=2)


def llamacpp_python(d: Deployment, model_path: str = "model.gguf") -> str:
    """llama-cpp-python with the measured threads, the process pinned first (llama.cpp's OpenMP
    threads inherit the mask; no cpu_mask of its own, which would override it per thread)."""
    return "\n".join([
        "import os",
        f"os.sched_setaffinity(0, {sorted(d.cpus)!r})  # before llama_cpp is imported",
        "from llama_cpp import Llama",
        "",
        f"llm = Llama({model_path!r}, n_threads={d.threads}, n_threads_batch={d.threads})",
    ])


def all_formats(d: Deployment, *, model_path: str = "model.onnx",
                command: str = "python serve.py", runtime: str = "ort") -> dict[str, str]:
    """Every format of the point for its runtime (ort and genai: onnxruntime's; llamacpp:
    llama.cpp's server command line and llama-cpp-python)."""
    if runtime == "llamacpp":
        cmd = f"llama-server -m model.gguf -t {d.threads} -tb {d.threads}"
        return {"shell": shell(d, cmd), "python": llamacpp_python(d)}
    return {"shell": shell(d, command), "python": python(d, model_path),
            "genai_config.json": genai_session_options(d)}

"""The trial worker: `python -m coresweep.measurement.worker [PAYLOAD_JSON | PATH | -]` (default: stdin).

Order matters and is the point of this module:
1. read the payload (config, plan CPUs, model dir) — nothing heavy imported yet;
2. set the CPU affinity (os.sched_setaffinity) and the environment knobs of the config;
3. only then import the runtime (onnxruntime or llama_cpp, through coresweep.engines), load the
   model (timed);
4. warm-up generations (discarded), then the timed repetitions.

Protocol: one JSON object per line, each with an "event" key, on a dedicated file descriptor that
was stdout when the worker started; file descriptor 1 is then redirected to stderr so that anything
the runtime prints (ORT logs) cannot corrupt the stream. Events, in order: hello, loaded, numa, warmup
(one per warm-up), timed_start, rep (one per repetition), timed_end, threads, done — or error.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# the runtime libraries an engine imports: none may be loaded before the worker sets its mask
_RUNTIME_MODULES = ("onnxruntime", "onnxruntime_genai", "llama_cpp")


def _runtime_loaded() -> bool:
    return any(m in sys.modules for m in _RUNTIME_MODULES)


# Captured at import time, before anything else in this module can import the runtime.
_RUNTIME_PRELOADED = _runtime_loaded()


def _read_payload(argv: list[str]) -> dict[str, Any]:
    if argv and argv[0] != "-":
        arg = argv[0]
        if arg.lstrip().startswith("{"):
            return json.loads(arg)
        return json.loads(Path(arg).read_text())
    return json.loads(sys.stdin.read())


def _rusage() -> resource.struct_rusage:
    return resource.getrusage(resource.RUSAGE_SELF)


def _vm_hwm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _Proto:
    def __init__(self) -> None:
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)  # native writes to stdout now land in stderr
        self.f = os.fdopen(fd, "w", buffering=1)

    def emit(self, event: str, **kw: Any) -> None:
        self.f.write(json.dumps({"event": event, **kw}, default=str) + "\n")
        self.f.flush()


def pin_and_set_env(payload: dict[str, Any], cfg: Any, proto: _Proto) -> None:
    """Step 1: the CPU mask and the environment knobs, before anything imports the runtime."""
    from coresweep.measurement.config import ENV_KNOBS

    runtime_before_affinity = _RUNTIME_PRELOADED or _runtime_loaded()
    os.sched_setaffinity(0, [int(c) for c in payload["cpus"]])
    if cfg.numa_memory != "default":  # before any allocation of the runtime or the model
        from coresweep.machine.numa_policy import set_memory_policy

        set_memory_policy(cfg.numa_memory, payload.get("numa_nodes") or [0])
    for k, v in cfg.env.items():
        os.environ[str(k)] = str(v)
    knobs = {k: os.environ.get(k) for k in sorted(set(ENV_KNOBS) | set(cfg.env))}
    proto.emit("hello", pid=os.getpid(), key=payload.get("key"), process=payload.get("process"),
               affinity=sorted(os.sched_getaffinity(0)), env_knobs=knobs,
               onnxruntime_imported_before_affinity=runtime_before_affinity)


def load_engine(payload: dict[str, Any], cfg: Any, proto: _Proto) -> Any:
    """Step 2: now the runtime; the session creation is timed on its own."""
    from coresweep.engines import SessionConfig, make_engine
    from coresweep.measurement.procfs import read_threads

    sess = SessionConfig.of(cfg.threads, affinities=payload.get("affinities"), **cfg.session)
    engine = make_engine(cfg.runtime, payload["model_dir"], sess)
    load_s = float(engine.load())
    ort = sys.modules.get("onnxruntime")  # loaded by the onnxruntime engines only
    proto.emit("loaded", load_s=load_s, onnxruntime_version=getattr(ort, "__version__", None),
               runtime_version=engine.version(), session=sess.to_dict(),
               threads=read_threads("self"), rss_bytes=_vm_hwm_bytes())
    return engine


def report_numa(cfg: Any, proto: _Proto) -> None:
    """The pages per NUMA node the loaded model holds, and the policies numa_maps shows."""
    from coresweep.machine.numa_policy import read_numa_maps

    proto.emit("numa", policy=cfg.numa_memory, maps=read_numa_maps())


def huge_pages(cfg: Any, proto: _Proto) -> None:
    """``madvise``: advise and collapse the loaded model's anonymous memory into huge pages;
    then, whatever the mode, the memory read back (AnonHugePages: what THP gave it)."""
    from coresweep.machine.hugepages import advise_huge, memory_of

    advised = advise_huge() if cfg.huge_pages == "madvise" else None
    proto.emit("memory", mode=cfg.huge_pages, advised=advised, after_load=memory_of(),
               tunables=os.environ.get("GLIBC_TUNABLES"))


def generate(engine: Any, prompt: list[int], cfg: Any) -> Any:
    """One generation of the config: one sequence, or ``batch`` of them in one session."""
    if cfg.batch == 1:
        return engine.generate(prompt, cfg.gen_tokens)
    return engine.generate_batch(prompt, cfg.gen_tokens, cfg.batch)


def timed_rep(engine: Any, prompt: list[int], cfg: Any, rep: int, proto: _Proto) -> None:
    """One timed generation and what the process spent on it (a batch: its every sequence's
    checksum; its tokens all count in the CPU time per token)."""
    r0 = _rusage()
    g = generate(engine, prompt, cfg)
    r1 = _rusage()
    du, ds = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    e2e = float(g.e2e_s)
    proto.emit("rep", rep=rep, ttft_s=float(g.ttft_s), prefill_tok_s=float(g.prefill_tok_s),
               decode_tok_s=float(g.decode_tok_s), e2e_s=e2e, n_tokens=len(g.tokens),
               token_latencies_s=[float(x) for x in g.token_latencies_s],
               peak_rss_bytes=int(max(r1.ru_maxrss * 1024, _vm_hwm_bytes() or 0)),
               cpu_user_s=du, cpu_sys_s=ds, ctx_vol=r1.ru_nvcsw - r0.ru_nvcsw,
               ctx_invol=r1.ru_nivcsw - r0.ru_nivcsw,
               cpu_util_pct=100.0 * (du + ds) / e2e if e2e > 0 else float("nan"),
               checksum=g.checksum, batch=g.batch, checksums=g.checksums,
               sequences_agree=g.sequences_agree, agg_decode_tok_s=float(g.agg_decode_tok_s))


def run(payload: dict[str, Any], proto: _Proto) -> None:
    from coresweep.engines import make_prompt
    from coresweep.measurement.config import TrialConfig
    from coresweep.measurement.procfs import read_threads
    from coresweep.measurement.trial import check_memory

    cfg = TrialConfig.from_dict(payload["config"])
    pin_and_set_env(payload, cfg, proto)
    check_memory(payload["model_dir"])
    engine = load_engine(payload, cfg, proto)
    report_numa(cfg, proto)
    huge_pages(cfg, proto)
    prompt = make_prompt(payload["model_dir"], cfg.prompt_tokens, text=cfg.prompt_text,
                         seed=cfg.seed)
    proto.emit("prompt", prompt_len=len(prompt))
    for i in range(cfg.warmup):  # step 3: discarded
        g = generate(engine, prompt, cfg)
        proto.emit("warmup", index=i, decode_tok_s=g.decode_tok_s, ttft_s=g.ttft_s)
    proto.emit("timed_start")  # step 4
    before = read_threads("self")
    t_start = time.perf_counter()
    for rep in range(cfg.reps):
        timed_rep(engine, prompt, cfg, rep, proto)
    wall = time.perf_counter() - t_start
    after = read_threads("self")
    proto.emit("timed_end", wall_s=wall)
    proto.emit("threads", before=before, after=after, wall_s=wall)
    proto.emit("done")


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the sweep process dies (a killed notebook kernel or sweep must not
    leave a worker running beside the next sweep's trials)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent is already gone
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _die_with_parent()
    proto = _Proto()
    try:
        payload = _read_payload(argv)
        run(payload, proto)
    except Exception as exc:  # reported to the parent, which records a failed trial
        traceback.print_exc(file=sys.stderr)
        proto.emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    rc = main()
    # Every result is flushed with "done": skip interpreter teardown, where native runtimes have
    # been seen to crash or hang and would turn a complete trial into a failed one.
    sys.stderr.flush()
    os._exit(rc)

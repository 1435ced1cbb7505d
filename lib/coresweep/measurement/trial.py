"""One trial: a fresh, pinned worker process measured from outside and verified.

`prepare()` validates configs and resolves their plans and models before any work starts;
`run_trial()` runs one prepared config in one worker process (`python -m
coresweep.measurement.worker`, handled by `process.WorkerProcess`), samples per-CPU utilisation
and the worker's threads while it runs (`sampler.Sampler`), and returns a `TrialResult` holding
the long-form rows for the store (built by the pure `rows.rows_from_events`).

Nothing here imports onnxruntime: only the worker does, after it has set its affinity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coresweep.engines import ENGINES
from coresweep.errors import CoresweepError, ModelError, PlacementError, check_choice
from coresweep.measurement.config import (
    HUGE_PAGES,
    NUMA_MEMORY,
    SESSION_KEYS,
    SMT_MODES,
    SMT_STATES,
    TrialConfig,
)
from coresweep.measurement.parent import parent_outside, read_throttling, throttle_columns
from coresweep.measurement.process import WorkerProcess, failure_reason, oom_kills, worker_command
from coresweep.measurement.procfs import read_thread_stat, read_threads
from coresweep.measurement.rows import rows_from_events
from coresweep.measurement.sampler import Sampler
from coresweep.measurement.verify import verify_placement

__all__ = ["PreparedTrial", "TrialConfig", "TrialResult", "check_memory", "model_weight_bytes",
           "plan_for", "prepare", "read_thread_stat", "read_threads", "run_trial", "validate_config",
           "verify_placement", "worker_command"]


# -- validation and preparation -----------------------------------------------------------------


@dataclass
class PreparedTrial:
    """A validated config with its plan and model resolved (parent side, before any trial)."""

    config: TrialConfig
    key: str
    plan: Any  # placement.Plan
    model_dir: str
    weight_bytes: int
    skip_reason: str | None = None
    numa_nodes: tuple[int, ...] = ()  # nodes with memory: an interleave policy spreads over them

    def spawn_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """The environment the worker starts with: ours (or ``env``), the config's knobs (also
        set again by the worker before onnxruntime loads) and what must be there from the
        start (glibc reads GLIBC_TUNABLES once, when the process starts)."""
        import os

        from coresweep.machine.hugepages import spawn_env

        base = {**(os.environ if env is None else env), **self.config.env}
        # numpy's OpenBLAS starts a pool at import whose threads spin ~0.1 s after any BLAS call:
        # none of the measured work, yet busy on the plan's CPUs (seen beside llama.cpp's team)
        base.setdefault("OPENBLAS_NUM_THREADS", "1")
        return spawn_env(self.config.huge_pages, base)

    def worker_payload(self, process: int) -> dict[str, Any]:
        plan = self.plan
        affinities = None
        if self.config.pin_threads and self.config.threads and self.config.threads > 1:
            affinities = plan.ort_affinity_string() or None
        return {
            "config": self.config.to_dict(),
            "key": self.key,
            "process": process,
            "model_dir": self.model_dir,
            "cpus": list(plan.cpus),
            "affinities": affinities,
            "numa_nodes": list(self.numa_nodes),
            "plan": plan.to_dict() if hasattr(plan, "to_dict") else {"cpus": list(plan.cpus)},
        }


def model_weight_bytes(model_dir: str | Path) -> int:
    """Bytes of the model's weight files (.onnx and external data, or .gguf) in its directory."""
    p = Path(model_dir)
    files = [p] if p.is_file() else [f for f in p.iterdir() if f.is_file()]
    total = 0
    for f in files:
        if f.suffix in (".onnx", ".data", ".bin", ".gguf") or f.name.endswith(".onnx.data"):
            total += f.stat().st_size
    return total


def check_memory(model_dir: str | Path, available: int | None = None) -> int:
    """Refuse (ModelError) a model whose weights plainly exceed the memory available now."""
    import psutil

    size = model_weight_bytes(model_dir)
    avail = psutil.virtual_memory().available if available is None else available
    if size > avail:
        raise ModelError(
            f"model {model_dir} has {size / 2**30:.2f} GiB of weights but only "
            f"{avail / 2**30:.2f} GiB of memory is available: refusing to load it; "
            "use a smaller model or precision (e.g. int4) or free memory"
        )
    return size


def validate_config(cfg: TrialConfig) -> None:
    """Checks that need no machine: names, counts, types. Raises CoresweepError subclasses."""
    if cfg.runtime not in ENGINES:
        raise CoresweepError(f"unknown runtime {cfg.runtime!r}; valid runtimes: "
                             f"{', '.join(ENGINES)}")
    if cfg.threads is not None and (
        isinstance(cfg.threads, bool) or not isinstance(cfg.threads, int) or cfg.threads < 1
    ):
        raise PlacementError(
            f"threads must be a positive integer (or None for ORT's default), got {cfg.threads!r}"
        )
    for name in ("prompt_tokens", "gen_tokens", "reps"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise CoresweepError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(cfg.warmup, bool) or not isinstance(cfg.warmup, int) or cfg.warmup < 0:
        raise CoresweepError(f"warmup must be an integer >= 0, got {cfg.warmup!r}")
    if cfg.smt not in SMT_STATES:
        raise CoresweepError(f"unknown smt state {cfg.smt!r}; valid: None, 'on', 'off'")
    if cfg.smt_mode not in SMT_MODES:
        raise CoresweepError(
            f"unknown smt_mode {cfg.smt_mode!r}; valid modes: {', '.join(SMT_MODES)}"
        )
    bad_sess = sorted(set(cfg.session) - set(SESSION_KEYS))
    if bad_sess:
        raise CoresweepError(
            f"unknown session option(s) {bad_sess}; valid options: {', '.join(SESSION_KEYS)} "
            "(threads and affinities come from the config's threads/placement/pin_threads)"
        )
    if not isinstance(cfg.env, dict) or not all(isinstance(k, str) for k in cfg.env):
        raise CoresweepError(f"env must be a dict of name -> value, got {cfg.env!r}")
    check_choice("numa_memory", cfg.numa_memory, NUMA_MEMORY)
    check_choice("huge_pages", cfg.huge_pages, HUGE_PAGES)
    from coresweep.engines.base import check_batch

    check_batch(cfg.runtime, cfg.batch)  # batch >= 1, and a runtime that can decode a batch
    if cfg.threads is None and cfg.pin_threads:
        raise PlacementError("pin_threads needs an explicit thread count (threads=None is ORT-default)")


def plan_for(cfg: TrialConfig, topo: Any) -> Any:
    """The placement Plan a config runs with on this machine (the one place that decides it)."""
    from coresweep.machine.placement import make_plan

    strategy = cfg.plan_strategy()
    if cfg.threads is None:
        # ORT-default: the runtime picks its own thread count; the plan is only the mask
        # (a CPU list as given, otherwise every usable CPU the strategy allows).
        n = 1 if strategy[:1].isdigit() else max(1, len(topo.allowed))
        return make_plan(topo, n, strategy, oversubscribe=True)
    return make_plan(topo, cfg.plan_threads, strategy, oversubscribe=cfg.oversubscribe)


def _check_session(cfg: TrialConfig, plan: Any) -> None:
    """The session options, and whether the config's runtime honours them (ModelError)."""
    from coresweep.engines import SessionConfig, check_session  # light: no runtime imported

    aff = None
    if cfg.pin_threads and cfg.threads and cfg.threads > 1:
        aff = plan.ort_affinity_string() or None
    check_session(cfg.runtime, SessionConfig.of(cfg.threads, affinities=aff, **cfg.session))


def _model(cfg: TrialConfig, build: bool, check_mem: bool) -> tuple[str, int, Any]:
    from coresweep.engines import model_format
    from coresweep.models import inspect_model, resolve_model

    try:
        mdir = resolve_model(cfg.model, cfg.precision, build=build,
                             fmt=model_format(cfg.runtime))
    except FileNotFoundError as exc:
        raise ModelError(f"model {cfg.model!r} not found: {exc}") from exc
    size = check_memory(mdir) if check_mem else model_weight_bytes(mdir)
    return str(mdir), size, inspect_model(mdir)


def _check_prompt(cfg: TrialConfig, mdir: str, info: Any) -> None:
    if info.max_context and cfg.prompt_text is None \
            and cfg.prompt_tokens + cfg.gen_tokens > info.max_context:
        raise ModelError(
            f"prompt_tokens + gen_tokens = {cfg.prompt_tokens} + {cfg.gen_tokens} exceeds the "
            f"context of model {cfg.model!r} ({info.max_context} tokens); use at most "
            f"{info.max_context} tokens in all")
    if cfg.prompt_text is not None and not info.tokenizer_dir:
        raise ModelError(
            f"prompt_text needs a tokenizer, and model {cfg.model!r} ({mdir}) has none; give the "
            "prompt as a token count (prompt_tokens) instead")


def prepare(configs: Iterable[TrialConfig], *, topo: Any = None, check_mem: bool = True,
            build: bool = True, smt_root: str | Path = "/") -> list[PreparedTrial]:
    """Validate every config, make its plan and resolve its model. Raises before any trial runs."""
    from coresweep.machine import smt as smt_mod
    from coresweep.machine.topology import read_topology

    configs = list(configs)
    if not configs:
        raise CoresweepError("no trial configs to run")
    for cfg in configs:
        if not isinstance(cfg, TrialConfig):
            raise CoresweepError(f"expected TrialConfig objects, got {type(cfg).__name__}")
        validate_config(cfg)
    topo = topo if topo is not None else read_topology()
    models: dict[tuple[str, str], tuple[str, int, Any]] = {}
    out = []
    for cfg in configs:
        plan = plan_for(cfg, topo)
        _check_session(cfg, plan)
        which = (cfg.model, cfg.precision, cfg.runtime)
        if which not in models:
            models[which] = _model(cfg, build, check_mem)
        mdir, size, info = models[which]
        _check_prompt(cfg, mdir, info)
        out.append(PreparedTrial(cfg, cfg.key(), plan, mdir, size,
                                 smt_mod.skip_reason(cfg, topo, smt_root),
                                 tuple(topo.nodes_with_memory())))
    return out


# -- running one trial ----------------------------------------------------------------------------


@dataclass
class TrialResult:
    """The outcome of one worker process: rows for each table, or a failure."""

    key: str
    process: int
    ok: bool
    status: str  # "ok" | "failed" | "timeout" | "skipped"
    reason: str | None = None
    stderr_tail: str = ""
    returncode: int | None = None
    wall_s: float = 0.0
    trials: list[dict] = field(default_factory=list)
    tokens: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    thread_samples: list[dict] = field(default_factory=list)
    threads: list[dict] = field(default_factory=list)
    placement: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)  # worker "hello"/"loaded" details



_PHASES = {"loaded": "warmup", "timed_start": "timed", "timed_end": "end"}


def _stream(worker: WorkerProcess, phase: list[str], on_event: Any) -> tuple[dict, list, str]:
    """Read the worker's events: the last of each kind, the repetitions, a reported error."""
    events: dict[str, Any] = {}
    reps: list[dict] = []
    error = None
    for msg in worker.events():
        ev = msg["event"]
        if on_event:
            on_event(msg)
        phase[0] = _PHASES.get(ev, phase[0])
        if ev == "rep":
            reps.append(msg)
        elif ev == "error":
            error = msg.get("message", "worker error")
        else:
            events[ev] = msg
    return events, reps, error


def _sampled_rows(res: TrialResult, sampler: Sampler | None, interval: float | None) -> None:
    if sampler is None:
        return
    res.info["sampler"] = {"n": sampler.n, "cpu_s": sampler.cpu_s, "interval_s": interval,
                           "mhz": sampler.mhz}
    res.samples = [{"config_key": res.key, "process": res.process, **s} for s in sampler.samples]
    res.thread_samples = [{"config_key": res.key, "process": res.process, **s}
                          for s in sampler.thread_samples]


def _sampler_columns(sampler: Sampler | None, wall_s: float) -> dict[str, Any]:
    """The sampler's own cost (one CPU's share over the trial) and the clock it saw in the
    timed phase."""
    import statistics

    nan = float("nan")
    if sampler is None:
        return {"sampler_cpu_pct": 0.0, "cpu_mhz": nan}
    return {"sampler_cpu_pct": 100.0 * sampler.cpu_s / wall_s if wall_s > 0 else nan,
            "cpu_mhz": statistics.median(sampler.mhz) if sampler.mhz else nan}


def run_trial(prep: PreparedTrial, process: int = 0, *, timeout_s: float | None = 600.0,
              sample_interval_s: float | None = 0.1, on_event: Any = None,
              env: dict[str, str] | None = None, sample_gate: Any = None) -> TrialResult:
    """Run one prepared config in one fresh worker process and collect its rows.

    The worker runs in its own process group, killed whole on timeout or interrupt.
    sample_interval_s=None or 0 disables the parent's sampler (used to measure its cost).
    on_event(dict) is called for every protocol line (with "pid" added to the first, "spawn").
    sample_gate: optional callable; the sampler skips its tick while it returns False.
    """
    res = TrialResult(key=prep.key, process=process, ok=False, status="failed")
    if prep.skip_reason:
        res.status, res.reason = "skipped", prep.skip_reason
        return res
    phase, sampler = ["spawn"], None
    throttled_before = read_throttling()
    with parent_outside(prep.plan.cpus) as parent, \
            WorkerProcess(prep.worker_payload(process), timeout_s, prep.spawn_env(env)) as worker:
        if on_event:
            on_event({"event": "spawn", "pid": worker.pid, "key": prep.key, "process": process})
        if sample_interval_s:
            sampler = Sampler(worker.pid, sample_interval_s, worker.t0, phase, sample_gate,
                              clock_cpus=list(prep.plan.cpus))
            sampler.start()
        try:
            events, reps, error = _stream(worker, phase, on_event)
        finally:
            if sampler:
                sampler.stop()
    measured = {**parent.columns(), **throttle_columns(throttled_before, read_throttling()),
                **_sampler_columns(sampler, worker.wall_s)}
    res.wall_s, res.stderr_tail, res.returncode = worker.wall_s, worker.stderr_tail, \
        worker.returncode
    res.info = {k: v for k, v in events.items() if k in ("hello", "loaded")}
    _sampled_rows(res, sampler, sample_interval_s)
    failed = failure_reason(worker.returncode, error, "done" in events,
                            timed_out=worker.timed_out, timeout_s=timeout_s,
                            oom_before=worker.oom_before, oom_after=oom_kills())
    if failed:
        res.status, res.reason = failed
        return res
    rows = rows_from_events(prep, process, events, reps, seen=sampler.seen if sampler else None,
                            pid=worker.pid, measured=measured)
    res.trials, res.tokens, res.threads = rows["trials"], rows["tokens"], rows["threads"]
    res.placement = rows["placement"]
    if not res.trials:
        res.reason = "worker finished without timed repetitions"
        return res
    res.ok, res.status = True, "ok"
    return res

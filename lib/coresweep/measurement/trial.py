"""One trial: a fresh, pinned worker process measured from outside and verified.

`TrialConfig` is the JSON-able description of one measurement point; `key()` is its stable hash
(the resume key). `prepare()` validates configs and resolves their plans and models before any
work starts; `run_trial()` runs one prepared config in one worker process
(`python -m coresweep.measurement.worker`) in its own process group, samples per-CPU utilisation and the
worker's threads from /proc while it runs, enforces a timeout, and returns a `TrialResult` holding
the long-form rows for the store.

Nothing here imports onnxruntime: only the worker does, after it has set its affinity.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError, ModelError, PlacementError
from coresweep.machine.topology import format_cpulist, parse_cpulist
from coresweep.measurement.config import ENGINES, SESSION_KEYS, SMT_MODES, SMT_STATES, TrialConfig

CLK_TCK = os.sysconf("SC_CLK_TCK")


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
            "plan": plan.to_dict() if hasattr(plan, "to_dict") else {"cpus": list(plan.cpus)},
        }


def model_weight_bytes(model_dir: str | Path) -> int:
    """Bytes of the model's weight files (.onnx and external data) in its directory."""
    p = Path(model_dir)
    files = [p] if p.is_file() else [f for f in p.iterdir() if f.is_file()]
    total = 0
    for f in files:
        if f.suffix in (".onnx", ".data", ".bin") or f.name.endswith(".onnx.data"):
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
    if cfg.engine not in ENGINES:
        raise CoresweepError(f"unknown engine {cfg.engine!r}; valid engines: {', '.join(ENGINES)}")
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
    if cfg.threads is None and cfg.pin_threads:
        raise PlacementError("pin_threads needs an explicit thread count (threads=None is ORT-default)")


def prepare(
    configs: Iterable[TrialConfig],
    *,
    topo: Any = None,
    check_mem: bool = True,
    build: bool = True,
    smt_root: str | Path = "/",
) -> list[PreparedTrial]:
    """Validate every config, make its plan and resolve its model. Raises before any trial runs."""
    from coresweep.machine.placement import make_plan
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
    from coresweep.machine import smt as smt_mod

    for cfg in configs:
        strategy = cfg.plan_strategy()
        if cfg.threads is None:
            # ORT-default: the runtime picks its own thread count; the plan is only the mask
            # (a CPU list as given, otherwise every usable CPU the strategy allows).
            explicit = strategy[:1].isdigit()
            n = 1 if explicit else max(1, len(topo.allowed))
            plan = make_plan(topo, n, strategy, oversubscribe=True)
        else:
            plan = make_plan(topo, cfg.threads, strategy, oversubscribe=cfg.oversubscribe)
        prep_aff = None
        if cfg.pin_threads and cfg.threads and cfg.threads > 1:
            prep_aff = plan.ort_affinity_string() or None
        from coresweep.engines import SessionConfig  # light: the engine imports onnxruntime lazily

        SessionConfig(threads=cfg.threads, affinities=prep_aff, **cfg.session)  # raises ModelError
        mk = (cfg.model, cfg.precision)
        if mk not in models:
            from coresweep.models import resolve_model

            try:
                mdir = resolve_model(cfg.model, cfg.precision, build=build)
            except CoresweepError:
                raise
            except FileNotFoundError as exc:
                raise ModelError(f"model {cfg.model!r} not found: {exc}") from exc
            size = check_memory(mdir) if check_mem else model_weight_bytes(mdir)
            from coresweep.models import inspect_model

            models[mk] = (str(mdir), size, inspect_model(mdir))
        mdir, size, info = models[mk]
        if info.max_context and cfg.prompt_text is None \
                and cfg.prompt_tokens + cfg.gen_tokens > info.max_context:
            raise ModelError(
                f"prompt_tokens + gen_tokens = {cfg.prompt_tokens} + {cfg.gen_tokens} exceeds the "
                f"context of model {cfg.model!r} ({info.max_context} tokens); use at most "
                f"{info.max_context} tokens in all"
            )
        if cfg.prompt_text is not None:
            if not info.tokenizer_dir:
                raise ModelError(
                    f"prompt_text needs a tokenizer, and model {cfg.model!r} ({mdir}) has none; "
                    "give the prompt as a token count (prompt_tokens) instead"
                )
        skip = smt_mod.skip_reason(cfg, topo, smt_root)
        out.append(PreparedTrial(cfg, cfg.key(), plan, mdir, size, skip))
    return out


# -- /proc readers --------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def read_thread_stat(path: str | Path) -> dict[str, Any] | None:
    """Parse /proc/PID/task/TID/stat: name, utime/stime seconds, last CPU (field 39), and the
    exact on-CPU time from the sibling schedstat file (cpu_s)."""
    path = str(path)
    raw = _read(path)
    if not raw:
        return None
    lpar, rpar = raw.index("("), raw.rindex(")")
    name = raw[lpar + 1 : rpar]
    rest = raw[rpar + 2 :].split()  # rest[0] is field 3 (state)
    user_s, sys_s = int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK
    # schedstat's first field is the thread's on-CPU time in ns (exact; stat has 10 ms ticks)
    sched = _read(path[: -len("stat")] + "schedstat")
    try:
        cpu_s = int(sched.split()[0]) / 1e9 if sched else user_s + sys_s
    except (ValueError, IndexError):
        cpu_s = user_s + sys_s
    return {
        "tid": int(raw[:lpar]),
        "name": name,
        "state": rest[0],
        "user_s": user_s,
        "sys_s": sys_s,
        "cpu_s": cpu_s,
        "last_cpu": int(rest[36]),
    }


def read_threads(pid: int | str = "self", *, proc: str | Path = "/proc", status: bool = True) -> list[dict]:
    """Every thread of a process: tid, name, allowed CPUs (Cpus_allowed_list), last CPU, CPU time."""
    base = f"{proc}/{pid}/task"
    rows = []
    try:
        tids = sorted(os.listdir(base), key=int)
    except (FileNotFoundError, ProcessLookupError):
        return rows
    for tid in tids:
        st = read_thread_stat(f"{base}/{tid}/stat")
        if st is None:
            continue
        if status:
            text = _read(f"{base}/{tid}/status")
            if text is None:
                continue
            st["allowed"] = ""
            for line in text.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    st["allowed"] = line.split(":", 1)[1].strip()
                    break
        rows.append(st)
    return rows


# -- placement verdict ----------------------------------------------------------------------------


def verify_placement(
    plan_cpus: Sequence[int],
    before: list[dict],
    after: list[dict],
    *,
    wall_s: float,
    seen: dict[int, set[int]] | None = None,
    ort_default: bool = False,
    busy_fraction: float = 0.10,
    min_busy_s: float = 0.002,
) -> dict[str, Any]:
    """Compare what the threads did during the timed phase with the plan.

    before/after: read_threads() snapshots around the timed repetitions. A thread is busy when its
    on-CPU time (schedstat) grew by more than max(min_busy_s, busy_fraction * wall_s). Returns per-thread rows and
    a verdict: placement_ok, busy_threads, cpus_used, oversubscribed, reasons.
    """
    plan = set(plan_cpus)
    b = {t["tid"]: t for t in before}
    seen = seen or {}
    threshold = max(min_busy_s, busy_fraction * max(wall_s, 0.0))
    rows = []
    for t in after:
        t0 = b.get(t["tid"], {"user_s": 0.0, "sys_s": 0.0, "cpu_s": 0.0})
        du = max(0.0, t["user_s"] - t0["user_s"])
        ds = max(0.0, t["sys_s"] - t0["sys_s"])
        dc = max(0.0, t.get("cpu_s", t["user_s"] + t["sys_s"]) - t0.get("cpu_s", t0["user_s"] + t0["sys_s"]))
        cpus_seen = set(seen.get(t["tid"], set())) | {t["last_cpu"]}
        rows.append(
            {
                "tid": t["tid"],
                "name": t["name"],
                "allowed": t.get("allowed", ""),
                "last_cpu": t["last_cpu"],
                "seen_cpus": format_cpulist(cpus_seen),
                "user_s": du,
                "sys_s": ds,
                "cpu_s": dc,
                "busy": dc > threshold,
            }
        )
    busy = [r for r in rows if r["busy"]]
    reasons: list[str] = []
    ok = True
    outside_allowed = [
        r for r in rows if r["allowed"] and not set(parse_cpulist(r["allowed"])) <= plan
    ]
    if outside_allowed:
        ok = False
        what = "ORT default mode pinned its own threads" if ort_default else "threads are allowed"
        reasons.append(
            f"{what} outside the plan {format_cpulist(plan)}: "
            + "; ".join(f"tid {r['tid']} allowed {r['allowed']}" for r in outside_allowed[:6])
        )
    narrower = [
        r
        for r in rows
        if r["allowed"] and r not in outside_allowed and set(parse_cpulist(r["allowed"])) < plan
    ]
    if narrower and ort_default:
        reasons.append(
            f"ORT default mode pinned {len(narrower)} thread(s) itself inside the plan: "
            + "; ".join(f"tid {r['tid']} allowed {r['allowed']}" for r in narrower[:6])
        )
    seen_outside = sorted(
        {c for r in busy for c in parse_cpulist(r["seen_cpus"]) if c not in plan}
    )
    if seen_outside:
        ok = False
        reasons.append(f"busy threads ran on CPU(s) {format_cpulist(seen_outside)} outside the plan")
    cpus_allowed_busy: set[int] = set()
    for r in busy:
        cpus_allowed_busy |= set(parse_cpulist(r["allowed"])) if r["allowed"] else plan
    n_cpus = len(cpus_allowed_busy) if busy else len(plan)
    oversub = len(busy) > max(1, n_cpus)
    if oversub:
        ok = False
        reasons.append(
            f"{len(busy)} busy threads on {n_cpus} CPU{'s' if n_cpus != 1 else ''}: oversubscribed"
        )
    cpus_used = sorted({c for r in busy for c in parse_cpulist(r["seen_cpus"])})
    return {
        "placement_ok": ok,
        "busy_threads": len(busy),
        "threads_total": len(rows),
        "cpus_used": format_cpulist(cpus_used),
        "oversubscribed": oversub,
        "reasons": reasons,
        "rows": rows,
        "busy_threshold_s": threshold,
    }


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


def _oom_kills() -> int | None:
    """cgroup v2 oom_kill counter for our cgroup, when readable."""
    try:
        cg = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        f = Path("/sys/fs/cgroup") / cg.lstrip("/") / "memory.events"
        if not f.exists():
            f = Path("/sys/fs/cgroup/memory.events")
        for line in f.read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


class _Sampler(threading.Thread):
    """Parent-side timeline: per-CPU utilisation (psutil) and the worker's threads (/proc)."""

    def __init__(self, pid: int, interval: float, t0: float, phase_ref: list[str], gate: Any = None):
        super().__init__(daemon=True, name="coresweep-sampler")
        self.pid, self.interval, self.t0, self.phase_ref = pid, interval, t0, phase_ref
        self.gate = gate  # optional callable: sample only while gate() is true
        self.stop_event = threading.Event()
        self.samples: list[dict] = []
        self.thread_samples: list[dict] = []
        self.seen: dict[int, set[int]] = {}  # timed phase only
        self._prev: dict[int, float] = {}
        self._prev_t: float | None = None
        self.n = 0  # samples taken
        self.cpu_s = 0.0  # the sampler thread's own CPU time

    def run(self) -> None:
        import psutil

        c0 = time.thread_time()
        psutil.cpu_percent(percpu=True, interval=None)  # prime
        while not self.stop_event.wait(self.interval):
            if self.gate is not None and not self.gate():
                self._prev_t = None  # no utilisation across a gap
                continue
            self.n += 1
            t = time.monotonic()
            t_s = t - self.t0
            phase = self.phase_ref[0]
            for cpu, util in enumerate(psutil.cpu_percent(percpu=True, interval=None)):
                self.samples.append({"t_s": t_s, "cpu": cpu, "util_pct": float(util), "phase": phase})
            threads = read_threads(self.pid, status=False)
            dt = None if self._prev_t is None else t - self._prev_t
            for th in threads:
                cpu_s = th["cpu_s"]
                prev = self._prev.get(th["tid"])
                util = 100.0 * (cpu_s - prev) / dt if (dt and prev is not None) else float("nan")
                self._prev[th["tid"]] = cpu_s
                self.thread_samples.append(
                    {
                        "t_s": t_s,
                        "tid": th["tid"],
                        "name": th["name"],
                        "last_cpu": th["last_cpu"],
                        "cpu_s": cpu_s,
                        "util_pct": util,
                        "phase": phase,
                    }
                )
                if phase == "timed":
                    self.seen.setdefault(th["tid"], set()).add(th["last_cpu"])
            self._prev_t = t
            self.cpu_s = time.thread_time() - c0

    def stop(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout=2)


def worker_command() -> list[str]:
    return [sys.executable, "-m", "coresweep.measurement.worker"]


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def run_trial(
    prep: PreparedTrial,
    process: int = 0,
    *,
    timeout_s: float | None = 600.0,
    sample_interval_s: float | None = 0.1,
    on_event: Any = None,
    env: dict[str, str] | None = None,
    sample_gate: Any = None,
) -> TrialResult:
    """Run one prepared config in one fresh worker process and collect its rows.

    The worker runs in a new session (process group); on timeout the whole group is killed with
    SIGKILL. sample_interval_s=None or 0 disables the parent's sampler (used to measure its cost).
    on_event(dict) is called for every protocol line (with "pid" added to the first, "spawn").
    sample_gate: optional callable; the sampler skips its tick while it returns False (used by
    bench/sampler_overhead.py to switch sampling on and off between repetitions of one process).
    """
    cfg, key = prep.config, prep.key
    res = TrialResult(key=key, process=process, ok=False, status="failed")
    if prep.skip_reason:
        res.status, res.reason = "skipped", prep.skip_reason
        return res
    payload = json.dumps(prep.worker_payload(process))
    stderr_f = tempfile.TemporaryFile(mode="w+b")
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    oom_before = _oom_kills()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        worker_command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr_f,
        start_new_session=True,
        env=child_env,
    )
    if on_event:
        on_event({"event": "spawn", "pid": proc.pid, "key": key, "process": process})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(payload.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    lines: queue.Queue = queue.Queue()

    def _reader() -> None:
        for raw in proc.stdout:  # type: ignore[union-attr]
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=_reader, daemon=True).start()
    phase = ["spawn"]
    sampler = None
    if sample_interval_s:
        sampler = _Sampler(proc.pid, sample_interval_s, t0, phase, sample_gate)
        sampler.start()
    deadline = None if not timeout_s else t0 + timeout_s
    events: dict[str, Any] = {}
    reps: list[dict] = []
    error: str | None = None
    timed_out = False
    try:
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = lines.get(timeout=wait)
            except queue.Empty:
                timed_out = True
                break
            if raw is None:
                break
            try:
                msg = json.loads(raw)
            except ValueError:
                continue  # not a protocol line
            if not isinstance(msg, dict) or "event" not in msg:
                continue
            ev = msg["event"]
            if on_event:
                on_event(msg)
            if ev == "loaded":
                phase[0] = "warmup"
            elif ev == "timed_start":
                phase[0] = "timed"
            elif ev == "timed_end":
                phase[0] = "end"
            if ev == "rep":
                reps.append(msg)
            elif ev == "error":
                error = msg.get("message", "worker error")
            else:
                events[ev] = msg
    except BaseException:  # KeyboardInterrupt (notebook interrupt), an on_event error, ...
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if sampler:
            sampler.stop()
        stderr_f.close()
        raise
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    # any stragglers in the worker's group (e.g. helper processes) go too
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    res.wall_s = time.monotonic() - t0
    if sampler:
        sampler.stop()
    stderr_f.seek(0)
    tail = stderr_f.read()[-4000:].decode("utf-8", "replace")
    stderr_f.close()
    res.stderr_tail, res.returncode = tail, rc
    res.info = {k: v for k, v in events.items() if k in ("hello", "loaded")}
    if sampler:
        res.info["sampler"] = {"n": sampler.n, "cpu_s": sampler.cpu_s, "interval_s": sample_interval_s}
    if sampler:
        for s in sampler.samples:
            res.samples.append({"config_key": key, "process": process, **s})
        for s in sampler.thread_samples:
            res.thread_samples.append({"config_key": key, "process": process, **s})
    if timed_out:
        res.status, res.reason = "timeout", f"timeout after {timeout_s:g} s: process group killed"
        return res
    if rc != 0 or error or "done" not in events:
        if error:
            res.reason = f"worker error: {error}"
        elif rc is not None and rc < 0:
            name = _signal_name(rc)
            oom_after = _oom_kills()
            if rc == -signal.SIGKILL and oom_before is not None and (oom_after or 0) > oom_before:
                res.reason = f"killed by {name}: out of memory (cgroup oom_kill count rose)"
            else:
                res.reason = f"killed by {name}"
        else:
            res.reason = f"worker exited with code {rc} before finishing"
        return res
    # -- success: build rows -----------------------------------------------------------------
    threads_ev = events.get("threads", {})
    loaded = events.get("loaded", {})
    plan_cpus = list(prep.plan.cpus)
    verdict = verify_placement(
        plan_cpus,
        threads_ev.get("before", []),
        threads_ev.get("after", []),
        wall_s=threads_ev.get("wall_s", 0.0),
        seen=sampler.seen if sampler else None,
        ort_default=cfg.threads is None,
    )
    res.placement = {k: v for k, v in verdict.items() if k != "rows"}
    for t in loaded.get("threads", []):
        res.threads.append(
            {
                "config_key": key,
                "process": process,
                "when": "after_load",
                "tid": t["tid"],
                "name": t["name"],
                "allowed": t.get("allowed", ""),
                "last_cpu": t["last_cpu"],
                "seen_cpus": str(t["last_cpu"]),
                "user_s": t["user_s"],
                "sys_s": t["sys_s"],
                "cpu_s": t.get("cpu_s", t["user_s"] + t["sys_s"]),
                "busy": t.get("cpu_s", t["user_s"] + t["sys_s"]) > 0.05,
            }
        )
    for r in verdict["rows"]:
        res.threads.append({"config_key": key, "process": process, "when": "decode", **r})
    hello = events.get("hello", {})
    base = {
        "config_key": key,
        "label": cfg.display,
        "model": cfg.model,
        "engine": cfg.engine,
        "threads": cfg.threads if cfg.threads is not None else -1,
        "ort_default": cfg.threads is None,
        "placement": cfg.placement,
        "strategy": cfg.plan_strategy(),
        "cpus": format_cpulist(plan_cpus),
        "n_cpus": len(set(plan_cpus)),
        "smt": cfg.smt or "asis",
        "prompt_tokens": events.get("prompt", {}).get("prompt_len", cfg.prompt_tokens),
        "gen_tokens": cfg.gen_tokens,
        "pin_threads": cfg.pin_threads,
        "env": json.dumps(hello.get("env_knobs", {}), sort_keys=True),
        "session": json.dumps(cfg.session, sort_keys=True),
        "process": process,
        "pid": hello.get("pid", proc.pid),
        "affinity_first": hello.get("onnxruntime_imported_before_affinity") is False,
        "ok": True,
        "load_s": loaded.get("load_s", float("nan")),
        "placement_ok": verdict["placement_ok"],
        "busy_threads": verdict["busy_threads"],
        "oversubscribed": verdict["oversubscribed"],
        "cpus_used": verdict["cpus_used"],
        "placement_reasons": "; ".join(verdict["reasons"]),
        "onnxruntime_version": loaded.get("onnxruntime_version"),
    }
    # what the worker read back of its own mask, against the plan (e.g. a kernel that narrowed
    # the mask when SMT siblings went offline)
    extra_reasons = []
    eff = hello.get("affinity")
    base["affinity"] = format_cpulist(eff) if eff is not None else ""
    if eff is not None and set(eff) != set(plan_cpus):
        extra_reasons.append(f"worker's affinity read back as {format_cpulist(eff)}, "
                             f"plan {format_cpulist(plan_cpus)}")
    if not base["affinity_first"]:
        extra_reasons.append("onnxruntime was imported before the affinity was set")
    if extra_reasons:
        base["placement_ok"] = False
        base["placement_reasons"] = "; ".join(
            [r for r in [base["placement_reasons"], *extra_reasons] if r])
    for r in reps:
        res.trials.append(
            {
                **base,
                "rep": r["rep"],
                "ttft_s": r["ttft_s"],
                "prefill_tok_s": r["prefill_tok_s"],
                "decode_tok_s": r["decode_tok_s"],
                "e2e_s": r["e2e_s"],
                "n_tokens": r["n_tokens"],
                "peak_rss_bytes": r["peak_rss_bytes"],
                "cpu_user_s": r["cpu_user_s"],
                "cpu_sys_s": r["cpu_sys_s"],
                "ctx_vol": r["ctx_vol"],
                "ctx_invol": r["ctx_invol"],
                "cpu_util_pct": r["cpu_util_pct"],
                "checksum": r["checksum"],
            }
        )
        # engine: token_latencies_s[0] is the TTFT (from start), then the gap to the previous token
        for i, x in enumerate(r["token_latencies_s"]):
            res.tokens.append(
                {
                    "config_key": key,
                    "process": process,
                    "rep": r["rep"],
                    "token_index": i,
                    "latency_s": x,
                    "phase": "prefill" if i == 0 else "decode",
                }
            )
    if not res.trials:
        res.reason = "worker finished without timed repetitions"
        return res
    res.ok, res.status = True, "ok"
    return res

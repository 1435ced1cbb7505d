"""Sweeps: many trial configs, each in several fresh processes, interleaved, stored as they end.

`sweep(configs, out=..., processes=3)` validates everything first (bad engine, placement, thread
count or model raise before any trial), then runs every (config, process) unit in an interleaved
order (round-robin, or a seeded shuffle per round), writes each unit's rows to the run folder as
it completes, records failures (timeout, crash, signal, OOM, skipped SMT points) and goes on, and
returns a `Run`. Running again on the same folder resumes: completed units are skipped.
With ``adaptive=Adaptive(...)`` the rounds go on only for the configs that still need a process
(see :mod:`coresweep.measurement.adaptive`); every config's stop is recorded in run.json.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.measurement import adaptive as _adaptive
from coresweep.measurement.config import TrialConfig
from coresweep.measurement.rows import MEASUREMENT_VERSION
from coresweep.measurement.run import Run
from coresweep.measurement.store import Store
from coresweep.measurement.trial import PreparedTrial, TrialResult, prepare, run_trial
from coresweep.provenance import collect_versions, now_iso

ORDERS = ("interleave", "shuffle", "sequential")


def grid(base: TrialConfig | dict[str, Any] | None = None, **axes: Any) -> list[TrialConfig]:
    """Expand parameters into configs: every list/tuple value is an axis, anything else is fixed.

    >>> grid(model="tiny", threads=[1, 2], placement=["physical", "compact"], reps=3)  # 4 configs
    `env` and `session` take a dict (fixed) or a list of dicts (an axis).
    """
    names = {f.name for f in dataclasses.fields(TrialConfig)}
    unknown = sorted(set(axes) - names)
    if unknown:
        raise CoresweepError(f"unknown config field(s) {unknown}; valid fields: {sorted(names)}")
    if isinstance(base, TrialConfig):
        base_d = base.to_dict()
    else:
        base_d = dict(base or {})
    fixed = {k: v for k, v in axes.items() if not isinstance(v, (list, tuple))}
    varying = {k: list(v) for k, v in axes.items() if isinstance(v, (list, tuple))}
    for k, v in varying.items():
        if not v:
            raise CoresweepError(f"grid axis {k!r} is empty")
    out = []
    for combo in itertools.product(*varying.values()):
        d = {**base_d, **fixed, **dict(zip(varying, combo, strict=True))}
        out.append(TrialConfig.from_dict(d))
    return out


def unit_order(
    configs: Sequence[Any], processes: int, order: str = "interleave", seed: int = 0
) -> list[tuple[int, int]]:
    """(config index, process index) in run order. interleave: round-robin over configs each round;
    shuffle: a seeded permutation per round; sequential: all processes of a config in a row."""
    import numpy as np

    if order not in ORDERS:
        raise CoresweepError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    n = len(configs)
    if order == "sequential":
        return [(i, p) for i in range(n) for p in range(processes)]
    rng = np.random.default_rng(seed)
    out = []
    for p in range(processes):
        idx = list(range(n)) if order == "interleave" else [int(i) for i in rng.permutation(n)]
        out.extend((i, p) for i in idx)
    return out


def _unit_frames(res: TrialResult) -> dict[str, Any]:
    import pandas as pd

    return {
        "trials": pd.DataFrame(res.trials),
        "tokens": pd.DataFrame(res.tokens),
        "samples": pd.DataFrame(res.samples),
        "thread_samples": pd.DataFrame(res.thread_samples),
        "threads": pd.DataFrame(res.threads),
    }


def _failure_frame(prep: PreparedTrial, res: TrialResult) -> Any:
    import pandas as pd

    cfg = prep.config
    return pd.DataFrame(
        [
            {
                "config_key": prep.key,
                "label": cfg.display,
                "threads": cfg.threads if cfg.threads is not None else -1,
                "placement": cfg.placement,
                "smt": cfg.smt or "asis",
                "process": res.process,
                "status": res.status,
                "reason": res.reason or "",
                "returncode": res.returncode if res.returncode is not None else 0,
                "stderr_tail": res.stderr_tail,
                "wall_s": res.wall_s,
                "time": now_iso(),
            }
        ]
    )


def _check_args(processes: Any, order: str, timeout_s: float | None,
                adaptive: Any = None) -> None:
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise CoresweepError(f"processes must be a positive integer, got {processes!r}")
    if order not in ORDERS:
        raise CoresweepError(f"unknown order {order!r}; valid: {', '.join(ORDERS)}")
    if adaptive is not None and not isinstance(adaptive, _adaptive.Adaptive):
        raise CoresweepError(f"adaptive must be None or coresweep.measurement.adaptive.Adaptive, "
                             f"got {adaptive!r}")
    if adaptive is not None and order == "sequential":
        raise CoresweepError("an adaptive sweep runs in rounds (one process per config each); "
                             "valid orders with adaptive: interleave, shuffle")
    if timeout_s is not None and timeout_s <= 0:
        raise CoresweepError(f"timeout_s must be > 0 or None, got {timeout_s!r}")


def _prepare(configs: list[TrialConfig], topo: Any, check_mem: bool,
             smt_root: str | Path) -> list[PreparedTrial]:
    preps = prepare(configs, topo=topo, check_mem=check_mem, smt_root=smt_root)
    keys = [p.key for p in preps]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise CoresweepError(f"duplicate configs in the sweep (same key {sorted(dup)}); remove "
                             "repeats")
    return preps


def _config_entry(p: PreparedTrial) -> dict[str, Any]:
    return {"key": p.key, "label": p.config.display, "config": p.config.to_dict(),
            "plan": p.plan.to_dict() if hasattr(p.plan, "to_dict") else list(p.plan.cpus),
            "model_dir": p.model_dir, "weight_bytes": p.weight_bytes,
            "skip_reason": p.skip_reason}


def _start_session(store: Store, preps: list[PreparedTrial], topo: Any, params: Any,
                   sweep_args: dict[str, Any], keep_sweep: bool = False) -> None:
    """run.json: the configs, this session's machine, versions and fingerprint (resuming with
    other versions warns: each session's are kept). ``keep_sweep``: a refining pass keeps the
    run's own sweep arguments and parameters."""
    from coresweep.machine.fingerprint import fingerprint, machine_name

    meta = store.read_meta()
    started = now_iso()
    known = {c["key"]: c for c in meta.get("configs", [])}
    known.update({p.key: _config_entry(p) for p in preps})
    fp, versions = fingerprint(topo), collect_versions()
    if meta.get("versions") and meta["versions"] != versions:
        warnings.warn(
            f"resuming {store.path} with other versions than its earlier rows "
            f"({meta['versions']} then, {versions} now): each session's versions are kept "
            "in run.json sessions[], each row's onnxruntime version in the trials table",
            stacklevel=3)
    meta.setdefault("created", started)
    if keep_sweep and meta.get("sweep"):
        sweep_args, params = meta["sweep"], meta.get("params", params)
    meta.update({"start": meta.get("start", started), "end": None,
                 "machine": machine_name(topo), "fingerprint": fp, "versions": versions,
                 "params": params if params is not None else meta.get("params", {}),
                 "sweep": sweep_args, "configs": list(known.values())})
    session = {"start": started, "end": None, "pid": os.getpid(), "resumed_units": 0,
               "machine": machine_name(topo), "versions": versions, "fingerprint": fp}
    meta.setdefault("sessions", []).append(session)
    store.write_meta(meta)


def _note_stale(store: Store, stale: set[tuple[str, int]]) -> None:
    """This session measures again the units an older timed loop measured (run.json says so)."""
    meta = store.read_meta()
    meta["sessions"][-1]["remeasured_units"] = len(stale)
    meta["sessions"][-1]["remeasured_why"] = (
        f"measured by an older timed loop (measurement version < {MEASUREMENT_VERSION}): "
        "measured again, not mixed")
    store.write_meta(meta)


def _skipped_before(store: Store) -> set[tuple[str, int]]:
    fails = store.load_table("failures")
    if not len(fails):
        return set()
    sk = fails[fails["status"] == "skipped"]
    return set(zip(sk["config_key"], sk["process"], strict=True))


def _store_unit(store: Store, prep: PreparedTrial, res: TrialResult) -> None:
    if res.ok:
        store.write_unit(prep.key, res.process, _unit_frames(res))
    else:
        store.write_failure(prep.key, res.process, _failure_frame(prep, res))


def _postfix(prep: PreparedTrial, res: TrialResult, counts: dict[str, int]) -> dict[str, Any]:
    post = {"cfg": prep.config.display[:30], **{k: v for k, v in counts.items() if v}}
    if res.ok:
        dec = sorted(r["decode_tok_s"] for r in res.trials)
        post["decode"] = f"{dec[len(dec) // 2]:.1f} tok/s"
    return post


def _run_units(store: Store, preps: list[PreparedTrial], todo: list[tuple[int, int]], *,
               timeout_s: float | None, sample_interval_s: float | None, cooldown_s: float,
               progress: bool, on_event: Any, smt_root: str | Path,
               desc: str = "sweep") -> dict[str, int]:
    """Each (config, process) unit in order; rows stored as each ends; counts by status."""
    from tqdm import tqdm  # plain text bar: also fine in papermill-run notebooks

    skipped_before = _skipped_before(store)
    counts = {"ok": 0, "failed": 0, "timeout": 0, "skipped": 0}
    bar = tqdm(total=len(todo), unit="trial", desc=desc, disable=not progress, leave=True,
               mininterval=1.0, file=sys.stderr)
    try:
        for n, (i, p) in enumerate(todo):
            prep = preps[i]
            if not (prep.skip_reason and (prep.key, p) in skipped_before):
                res = _run_unit(prep, p, timeout_s, sample_interval_s, on_event, smt_root)
                counts[res.status] = counts.get(res.status, 0) + 1
                _store_unit(store, prep, res)
                if on_event:
                    on_event({"event": "unit_end", "key": prep.key, "process": p,
                              "status": res.status, "reason": res.reason})
                bar.set_postfix(_postfix(prep, res, counts), refresh=False)
                if cooldown_s and n < len(todo) - 1:
                    time.sleep(cooldown_s)
            bar.update(1)
    finally:
        bar.close()
    return counts


def _end_session(store: Store, counts: dict[str, int], resumed: int) -> None:
    meta = store.read_meta()
    meta["end"] = now_iso()
    if meta.get("sessions"):
        meta["sessions"][-1].update({"end": meta["end"], "resumed_units": resumed,
                                     **{f"units_{k}": v for k, v in counts.items()}})
    store.write_meta(meta)


def sweep(configs: Iterable[TrialConfig] | TrialConfig, out: str | Path | None = None,
          processes: int = 3, *, order: str = "interleave", seed: int = 0,
          cooldown_s: float = 0.0, timeout_s: float | None = 600.0,
          sample_interval_s: float | None = 0.1, progress: bool = True, resume: bool = True,
          params: dict[str, Any] | None = None, topo: Any = None, smt_root: str | Path = "/",
          on_event: Callable[[dict], None] | None = None, check_mem: bool = True,
          adaptive: _adaptive.Adaptive | None = None,
          keep: Mapping[str, str] | None = None, refining: str | None = None) -> Run:
    """Run every config in `processes` fresh worker processes and return the Run.

    out: run folder (created; default: a new temp dir). order: "interleave" (round-robin),
    "shuffle" (seeded permutation per round) or "sequential". cooldown_s: sleep between units.
    timeout_s: per worker process; the whole process group is killed. sample_interval_s: parent's
    CPU/thread sampling period (None/0 = off). resume=False refuses a folder that already holds
    completed units. on_event(dict) sees every worker protocol line plus "unit_end".
    adaptive: run in rounds until each config stops (target, dropped as worse, or `processes`
    as the cap); keep: config key -> why it is never dropped (controls are kept anyway).
    refining: why these configs get more processes than the run's design (a decision that is not
    settled): the run's recorded sweep arguments stay, each config's stop becomes "refined".
    """
    from coresweep.machine.fingerprint import machine_name
    from coresweep.machine.topology import read_topology

    configs = [configs] if isinstance(configs, TrialConfig) else list(configs)
    _check_args(processes, order, timeout_s, adaptive)
    topo = topo if topo is not None else read_topology()
    preps = _prepare(configs, topo, check_mem, smt_root)
    store = Store(out if out is not None
                  else tempfile.mkdtemp(prefix=f"coresweep-{machine_name(topo)}-"))
    with store:
        store.check_readable()  # refuse to append to a folder of a newer result schema
        done = store.completed_units(MEASUREMENT_VERSION)
        stale = store.completed_units() - done  # measured by an older timed loop: again
        if done and not resume:
            raise CoresweepError(
                f"{store.path} already holds {len(done)} completed trial(s); pass resume=True "
                "to continue it or choose a new out= folder")
        args = {"processes": processes, "order": order, "seed": seed, "cooldown_s": cooldown_s,
                "timeout_s": timeout_s, "sample_interval_s": sample_interval_s,
                "adaptive": adaptive.target if adaptive else None}
        _start_session(store, preps, topo, params, args, keep_sweep=refining is not None)
        if stale:
            _note_stale(store, stale)
        resumed = sum((p.key, q) in done for p in preps for q in range(processes))
        run_args = {"timeout_s": timeout_s, "sample_interval_s": sample_interval_s,
                    "cooldown_s": cooldown_s, "progress": progress, "on_event": on_event,
                    "smt_root": smt_root}
        counts: dict[str, int] = {}
        try:
            if adaptive is None:
                counts = _run_fixed(store, preps, done, processes, order, seed, run_args,
                                    refining)
            else:
                counts = _run_adaptive(store, preps, done, processes, order, seed, adaptive,
                                       _adaptive.protected(configs, keep), run_args)
        finally:
            _end_session(store, counts, resumed)
    return Run.load(store.path)


def _run_fixed(store: Store, preps: list[PreparedTrial], done: set, processes: int, order: str,
               seed: int, run_args: dict[str, Any], refining: str | None = None) -> dict[str, int]:
    """Every (config, process) unit not done yet; then each config's stop: "fixed" (or
    "refined" when the units were added to settle a decision)."""
    units = unit_order(preps, processes, order, seed)
    todo = [(i, p) for i, p in units if (preps[i].key, p) not in done]
    counts = _run_units(store, preps, todo, **run_args, desc="refine" if refining else "sweep")
    complete = store.completed_units(MEASUREMENT_VERSION)
    n = {p.key: sum((p.key, q) in complete for q in range(processes)) for p in preps}
    stops = (_adaptive.refined_stops(n, refining) if refining
             else _adaptive.fixed_stops(n, n, processes))
    _record_stops(store, stops)
    return counts


def _run_adaptive(store: Store, preps: list[PreparedTrial], done: set, cap: int, order: str,
                  seed: int, settings: _adaptive.Adaptive, keep: Mapping[str, str],
                  run_args: dict[str, Any]) -> dict[str, int]:
    """Rounds of one process per active config; after each round the configs that stop (see
    coresweep.measurement.adaptive) leave. Completed units are reused, so a resume replays the
    same decisions from the stored trials."""
    configs = [p.config for p in preps]
    active = list(range(len(preps)))
    counts: dict[str, int] = {}
    for rnd in range(cap):
        idx = [active[j] for j in _adaptive.round_order(len(active), rnd, order, seed)]
        todo = [(i, rnd) for i in idx if (preps[i].key, rnd) not in done]
        ended: dict[str, tuple[str, str]] = {}
        outer = run_args["on_event"]

        def note(e: dict, ended: dict = ended, outer: Any = outer) -> None:
            if e.get("event") == "unit_end":
                ended[e["key"]] = (e["status"], e.get("reason") or "")
            if outer:
                outer(e)

        got = _run_units(store, preps, todo, **{**run_args, "on_event": note},
                         desc=f"round {rnd + 1}/{cap}")
        counts = {k: counts.get(k, 0) + got.get(k, 0) for k in {*counts, *got}}
        complete = store.completed_units(MEASUREMENT_VERSION)
        unfinished = {preps[i].key: _unfinished(store, preps[i], rnd, ended)
                      for i in idx if (preps[i].key, rnd) not in complete}
        stops = _adaptive.decide([configs[i] for i in active], configs, store.load_table("trials"),
                                 rnd, target=settings.target, cap=cap, keep=keep,
                                 unfinished=unfinished)
        _record_stops(store, stops)
        active = [i for i in active if preps[i].key not in stops]
        if not active:
            break
    return counts


def _unfinished(store: Store, prep: PreparedTrial, rnd: int,
                ended: Mapping[str, tuple[str, str]]) -> tuple[str, str]:
    """(status, reason) of a unit of this round without trials: from this session, else from the
    failures recorded earlier (a skipped SMT point is not run again)."""
    if prep.key in ended:
        return ended[prep.key]
    f = store.load_table("failures")
    if len(f):
        f = f[(f["config_key"] == prep.key) & (f["process"] == rnd)]
        if len(f):
            return str(f["status"].iloc[-1]), str(f["reason"].iloc[-1])
    return "failed", prep.skip_reason or "no trials recorded"


def _record_stops(store: Store, stops: Mapping[str, _adaptive.Stop]) -> None:
    """run.json ``stops``: per config key, why it stopped getting processes (latest sweep)."""
    if stops:
        meta = store.read_meta()
        meta["stops"] = {**meta.get("stops", {}), **{k: s.to_dict() for k, s in stops.items()}}
        store.write_meta(meta)


def _run_unit(
    prep: PreparedTrial,
    process: int,
    timeout_s: float | None,
    sample_interval_s: float | None,
    on_event: Callable[[dict], None] | None,
    smt_root: str | Path,
) -> TrialResult:
    cfg = prep.config
    if cfg.smt_mode == "sysfs" and cfg.smt and not prep.skip_reason:
        from coresweep.machine.smt import SmtError, smt_state

        try:
            with smt_state(cfg.smt, smt_root):
                stale = _plan_unfit_after_switch(prep, smt_root)
                if stale:
                    return TrialResult(prep.key, process, ok=False, status="skipped",
                                       reason=stale)
                return run_trial(
                    prep, process, timeout_s=timeout_s, sample_interval_s=sample_interval_s,
                    on_event=on_event,
                )
        except SmtError as exc:
            return TrialResult(prep.key, process, ok=False, status="skipped", reason=str(exc))
    return run_trial(
        prep, process, timeout_s=timeout_s, sample_interval_s=sample_interval_s, on_event=on_event
    )


def _plan_unfit_after_switch(prep: PreparedTrial, smt_root: str | Path) -> str | None:
    """Plans are made before SMT is switched: after the switch, an "on" plan must hold a pair of
    siblings and every CPU of the plan must be online, or the point would measure something else."""
    from coresweep.machine.topology import read_topology

    try:
        topo = read_topology(smt_root)
    except (OSError, CoresweepError):
        return None  # nothing to check against (a fake tree holding only smt/)
    cpus = list(prep.plan.cpus)
    offline = [c for c in cpus if c not in topo.online]
    if offline:
        return (f"SMT {prep.config.smt}: CPUs {offline} of the plan are offline after the switch; "
                "plan with the machine in that state")
    if prep.config.smt == "on" and not any(
        len(set(topo.siblings(c)) & set(cpus)) > 1 for c in cpus if c in topo.cpus
    ):
        return (f"SMT on, but the plan (made before the switch) holds no pair of SMT siblings "
                f"(CPUs {cpus}); plan with SMT on")
    return None


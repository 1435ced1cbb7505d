"""Batch runs: every study's notebook executed by papermill into one run folder.

`run_batch(params_file, overrides, out=...)` validates every parameter and trial config first,
builds the model if it is a preset not built yet, then executes each study's notebook into
``reports/<machine>-<timestamp>/`` (executed .ipynb, ``data/`` tables, ``run.json`` from the
store, ``batch.json`` with the parameters and notebook statuses), printing progress and an ETA.
Re-running on the same folder reuses finished trials (the store's resume). `rerender()` renders
the HTML, summary and index of existing run folders again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coresweep import studies
from coresweep.errors import CoresweepError, ParamsError
from coresweep.provenance import now_iso, utc_stamp
from coresweep.report.budget import (
    kept_studies,
    needed_batch,
    needed_threads,
    parse_budget,
    plan_batch,
)
from coresweep.report.calibrate import calibrate, thread_counts
from coresweep.report.html import banner, render_html
from coresweep.report.index import (
    index_of,
    is_reports_folder,
    no_index_note,
    update_index,
    write_index,
)
from coresweep.report.paths import (
    fmt_s,
    new_folder,
    notebook_dir,
    read_json,
    reports_root,
    run_file,
    write_json,
)
from coresweep.report.summary import finish_run


def _build_model(resolved: studies.Resolved, log: Any) -> None:
    """Every format the run's runtimes read (ONNX; the GGUF for llamacpp) of a preset."""
    from coresweep.engines import model_format
    from coresweep.models import PRESETS, resolve_model
    from coresweep.studies.common import runtimes

    if resolved["model"] not in PRESETS:
        return
    for fmt in dict.fromkeys(model_format(r) for r in runtimes(resolved.values)):
        t0 = time.monotonic()
        log(f"model: {resolved['model']} ({resolved['precision']}, {fmt}) — building if missing")
        path = resolve_model(resolved["model"], resolved["precision"], build=True, fmt=fmt)
        log(f"model: {path} ({time.monotonic() - t0:.0f} s)")


def explicit_keys(params_file: str | Path | None, overrides: Sequence[str] | Mapping) -> set[str]:
    """The parameters the user set to a value (in the file or on the command line; "auto" is
    not a value): the budget keeps them."""
    from coresweep.parameters import read_yaml

    given = dict(read_yaml(params_file)) if params_file is not None else {}
    if isinstance(overrides, Mapping):
        given.update(overrides)
    else:
        given.update(tuple(s.strip() for s in o.split("=", 1)) for o in overrides if "=" in o)
    return {k for k, v in given.items() if v != "auto"}


def _configs_checked(checked: dict[str, Any], chosen: Sequence[Any], topo: Any,
                     build: bool, log: Any) -> tuple[Any, dict[str, list]]:
    """Resolve the parameters and prepare every study's configs (placements, model) before any
    trial; the model is built here when it is a missing preset. ``build`` False (planning for
    a captured topology) checks the parameters and placements only."""
    from coresweep.measurement.trial import prepare
    from coresweep.studies.common import check_model

    resolved = studies.validate(checked, topo=topo, names=[s.id for s in chosen], model=False)
    configs = {s.id: s.configs(resolved) for s in chosen}
    if any(configs.values()):
        check_model(resolved["model"], resolved["precision"], runtime=resolved["runtime"])
    if any(configs.values()) and build:
        _build_model(resolved, log)
        for sid, cfgs in configs.items():
            if cfgs:
                try:
                    prepare(cfgs, topo=topo, build=True, check_mem=True)
                except CoresweepError as exc:
                    raise ParamsError(f"notebook {sid}: {exc}") from None
    return resolved, configs


def prepare_batch(params_file: str | Path | None, overrides: Sequence[str] | Mapping = (), *,
                  notebooks: Sequence[str] | None = None, topo: Any = None, build: bool = True,
                  log: Any = print, started: float | None = None,
                  calibration: Any = None) -> dict[str, Any]:
    """Validate everything a batch needs before any trial: parameters, placements of every trial
    config on this machine, the model (built here when it is a missing preset); then, under a
    budget, calibrate (unless given a calibration) and plan every study to fit."""
    from coresweep.studies.common import live_topology

    started = time.time() if started is None else started
    chosen = studies.select(notebooks)
    checked = studies.load(params_file, overrides)
    topo = topo if topo is not None else live_topology()
    resolved, configs = _configs_checked(checked, chosen, topo, build, log)
    out = {"checked": checked, "resolved": resolved, "configs": configs, "topo": topo,
           "studies": chosen, "plan": None, "calibration": calibration, "started": started}
    budget_s = parse_budget(checked["budget"])
    if budget_s is None or not any(configs.values()):
        return out
    cal = calibration or calibrate(resolved.values, topo,
                                   thread_counts(needed_threads(resolved, chosen),
                                                 len(topo.allowed)),
                                   batch=needed_batch(resolved, chosen), log=log)
    plan = plan_batch(checked, topo, chosen, cal, budget_s=budget_s,
                      spent_s=time.time() - started, explicit=explicit_keys(params_file,
                                                                           overrides),
                      validate=lambda v, ss: studies.validate(v, topo=topo, model=False,
                                                              names=[s.id for s in ss]))
    chosen = kept_studies(plan, chosen)
    resolved, configs = _configs_checked(plan.values, chosen, topo, build, lambda _: None)
    return {**out, "checked": plan.values, "resolved": resolved, "configs": configs,
            "studies": chosen, "plan": plan, "calibration": cal}


def unplanned_estimates(configs: Mapping[str, list], processes: int) -> dict[str, Any]:
    """Without a budget: each trial process one item of unknown length (a rate-based ETA)."""
    from coresweep.measurement.store import Store
    from coresweep.report.budget import StudyEstimate

    return {sid: StudyEstimate(sid, f"{len(cfgs)} points",
                               {Store.unit_name(c.key(), p): 1.0 for c in cfgs
                                for p in range(processes)}, 0.0)
            for sid, cfgs in configs.items()}


class _Batch:
    """One batch run's state: the run folder, batch.json, the plan and its ETA, timing."""

    def __init__(self, prepared: dict[str, Any], run_dir: Path, say: Any):
        from coresweep.measurement.rows import MEASUREMENT_VERSION
        from coresweep.measurement.store import Store
        from coresweep.report.progress import Eta

        self.prepared, self.run_dir, self.say = prepared, run_dir, say
        self.started = prepared["started"]  # time.time() the budget counts from
        self.params = {**prepared["checked"], "run_dir": str(run_dir)}
        processes = int(self.params["processes"])
        done = (Store(run_dir).completed_units(MEASUREMENT_VERSION)
                if (run_dir / "data").exists() else set())
        self.units = {sid: [(c.key(), p) for c in cfgs for p in range(processes)]
                      for sid, cfgs in prepared["configs"].items()}
        self.todo = {sid: [u for u in us if u not in done] for sid, us in self.units.items()}
        self.reused = len(done)
        plan = prepared["plan"]
        self.eta = (Eta({e.study: e for e in plan.estimates}) if plan is not None else
                    Eta(unplanned_estimates(prepared["configs"], processes), planned=False))
        self.meta: dict[str, Any] = {}

    def write_meta(self, params_file: Any, overrides: Any) -> None:
        from coresweep.machine.fingerprint import machine_name

        topo = self.prepared["topo"]
        path = run_file(self.run_dir, "batch")
        meta = read_json(path)
        plan, cal = self.prepared["plan"], self.prepared["calibration"]
        meta.update({
            "params_file": str(params_file) if params_file else None,
            "overrides": dict(overrides) if isinstance(overrides, Mapping) else list(overrides),
            "params": self.params,
            "resolved": self.prepared["resolved"].to_dict(),
            "machine": machine_name(topo),
            "cpu": getattr(topo, "model_name", None),
            "notebooks": meta.get("notebooks", {}),
            "plan": plan.to_dict() if plan is not None else None,
            "calibration": cal.to_dict() if cal is not None else None,
        })
        meta.setdefault("created", now_iso())
        meta["started"] = now_iso()
        self.meta = meta
        write_json(path, meta)

    def notebook_params(self, study: Any, later: Sequence[Any]) -> dict[str, Any]:
        """The notebook's parameters; under a budget, ``study_budget_s`` is what is left of it
        once the later studies' estimates are set aside (at least this study's own estimate)."""
        params = {k: self.params[k] for k in study.keys() if k in self.params}
        plan = self.prepared["plan"]
        if plan is not None and plan.budget_s is not None and "study_budget_s" in params:
            own = self.eta.estimates[study.id].seconds
            after = sum(self.eta.estimates[s.id].seconds for s in later)
            left = plan.budget_s - (time.time() - self.started) - after
            params["study_budget_s"] = round(max(own, left), 1)
        return params

    def run_notebook(self, i: int, chosen: Sequence[Any], *, kernel_name: str,
                     progress: bool, html_reports: bool = True) -> str:
        """Execute one study's notebook and render its HTML; returns "ok" or "failed" (the
        error is recorded)."""
        import papermill as pm

        from coresweep.report.progress import Watcher, done_items

        study = chosen[i - 1]
        label = f"[{i}/{len(chosen)}] {study.id}"
        left = self.eta.remaining_s(done_items(self.run_dir))
        self.say(f"{label}: {len(self.todo.get(study.id, []))} worker process(es) (elapsed "
                 f"{fmt_s(time.time() - self.started)}"
                 + (f", ETA {fmt_s(left)} left)" if left is not None else ")"))
        src = notebook_dir()
        status, error = "ok", None
        self.eta.start(study.id)
        with Watcher(self.eta, self.run_dir, label, self.say):
            try:
                pm.execute_notebook(str(src / f"{study.id}.ipynb"),
                                    str(run_file(self.run_dir, "ipynb", study.id)),
                                    parameters=self.notebook_params(study, chosen[i:]),
                                    kernel_name=kernel_name, progress_bar=progress, cwd=str(src))
            except pm.PapermillExecutionError as exc:
                status, error = "failed", f"{exc.ename}: {exc.evalue}"
                self.say(f"{study.id} FAILED: {error}")
        executed = run_file(self.run_dir, "ipynb", study.id)
        if html_reports and executed.exists():
            render_html(executed, banner=banner(self.meta, listed=bool(index_of(self.run_dir))))
        wall = self.eta.finish(study.id)
        self.record(study, status, error, wall)
        self.say(f"{label}: {status} in {fmt_s(wall)}")
        return status

    def record(self, study: Any, status: str, error: str | None, wall: float) -> None:
        est = self.eta.estimates.get(study.id)
        self.meta["notebooks"][study.id] = {
            "status": status, "error": error, "wall_s": round(wall, 1),
            "estimate_s": round(est.seconds, 1) if est is not None and self.eta.planned
            else None, "units": len(self.units.get(study.id, [])),
            "units_run": len(self.todo.get(study.id, [])), "end": now_iso()}
        write_json(run_file(self.run_dir, "batch"), self.meta)

    def finish(self) -> None:
        self.meta["finished"] = now_iso()
        self.meta["wall_s"] = round(time.time() - self.started, 1)
        write_json(run_file(self.run_dir, "batch"), self.meta)
        finish_run(self.run_dir)


def _stderr_log(msg: str) -> None:
    print(f"coresweep run: {msg}", file=sys.stderr, flush=True)


def plan_only(params_file: str | Path | None = None, overrides: Sequence[str] | Mapping = (), *,
              notebooks: Sequence[str] | None = None, topology_root: str | Path | None = None,
              calibration: str | Path | None = None, log: Any = None) -> Any:
    """The plan `coresweep run --plan` prints, without running any study: on this machine
    (the model built if missing, a short calibration), or for a captured topology
    (``topology_root``) with a calibration file. Returns the BatchPlan (None: budget off)."""
    from coresweep.machine.topology import read_topology
    from coresweep.report.calibrate import Calibration

    say = log or _stderr_log
    if topology_root is not None and calibration is None:
        raise ParamsError("--sysfs plans for another machine: give --calibration FILE too "
                          "(this machine's calibration would not describe it)")
    topo = read_topology(topology_root) if topology_root is not None else None
    cal = Calibration.read(calibration) if calibration is not None else None
    prepared = prepare_batch(params_file, overrides, notebooks=notebooks, topo=topo,
                             build=topology_root is None, log=say, calibration=cal)
    plan = prepared["plan"]
    for line in plan.lines() if plan is not None else ["budget off: no plan (every value as "
                                                       "given)"]:
        say(line)
    return plan, prepared["calibration"]


def run_batch(params_file: str | Path | None = None, overrides: Sequence[str] | Mapping = (), *,
              out: str | Path | None = None, notebooks: Sequence[str] | None = None,
              html_reports: bool = True, progress: bool = True, kernel_name: str = "python3",
              log: Any = None, started: float | None = None) -> Path:
    """Validate, plan within the budget, then run the notebooks with papermill into a run
    folder; render HTML, the summary and the index. Returns the run folder. Raises
    CoresweepError on a failed notebook (after rendering what ran). ``started``: the time.time()
    the budget counts from (default: now)."""
    from coresweep.machine.fingerprint import machine_name

    say = log or _stderr_log
    prepared = prepare_batch(params_file, overrides, notebooks=notebooks, log=say,
                             started=started)
    if prepared["plan"] is not None:
        for line in prepared["plan"].lines():
            say(line)
    run_dir = (Path(out) if out else  # two runs started in the same second: two folders
               new_folder(reports_root(), f"{machine_name(prepared['topo'])}-{utc_stamp()}"))
    run_dir = run_dir.expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    batch = _Batch(prepared, run_dir, say)
    batch.write_meta(params_file, overrides)
    chosen = prepared["studies"]
    say(f"{len(chosen)} notebook(s) into {run_dir}; {sum(map(len, batch.todo.values()))} worker "
        "process(es) to run" + (f", {batch.reused} reused" if batch.reused else ""))
    failed = []
    for i, study in enumerate(chosen, 1):
        if batch.run_notebook(i, chosen, kernel_name=kernel_name, progress=progress,
                              html_reports=html_reports) != "ok":
            failed.append(study.id)
    batch.finish()
    if batch.eta.planned:
        for line in batch.eta.report():
            say(line)
    say(f"done in {fmt_s(time.time() - batch.started)}: {run_dir}")
    index = update_index(run_dir)  # only in a reports folder, never beside an --out elsewhere
    say(f"index: {index}" if index else no_index_note(run_dir))
    if failed:
        raise CoresweepError(f"notebook(s) failed: {', '.join(failed)}; see the executed "
                             f"notebooks and HTML in {run_dir}")
    return run_dir


def rerender(run_dirs: Sequence[str | Path] = ()) -> Path | None:
    """Re-render the HTML, summary and index of run folders (all under reports/ when none);
    returns the index written last, None when no folder given sits in a reports folder."""
    dirs = [Path(d) for d in run_dirs] or [d for d in sorted(reports_root().glob("*"))
                                           if run_file(d, "batch").exists()]
    roots = set()
    for d in dirs:
        if not d.is_dir():
            raise CoresweepError(f"{d} is not a run folder")
        meta = read_json(run_file(d, "batch"))
        for s in studies.all_studies():
            if run_file(d, "ipynb", s.id).exists():
                render_html(run_file(d, "ipynb", s.id),
                            banner=banner(meta, listed=bool(index_of(d))))
        finish_run(d)
        roots.add(d.resolve().parent)
    if not run_dirs:
        return write_index(reports_root())
    written = [write_index(r) for r in sorted(roots) if is_reports_folder(r)]
    return written[-1] if written else None

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
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coresweep import studies
from coresweep.errors import CoresweepError, ParamsError
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
    notebook_dir,
    now_iso,
    read_json,
    reports_root,
    run_file,
    stamp,
    write_json,
)
from coresweep.report.summary import finish_run


def _build_model(resolved: studies.Resolved, log: Any) -> None:
    from coresweep.models import PRESETS, resolve_model

    if resolved["model"] in PRESETS:
        t0 = time.monotonic()
        log(f"model: {resolved['model']} ({resolved['precision']}) — building if missing")
        path = resolve_model(resolved["model"], resolved["precision"], build=True)
        log(f"model: {path} ({time.monotonic() - t0:.0f} s)")


def prepare_batch(params_file: str | Path | None, overrides: Sequence[str] | Mapping = (), *,
                  notebooks: Sequence[str] | None = None, topo: Any = None, build: bool = True,
                  log: Any = print) -> dict[str, Any]:
    """Validate everything a batch needs before any trial: parameters, placements of every trial
    config on this machine, the model (built here when it is a missing preset)."""
    from coresweep.measurement.trial import prepare
    from coresweep.studies.common import check_model, live_topology

    chosen = studies.select(notebooks)
    checked = studies.load(params_file, overrides)
    topo = topo if topo is not None else live_topology()
    resolved = studies.validate(checked, topo=topo, names=[s.id for s in chosen], model=False)
    configs = {s.id: s.configs(resolved) for s in chosen}
    if any(configs.values()):
        check_model(resolved["model"], resolved["precision"])
        if build:
            _build_model(resolved, log)
        for sid, cfgs in configs.items():
            if cfgs:
                try:
                    prepare(cfgs, topo=topo, build=build, check_mem=True)
                except CoresweepError as exc:
                    raise ParamsError(f"notebook {sid}: {exc}") from None
    return {"checked": checked, "resolved": resolved, "configs": configs, "topo": topo,
            "studies": chosen}


class _Progress:
    """Watches the run folder while a notebook runs and prints finished worker processes with
    the elapsed time and an ETA for the whole batch (rate measured in this batch)."""

    def __init__(self, run_dir: Path, units: Sequence[tuple[str, int]], later: int,
                 t_start: float, say: Any, label: str, every_s: float = 2.0):
        self.run_dir, self.units, self.later = run_dir, set(units), later
        self.t_start, self.say, self.label, self.every_s = t_start, say, label, every_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="coresweep-progress")
        self.t0 = time.monotonic()
        self.last = 0

    def __enter__(self) -> _Progress:
        if self.units:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _finished(self) -> int:
        from coresweep.measurement.store import Store

        store = Store(self.run_dir)
        done = store.completed_units() & self.units
        failures = store.data / "failures"
        failed = {u for u in self.units - done
                  if any(failures.glob(f"{Store.unit_name(*u)}__*.parquet"))}
        return len(done) + len(failed)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.every_s):
            n = self._finished()
            if n == self.last:
                continue
            self.last = n
            rate = (time.monotonic() - self.t0) / n
            remaining = (len(self.units) - n) + self.later
            self.say(f"{self.label}: {n}/{len(self.units)} worker processes done · elapsed "
                     f"{fmt_s(time.monotonic() - self.t_start)} · ETA {fmt_s(remaining * rate)}")


class _Batch:
    """One batch run's state: the run folder, batch.json, the units left per study, timing."""

    def __init__(self, prepared: dict[str, Any], run_dir: Path, say: Any, t_start: float):
        from coresweep.measurement.store import Store

        self.prepared, self.run_dir, self.say, self.t_start = prepared, run_dir, say, t_start
        self.params = {**prepared["checked"], "run_dir": str(run_dir)}
        processes = int(self.params["processes"])
        done = Store(run_dir).completed_units() if (run_dir / "data").exists() else set()
        self.units = {sid: [(c.key(), p) for c in cfgs for p in range(processes)]
                      for sid, cfgs in prepared["configs"].items()}
        self.todo = {sid: [u for u in us if u not in done] for sid, us in self.units.items()}
        self.reused = len(done)
        self.t_units = time.monotonic()  # the model build is not part of the rate
        self.units_done = 0
        self.meta: dict[str, Any] = {}

    def write_meta(self, params_file: Any, overrides: Any) -> None:
        topo = self.prepared["topo"]
        from coresweep.machine.topology import machine_name

        path = run_file(self.run_dir, "batch")
        meta = read_json(path)
        meta.update({
            "params_file": str(params_file) if params_file else None,
            "overrides": dict(overrides) if isinstance(overrides, Mapping) else list(overrides),
            "params": self.params,
            "resolved": self.prepared["resolved"].to_dict(),
            "machine": machine_name(topo),
            "cpu": getattr(topo, "model_name", None),
            "notebooks": meta.get("notebooks", {}),
        })
        meta.setdefault("created", now_iso())
        meta["started"] = now_iso()
        self.meta = meta
        write_json(path, meta)

    def eta(self, i: int, chosen: Sequence[Any]) -> str:
        if not self.units_done:
            return ""
        rate = (time.monotonic() - self.t_units) / self.units_done
        remaining = sum(len(self.todo[s.id]) for s in chosen[i - 1:])
        return f", ETA {fmt_s(remaining * rate + 8 * (len(chosen) - i + 1))}"

    def run_notebook(self, i: int, chosen: Sequence[Any], *, kernel_name: str,
                     progress: bool) -> str:
        """Execute one study's notebook; returns "ok" or "failed" (the error is recorded)."""
        import papermill as pm

        study = chosen[i - 1]
        label = f"[{i}/{len(chosen)}] {study.id}"
        self.say(f"{label}: {len(self.todo[study.id])} worker process(es) (elapsed "
                 f"{fmt_s(time.monotonic() - self.t_start)}{self.eta(i, chosen)})")
        t0, src = time.monotonic(), notebook_dir()
        status, error = "ok", None
        later = sum(len(self.todo[s.id]) for s in chosen[i:])
        with _Progress(self.run_dir, self.todo[study.id], later, self.t_start, self.say, label):
            try:
                pm.execute_notebook(str(src / f"{study.id}.ipynb"),
                                    str(run_file(self.run_dir, "ipynb", study.id)),
                                    parameters={k: self.params[k] for k in study.keys()},
                                    kernel_name=kernel_name, progress_bar=progress, cwd=str(src))
            except pm.PapermillExecutionError as exc:
                status, error = "failed", f"{exc.ename}: {exc.evalue}"
                self.say(f"{study.id} FAILED: {error}")
        self.units_done += len(self.todo[study.id])
        self.record(study, status, error, time.monotonic() - t0)
        self.say(f"{label}: {status} in {fmt_s(time.monotonic() - t0)}")
        return status

    def record(self, study: Any, status: str, error: str | None, wall: float) -> None:
        self.meta["notebooks"][study.id] = {
            "status": status, "error": error, "wall_s": round(wall, 1),
            "units": len(self.units[study.id]), "units_run": len(self.todo[study.id]),
            "end": now_iso()}
        write_json(run_file(self.run_dir, "batch"), self.meta)

    def finish(self) -> None:
        self.meta["finished"] = now_iso()
        self.meta["wall_s"] = round(time.monotonic() - self.t_start, 1)
        write_json(run_file(self.run_dir, "batch"), self.meta)
        finish_run(self.run_dir)


def _stderr_log(msg: str) -> None:
    print(f"coresweep run: {msg}", file=sys.stderr, flush=True)


def run_batch(params_file: str | Path | None = None, overrides: Sequence[str] | Mapping = (), *,
              out: str | Path | None = None, notebooks: Sequence[str] | None = None,
              html_reports: bool = True, progress: bool = True, kernel_name: str = "python3",
              log: Any = None) -> Path:
    """Validate, then run the notebooks with papermill into a run folder; render HTML, the
    summary and the index. Returns the run folder. Raises CoresweepError on a failed notebook
    (after rendering what ran)."""
    from coresweep.machine.topology import machine_name

    say = log or _stderr_log
    t_start = time.monotonic()
    prepared = prepare_batch(params_file, overrides, notebooks=notebooks, log=say)
    run_dir = Path(out) if out else reports_root() / f"{machine_name(prepared['topo'])}-{stamp()}"
    run_dir = run_dir.expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    batch = _Batch(prepared, run_dir, say, t_start)
    batch.write_meta(params_file, overrides)
    chosen = prepared["studies"]
    say(f"{len(chosen)} notebook(s) into {run_dir}; {sum(map(len, batch.todo.values()))} worker "
        "process(es) to run" + (f", {batch.reused} reused" if batch.reused else ""))
    failed = []
    for i, study in enumerate(chosen, 1):
        if batch.run_notebook(i, chosen, kernel_name=kernel_name, progress=progress) != "ok":
            failed.append(study.id)
        executed = run_file(run_dir, "ipynb", study.id)
        if html_reports and executed.exists():
            render_html(executed, banner=banner(batch.meta, listed=bool(index_of(run_dir))))
    batch.finish()
    say(f"done in {fmt_s(time.monotonic() - t_start)}: {run_dir}")
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

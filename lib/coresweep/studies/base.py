"""What a study is: a number, a name, the question it answers, its own parameters, how it checks
them against the machine and which trial configs it measures.

A study module defines one subclass of :class:`Study` and an instance named ``STUDY``; the
registry (:mod:`coresweep.studies`) finds it. Its notebook is ``notebooks/<id>.ipynb`` where
``id = f"{number:02d}_{name}"``. Configs carry a structured ``role`` (what the point is for in the
study), never a label that code parses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from coresweep.errors import CoresweepError, ParamsError
from coresweep.parameters import OUTPUT, PROTOCOL, WORKLOAD, Param, check_all


@dataclass
class Resolved:
    """Parameters checked against the machine: ``values`` has no "auto" left."""

    values: dict[str, Any]
    topology: Any = None
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


class Study:
    """Base class: override ``params``, ``resolve``, ``check`` and ``make_configs``."""

    number: ClassVar[int]
    name: ClassVar[str]
    title: ClassVar[str]
    question: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}
    runs_trials: ClassVar[bool] = True
    shared: ClassVar[tuple[str, ...] | None] = None  # the workload/protocol parameters it uses
    capability: ClassVar[str] = ""  # what 00's "testable here" table calls this study
    index_first: ClassVar[bool] = False  # listed first in the index (the recommendation)
    refines: ClassVar[bool] = False  # re-measures the contenders of an unsettled decision

    @property
    def id(self) -> str:
        """The notebook's stem, e.g. ``01_threads``."""
        return f"{self.number:02d}_{self.name}"

    def schema(self) -> dict[str, Param]:
        """Every parameter of this study's notebook, in the order of its parameters cell."""
        shared = {k: p for k, p in {**WORKLOAD, **PROTOCOL}.items()
                  if self.runs_trials and (self.shared is None or k in self.shared)}
        return {**shared, **self.params, **OUTPUT}

    def keys(self) -> list[str]:
        return list(self.schema())

    def defaults(self) -> dict[str, Any]:
        return {k: p.default_value() for k, p in self.schema().items()}

    # -- overridden by studies ----------------------------------------------------------------
    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        """Replace this study's "auto" values with numbers for the machine."""
        return values

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        """Machine-dependent checks of this study's parameters (ParamsError)."""

    def make_configs(self, values: Mapping[str, Any], topo: Any) -> list:
        """The TrialConfigs this study measures (none for a study without trials)."""
        return []

    def capability_row(self, topo: Any) -> tuple[str, str] | None:
        """("yes"/"no"/"partly", why) for the machine notebook's table; None to leave it out."""
        return None

    # -- used by notebooks and the batch runner ---------------------------------------------
    def validate(self, params: Mapping[str, Any] | None = None, *, topo: Any = None,
                 model: bool = True) -> Resolved:
        """Check this study's parameters (types, choices, placements on this machine, the model)
        before any trial; raises ParamsError naming the parameter and the valid choices.
        ``params`` may hold other names too (a notebook passes its ``globals()``): only this
        study's parameters are read."""
        from coresweep.studies import common

        topo = topo if topo is not None else common.live_topology()
        given = {k: v for k, v in (params or {}).items() if k in self.schema()}
        values = self.resolve(common.resolve_run_dir(check_all(self.schema(), given), topo), topo)
        self.check(values, topo)
        if self.runs_trials:
            from coresweep.measurement.adaptive import settings

            settings(values)  # adaptive_target is a fraction: refused here, before any trial
        notes = []
        if self.runs_trials and model:
            notes.append(common.check_model(values["model"], values["precision"],
                                            runtime=values["runtime"]))
        return Resolved(values=values, topology=topo, notes=notes)

    def configs(self, resolved: Resolved) -> list:
        """This study's trial configs for validated parameters, each measured once."""
        seen: set[str] = set()
        out = []
        for c in self.make_configs(resolved.values, resolved.topology):
            if c.key() not in seen:
                seen.add(c.key())
                out.append(c)
        return out

    def main_configs(self, resolved: Resolved) -> list:
        """The configs whose summary the figures and the recommendation read (one row per point;
        a study with an extra axis drawn apart narrows it)."""
        return self.configs(resolved)

    def keep(self, configs: Sequence[Any]) -> dict[str, str]:
        """config key → why an adaptive sweep never drops it (a point a figure needs); controls
        are kept anyway."""
        return {}

    def measure(self, resolved: Resolved, configs: Sequence[Any], **sweep_args: Any) -> Any:
        """Run the configs (resumable, into the run folder) and return this study's Results;
        a study that ``refines`` then re-measures the contenders of an unsettled decision."""
        import time

        from coresweep.measurement import adaptive
        from coresweep.measurement.sweep import sweep
        from coresweep.studies.refine import refine
        from coresweep.studies.results import select

        started = time.monotonic()
        v = resolved.values
        run = sweep(configs, out=v["run_dir"], processes=v["processes"], timeout_s=v["timeout_s"],
                    sample_interval_s=v["sample_interval_s"], params=resolved.to_dict(),
                    topo=resolved.topology, adaptive=adaptive.settings(v),
                    keep=self.keep(configs), **sweep_args)
        results = self.finish(resolved, select(run, configs))
        if self.refines:
            results = refine(self, resolved, configs, results, started)
        return self.fill(resolved, configs, results, started)

    def fill(self, resolved: Resolved, configs: Sequence[Any], results: Any,
             started: float) -> Any:
        """Points a study adds while its time budget lasts (01: its thread ladder)."""
        return results

    def finish(self, resolved: Resolved, results: Any) -> Any:
        """What the study adds to its selected results (01: main curves, bandwidth, roofline)."""
        return results

    def decisions(self, results: Any) -> dict[str, Any]:
        """The decision (analysis.decision) per goal over this study's points of its first
        runtime (each runtime is decided over its own points: :meth:`runtime_decisions`)."""
        from coresweep.analysis.decision import GOALS, decide
        from coresweep.analysis.runtimes import decisions

        first = next(iter(decisions(results.summary).values()), None)
        return first or {m: decide(results.summary, m) for m in GOALS}

    def runtime_decisions(self, results: Any) -> dict[str, dict[str, Any]]:
        """runtime -> goal -> the decision over that runtime's points alone."""
        from coresweep.analysis.runtimes import decisions

        return decisions(results.summary)

    def refinements_markdown(self, resolved: Resolved) -> str:
        """The refinement rounds this study's notebook ran (run.json), one line each."""
        from coresweep.measurement.store import Store

        meta = Store(resolved.values["run_dir"]).read_meta()
        rounds = [r for r in meta.get("refinements", []) if r.get("study") == self.id]
        if not rounds:
            return "No refinement: the decision was settled by the planned processes."
        extra = sum(r.get("extra_processes", 0) for r in rounds)
        return (f"Refinement: {extra} extra process(es) in {len(rounds)} round(s) to settle the "
                "decision:\n\n" + "\n".join(f"- {r['sentence']}" for r in rounds))

    def __repr__(self) -> str:
        return f"<study {self.id}: {self.title}>"


def check_known(name: str, valid: Sequence[str]) -> None:
    if name not in valid:
        raise ParamsError(f"unknown study {name!r}; valid choices: {', '.join(valid)}")


def notebook_path(study: Study, folder: str | Path) -> Path:
    path = Path(folder) / f"{study.id}.ipynb"
    if not path.is_file():
        raise CoresweepError(f"notebook {path} of study {study.id} is missing")
    return path

"""06 · Which onnxruntime knobs matter? Each session knob (spinning, per-thread pinning, inter-op
threads and execution mode, dynamic block base, graph optimisation), the NUMA memory policy and
transparent huge pages, changed one at a time from a baseline at the best thread count, with CIs;
spinning on vs off split into useful work and spin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coresweep.errors import CoresweepError, ParamsError
from coresweep.parameters import SESSION, Param, axis, first, table
from coresweep.studies import common
from coresweep.studies.base import Resolved, Study
from coresweep.studies.threads import STUDY as THREADS
from coresweep.studies.threads import usable_cpus

# the knob axes, in the order the report shows them; the first value of each is the baseline
KNOBS = ("spinning", "pin_threads", "inter_op_threads", "execution_mode", "dynamic_block_base",
         "graph_optimization", "numa_memory", "huge_pages")
_AXIS_DEFAULTS = {"spinning": [True, False], "pin_threads": [False, True],
                  "inter_op_threads": [1], "execution_mode": ["sequential"],
                  "dynamic_block_base": [0, 4], "graph_optimization": ["all", "basic"],
                  "numa_memory": ["default", "local", "interleave"],
                  "huge_pages": ["default", "malloc", "madvise"]}


def best_measured_threads(run_dir: str, values: Mapping[str, Any]) -> int | None:
    """The decode thread count the run folder's decision recommends (analysis.decision over 01's
    and 02's points, every knob at its default: the same answer as 05), when it generated this
    study's workload; None when the folder has no such decision yet."""
    from pathlib import Path

    from coresweep.measurement.run import Run
    from coresweep.recommend.points import run_points

    if not (Path(run_dir) / "run.json").exists():
        return None
    try:
        run = Run.load(run_dir)
    except CoresweepError:
        return None
    pick = run_points(run).decisions()["decode_tok_s"].pick
    w = common.workload(values)
    if pick is None or any(pick.get(k, w[k]) != w[k]
                           for k in ("model", "runtime", "prompt_tokens", "gen_tokens")):
        return None
    return int(pick["threads"])


class KnobsStudy(Study):
    number = 6
    name = "knobs"
    title = "Which onnxruntime knobs matter?"
    question = ("At the best thread count, what does each onnxruntime session knob (spinning, "
                "per-thread pinning, execution mode, dynamic block base, graph optimisation), "
                "the NUMA memory policy and transparent huge pages change, and how much of the "
                "CPU time is spin?")
    capability = "session knobs"
    params = table(
        Param("knob_threads", "int", "auto", "thread count at which the knobs are compared; auto "
              "means the decode thread count 01 recommends in this run folder, else the usable "
              "physical cores", auto=True, minimum=1),
        THREADS.params["placement"],
        *(axis(SESSION[k], _AXIS_DEFAULTS[k],
               f"{SESSION[k].help}; values compared, the first is the baseline") for k in KNOBS),
    )

    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        if values["knob_threads"] != "auto":
            return values
        measured = best_measured_threads(values.get("run_dir", ""), values)
        cap = usable_cpus(values, topo)
        return {**values, "knob_threads": measured or min(common.physical_count(topo), cap)}

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        from coresweep.engines import OrtOptions, SessionConfig, check_session

        runtime = first(values["runtime"])
        try:  # the knobs are onnxruntime's session options: llama.cpp has none of them
            check_session(runtime, SessionConfig(2, OrtOptions(inter_op_threads=2)))
        except CoresweepError as exc:
            raise ParamsError(f"parameter 'runtime': 06_knobs compares onnxruntime's session "
                              f"options, and the first runtime ({runtime}) has none: {exc}; "
                              "put ort first") from None
        common.check_strategy("knob_threads", values["placement"], topo, [values["knob_threads"]],
                              oversubscribe=False)
        for k in KNOBS:
            if len(set(map(str, values[k]))) != len(values[k]):
                raise ParamsError(f"parameter {k!r}: {values[k]} repeats a value")

    def skipped_values(self, values: Mapping[str, Any], topo: Any) -> dict[str, list]:
        """Knob values this machine cannot compare, and why (in the notes)."""
        out = {}
        if len(topo.nodes_with_memory()) < 2:
            out["numa_memory"] = [v for v in values["numa_memory"][1:]]
        if values["knob_threads"] < 2:  # one thread: nothing to pin, nothing spins
            out["pin_threads"] = values["pin_threads"][1:]
        out["huge_pages"] = [v for v in values["huge_pages"][1:]
                             if self.huge_pages_why_not(v, topo)]
        return {k: v for k, v in out.items() if v}

    @staticmethod
    def huge_pages_why_not(mode: str, topo: Any) -> str:
        """Why a huge-pages mode cannot act on this machine ("" when it can)."""
        from coresweep.machine.hugepages import why_not

        return why_not(mode, getattr(topo, "root", "/"))

    def explanation(self, resolved: Resolved) -> str:
        lines = [f"Knobs compared at **{resolved.values['knob_threads']} thread(s)**, placement "
                 f"`{resolved.values['placement']}`; the baseline is the first value of each list."]
        for k, vals in self.skipped_values(resolved.values, resolved.topology).items():
            why = {"numa_memory": "this machine has one NUMA node with memory: every policy "
                   "places every page on it", "pin_threads": "one thread has no pool thread to "
                   "pin", "huge_pages": "; ".join(sorted({self.huge_pages_why_not(v, resolved.topology)
                                                           for v in vals}))}[k]
            lines.append(f"- `{k}` = {', '.join(map(str, vals))}: not measured ({why}).")
        return "\n".join(lines)

    def make_configs(self, values: Mapping[str, Any], topo: Any) -> list:
        from coresweep.measurement.config import TrialConfig

        base = {k: values[k][0] for k in KNOBS}
        skipped = self.skipped_values(values, topo)

        def config(knob: str, value: Any) -> TrialConfig:
            knobs = {**base, knob: value}
            return TrialConfig(**common.workload(values), threads=values["knob_threads"],
                               placement=values["placement"],
                               session=TrialConfig.session_knobs(knobs),
                               pin_threads=knobs["pin_threads"],
                               numa_memory=knobs["numa_memory"],
                               huge_pages=knobs["huge_pages"],
                               role={"knob": knob, "value": value,
                                     "spinning": knobs["spinning"]},
                               label="baseline" if knob == "baseline" else f"{knob}={value}")

        out = [config("baseline", None)]
        for k in KNOBS:
            out += [config(k, v) for v in values[k][1:] if v not in skipped.get(k, [])]
        return out

    def keep(self, configs: list) -> dict[str, str]:
        """The baseline: every effect is measured against it."""
        return {c.key(): "the baseline every knob is compared with: never dropped"
                for c in configs if c.role.get("knob") == "baseline"}

    def capability_row(self, topo: Any) -> tuple[str, str]:
        nodes = len(topo.nodes_with_memory())
        numa = "with" if nodes > 1 else "without"
        return "yes", f"session knobs one at a time; {numa} the NUMA memory policy ({nodes} node(s))"


STUDY = KnobsStudy()

"""02 · Which CPUs? Placement strategies at equal thread counts, with two controls: ORT's own default
mode and an OMP_NUM_THREADS-only run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coresweep.errors import ParamsError
from coresweep.parameters import Param, table
from coresweep.studies import common
from coresweep.studies.base import Resolved, Study


def omp_control_value(threads: int, topo: Any) -> int:
    """OMP_NUM_THREADS for the omp-only control at `threads`: the thread count itself, unless that
    equals what ORT's default mode starts anyway (one thread per physical core), where the control
    could not tell; then 1 (or 2 on a one-core machine)."""
    ort_default = topo.physical_core_count()
    if threads != ort_default:
        return threads
    return 1 if ort_default > 1 else 2


def same_placements(values: Mapping[str, Any], topo: Any) -> dict[tuple[str, int], str]:
    """(strategy, threads) → the earlier strategy that gives the very same plan (same CPUs in the
    same order) on this machine; such points are measured once (e.g. compact = scatter =
    physical on a machine with one LLC domain and no SMT)."""
    from coresweep.machine.placement import make_plan

    out: dict[tuple[str, int], str] = {}
    for t in values["affinity_threads"]:
        seen: dict[tuple, str] = {}
        for s in values["strategies"]:
            if s in common.CONTROLS:
                continue
            plan = make_plan(topo, t, s, oversubscribe=True)
            sig = (tuple(plan.cpus), plan.pinned)
            if sig in seen and seen[sig] != s:  # a strategy listed twice is still measured
                out[(s, t)] = seen[sig]
            else:
                seen[sig] = s
    return out


def has_default_threads(runtime: str) -> bool:
    """Whether ``runtime`` has onnxruntime's own thread mode (threads=None), which the controls
    ort-default and omp-only measure (llama.cpp has none: it always takes a count)."""
    from coresweep.engines import SessionConfig, check_session
    from coresweep.errors import CoresweepError

    try:
        check_session(runtime, SessionConfig(None))
    except CoresweepError:
        return False
    return True


def _config(base: dict[str, Any], strategy: str, threads: int, topo: Any,
            suffix: str = "") -> Any:
    from coresweep.measurement.config import TrialConfig

    if strategy == "ort-default":
        return TrialConfig(**base, threads=None, placement="none", label="ort-default" + suffix,
                           role={"control": "ort-default"})
    if strategy == "omp-only":
        v = omp_control_value(threads, topo)
        return TrialConfig(**base, threads=None, placement="none",
                           env={"OMP_NUM_THREADS": str(v)},
                           label=f"omp-only OMP_NUM_THREADS={v}" + suffix,
                           role={"control": "omp-only", "omp_num_threads": v})
    # validated with oversubscribe allowed: the same here
    return TrialConfig(**base, threads=threads, placement=strategy, oversubscribe=True,
                       label=f"{strategy} {threads}t" + suffix, role={"strategy": strategy})


class AffinityStudy(Study):
    number = 2
    name = "affinity"
    title = "Which CPUs? Placement strategies"
    question = ("Which CPUs should the threads run on, does pinning help, and do ORT's default "
                "mode and OMP_NUM_THREADS do what people expect?")
    capability = "placement strategies"
    refines = True
    params = table(
        Param("affinity_threads", "int_list", "auto", "thread counts at which the strategies are "
              "compared; auto means the number of physical cores", auto=True, minimum=1),
        Param("strategies", "str_list", ["physical", "compact", "scatter", "none", "ort-default",
                                         "omp-only"],
              "placement strategies compared (plus the controls ort-default and omp-only)"),
        Param("heatmaps", "str_list", ["physical", "ort-default"],
              "strategies whose per-core utilisation heatmap (cores x time) is drawn"),
    )

    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        if values["affinity_threads"] == "auto":
            values = {**values, "affinity_threads": [common.physical_count(topo)]}
        return values

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        for s in values["strategies"]:
            common.check_strategy("strategies", s, topo, values["affinity_threads"],
                                  oversubscribe=True, controls=True)
        for s in values["heatmaps"]:
            if s not in values["strategies"]:
                raise ParamsError(
                    f"parameter 'heatmaps': {s!r} is not one of the compared strategies; valid "
                    f"choices: {', '.join(values['strategies'])}"
                )

    def make_configs(self, values: Mapping[str, Any], topo: Any) -> list:
        """Every strategy at every thread count for every runtime (the controls, onnxruntime's
        own thread modes, for the runtimes that have them)."""
        same = same_placements(values, topo)
        out = []
        for r in common.runtimes(values):
            base = {**common.workload(values), "runtime": r}
            suffix = common.runtime_suffix(r, values)
            out += [_config(base, s, t, topo, suffix)
                    for t in values["affinity_threads"] for s in values["strategies"]
                    if (s, t) not in same  # the same CPUs in the same order as an earlier one
                    and (s not in common.CONTROLS or has_default_threads(r))]
        return out

    def capability_row(self, topo: Any) -> tuple[str, str]:
        n, phys = common.logical_count(topo), common.physical_count(topo)
        return ("yes" if n > 1 else "partly",
                f"{n} CPUs on {phys} physical cores; compact/scatter differ only with several LLC "
                "or NUMA domains")

    def heatmap_configs(self, configs: Sequence[Any], resolved: Resolved) -> list:
        """The configs whose strategy or control is listed in ``heatmaps`` (read from roles)."""
        wanted = set(resolved.values["heatmaps"])
        return [c for c in configs
                if (c.role.get("strategy") or c.role.get("control")) in wanted]

    def same_placements_note(self, resolved: Resolved) -> str:
        """Markdown naming the strategies measured once because they place identically here."""
        same = same_placements(resolved.values, resolved.topology)
        if not same:
            return "Every strategy gives a different placement here: all are measured."
        parts = [f"`{s}` = `{first}` at {t} thread(s)" for (s, t), first in same.items()]
        return ("Measured once because they give the very same CPUs in the same order on this "
                "machine: " + "; ".join(parts) + ".")


STUDY = AffinityStudy()

"""01 · How many threads? TTFT, prefill and decode against the intra-op thread count, with one
oversubscribed point past the CPUs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coresweep.errors import CoresweepError, ParamsError
from coresweep.parameters import Param, table
from coresweep.studies import common
from coresweep.studies.base import Resolved, Study


def auto_threads(logical: int, physical: int | None = None) -> list[int]:
    """The "auto" thread counts: 1..logical CPUs (every count up to 8 CPUs; beyond, 1, 2, 4 and
    steps of logical/8, plus the physical core count), then one oversubscribed point at
    2 x logical CPUs."""
    if logical <= 8:
        pts = set(range(1, logical + 1))
    else:
        step = max(2, logical // 8)
        pts = {1, 2, 4, logical, *range(step, logical + 1, step)}
        if physical:
            pts.add(physical)
    return sorted(pts) + [2 * logical]


def sweep_cpus(values: Mapping[str, Any], topo: Any) -> int:
    """How many CPUs the sweep's placement can use on this machine (its strategy's capacity; all
    usable CPUs when the placement is not valid here — validation says why)."""
    from coresweep.machine.cpulist import parse_cpulist
    from coresweep.machine.placement import strategy_order

    placement = str(values.get("placement") or "cores-first")
    try:
        if placement[:1].isdigit():
            cpus = set(parse_cpulist(placement)) & set(topo.allowed)
            return len(cpus) or common.logical_count(topo)
        return len(strategy_order(topo, placement)[0]) or common.logical_count(topo)
    except CoresweepError:
        return common.logical_count(topo)


def usable_cpus(values: Mapping[str, Any], topo: Any) -> int:
    """The sweep's CPUs (:func:`sweep_cpus`) capped by the cgroup CPU quota."""
    return common.quota_cap(topo, sweep_cpus(values, topo))


class ThreadsStudy(Study):
    number = 1
    name = "threads"
    title = "How many threads?"
    question = ("How many intra-op threads give the lowest time to first token and the highest "
                "decode speed, and what does oversubscription cost?")
    capability = "thread counts"
    refines = True
    params = table(
        Param("threads", "int_list", "auto", "thread counts for the core-count sweep; auto means "
              "1..logical CPUs (thinned past 8) plus one oversubscribed point (2 x CPUs)",
              auto=True, minimum=1),
        Param("placement", "str", "cores-first", "placement strategy of the core-count sweep "
              "and of 06_knobs: "
              "cores-first fills one CPU per physical core, then the SMT siblings (see "
              "coresweep.machine.placement.STRATEGIES, or a CPU list such as 0-3)"),
        Param("oversubscribe", "bool", True, "allow thread counts past the CPUs the strategy "
              "gives (threads then share CPUs)"),
        Param("bandwidth", "str", "both", "read bandwidth at each placement for the roofline: "
              "both (likwid-bench where installed, and the portable onnxruntime measurement), "
              "ort, likwid, or off", choices=("both", "ort", "likwid", "off")),
    )

    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        if values["threads"] == "auto":
            cap = usable_cpus(values, topo)
            pts = auto_threads(cap, min(common.physical_count(topo), cap))
            # the point past the strategy's CPUs needs oversubscribe
            values = {**values, "threads": pts if values["oversubscribe"] else pts[:-1]}
        return values

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        common.check_strategy("placement", values["placement"], topo, values["threads"],
                              oversubscribe=values["oversubscribe"])
        lengths = common.prompt_lengths(values)
        if len(lengths) > 1 and not common.uses_synthetic_prompt(values):
            raise ParamsError(f"parameter 'prompt_tokens': {lengths} is a list of prompt lengths, "
                              "but prompt_text sets the prompt; give one length, or an empty "
                              "prompt_text to sweep synthetic prompts of these lengths")

    def make_configs(self, values: Mapping[str, Any], topo: Any) -> list:
        """Every thread count at every prompt length for every runtime, the first length first
        (the main curves), each runtime's curve beside the others."""
        from coresweep.measurement.config import TrialConfig

        lengths = common.prompt_lengths(values)
        return [TrialConfig(**{**common.workload(values), "prompt_tokens": p, "runtime": r},
                            threads=t, placement=values["placement"],
                            oversubscribe=values["oversubscribe"],
                            role={"threads": t, "prompt_tokens": p},
                            label=f"{t} thread{'s' * (t != 1)}"
                            + (f" · prompt {p}" if len(lengths) > 1 else "")
                            + common.runtime_suffix(r, values))
                for p in lengths for r in common.runtimes(values) for t in values["threads"]]

    def main_configs(self, resolved: Resolved) -> list:
        """The curves' configs: the first prompt length (the others feed the context figures)."""
        first = common.prompt_lengths(resolved.values)[0]
        return [c for c in self.configs(resolved) if c.role["prompt_tokens"] == first]

    def keep(self, configs: list) -> dict[str, str]:
        """The smallest thread count at each prompt length of each runtime: the speedup figure's
        baseline and the context figure's."""
        out = {}
        for p, r in sorted({(c.prompt_tokens, c.runtime) for c in configs}):
            base = min((c for c in configs if c.prompt_tokens == p and c.runtime == r),
                       key=lambda c: c.threads or 0)
            out[base.key()] = (f"the speedup baseline ({base.threads} thread(s), prompt {p}, "
                               f"{r}): never dropped")
        return out

    def capability_row(self, topo: Any) -> tuple[str, str]:
        n = common.logical_count(topo)
        return "yes", f"1..{n} threads on {n} usable CPUs; points past {n} show oversubscription"

    def finish(self, resolved: Resolved, results: Any) -> Any:
        """The main curves (the first prompt length; every length in ``contexts``), then the
        read bandwidth at each of their placements (the roofline)."""
        from coresweep.analysis.roofline import runtime_roofline
        from coresweep.measurement.bandwidth_table import measure_placements
        from coresweep.studies.results import select

        keys = set(results.labels)
        main = [c for c in self.main_configs(resolved) if c.key() in keys]
        res = select(results.run, main)
        if len(common.prompt_lengths(resolved.values)) > 1:
            res.contexts = results.summary
        v = resolved.values
        res.bandwidth = measure_placements(v["run_dir"], main, resolved.topology,
                                           method=v["bandwidth"])
        res.summary = runtime_roofline(res.summary, v["model"], v["precision"], res.bandwidth)
        return res

    def fill(self, resolved: Resolved, configs: list, results: Any, started: float) -> Any:
        """Under a time budget: thread counts halfway between the neighbours that differ most."""
        from coresweep.studies.refine import fill_ladder

        return fill_ladder(self, resolved, configs, results, started)

    def sweep_cpus(self, resolved: Resolved) -> int:
        """The CPU count the figures mark (oversubscription beyond it)."""
        return usable_cpus(resolved.values, resolved.topology)


STUDY = ThreadsStudy()

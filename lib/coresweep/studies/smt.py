"""03 · SMT on or off? Paired comparisons on the same physical cores and at equal thread counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coresweep.errors import ParamsError
from coresweep.parameters import SMT_MODE, Param, table
from coresweep.studies import common
from coresweep.studies.base import Resolved, Study


def smt_pair_cores(topo: Any) -> int:
    """Usable physical cores with two or more usable SMT siblings (what an SMT pair needs)."""
    allowed = set(topo.allowed)
    return sum(1 for c in topo.cores if len(allowed.intersection(c.cpus)) > 1)


def _cpus(plan: Any) -> str:
    """A plan's CPUs, in its order, as an explicit placement."""
    return ",".join(str(c) for c in plan.cpus)


def _pairs(base: dict[str, Any], cores: int, mode: str, topo: Any) -> list:
    """SMT off and on on the same `cores` physical cores, plus SMT on at the same thread count as
    off (siblings of fewer cores) when `cores` fills whole cores."""
    from coresweep.machine.placement import plan_for_smt
    from coresweep.measurement.config import TrialConfig

    def config(plan: Any, smt: str, n_cores: int) -> TrialConfig:
        return TrialConfig(**base, threads=plan.threads, placement=_cpus(plan), smt=smt,
                           smt_mode=mode, label=f"SMT {smt} {n_cores}c/{plan.threads}t",
                           role={"smt": smt, "cores": n_cores, "threads": plan.threads})

    out = [config(plan_for_smt(topo, cores, False), "off", cores),
           config(plan_for_smt(topo, cores, True), "on", cores)]
    for k in range(1, cores):
        half = plan_for_smt(topo, k, True)
        if half.threads == cores:
            out.append(config(half, "on", k))
            break
    return out


class SmtStudy(Study):
    number = 3
    name = "smt"
    title = "SMT on or off?"
    question = ("Does simultaneous multithreading (Hyper-Threading) help, on the same physical "
                "cores and at the same thread count?")
    capability = "SMT on vs off"
    params = table(
        Param("smt_cores", "int_list", "auto", "physical core counts at which SMT on/off is "
              "compared; auto means 1 and all physical cores", auto=True, minimum=1),
        SMT_MODE,
    )

    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        if values["smt_cores"] == "auto":
            pairs = smt_pair_cores(topo)
            values = {**values, "smt_cores": sorted({1, pairs}) if pairs else [1]}
        return values

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        # without SMT the notebook skips, but a count past the physical cores is still a mistake
        limit = smt_pair_cores(topo) if topo.has_smt() else common.physical_count(topo)
        what = "usable core(s) with SMT siblings" if topo.has_smt() else "physical core(s)"
        for c in values["smt_cores"]:
            if c > limit:
                raise ParamsError(
                    f"parameter 'smt_cores': {c} physical cores asked but this machine has "
                    f"{limit} {what}; valid choices: 1..{limit}"
                )

    def make_configs(self, values: Mapping[str, Any], topo: Any) -> list:
        if not topo.has_smt():
            return []
        base = common.workload(values)
        return [c for cores in values["smt_cores"]
                for c in _pairs(base, cores, values["smt_mode"], topo)]

    def keep(self, configs: list) -> dict[str, str]:
        """Every point: each is half of a paired on/off comparison."""
        return {c.key(): "half of a paired SMT on/off comparison: never dropped" for c in configs}

    def capability_row(self, topo: Any) -> tuple[str, str]:
        if topo.has_smt():
            return "yes", f"{max(len(c.cpus) for c in topo.cores)} threads per core"
        return "no", (f"no SMT on this machine: the SMT notebook will explain and skip "
                      f"({topo.smt_note()})")

    def explanation(self, resolved: Resolved) -> str:
        """Markdown: whether SMT on/off can be compared here, and how."""
        topo = resolved.topology
        if not topo.has_smt():
            return (f"**No SMT on this machine** ({topo.smt_note()}). Every physical core has one "
                    "logical CPU, so there is no sibling to switch on or off: this notebook runs "
                    "no trial and draws an empty comparison. Run it on a machine with "
                    "Hyper-Threading / SMT to answer the question.")
        tpc = max(len(c.cpus) for c in topo.cores)
        how = ("SMT off is emulated by pinning one thread per physical core (`placement` mode)"
               if resolved.values["smt_mode"] == "placement" else
               "SMT is switched with `/sys/devices/system/cpu/smt/control` (`sysfs` mode; needs "
               "root, restored afterwards; points that cannot switch are recorded as skipped)")
        return f"**SMT is available**: {tpc} logical CPUs per core ({topo.smt_note()}). {how}."


STUDY = SmtStudy()

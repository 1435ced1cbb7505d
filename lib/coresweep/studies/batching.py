"""07 · How many users per step? Batching: B sequences decoded together in one session against
the batch size, at the run's recommended decode thread count and at 1 thread — aggregate decode,
TTFT, each user's speed, the roofline per step and the CPU time per token — and which batch to
use (the one decision over the aggregate decode, the smaller batch when tied).

Its own study rather than an axis of 01: a batch multiplies the work of every point (prefill of B
prompts, B tokens per step), so 01's thread ladder × batches would multiply 01's time; the
question is another one (how many users per step at a thread count already decided), with its own
figures and answer; and 01's points stay what 05's one decision chooses among.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coresweep.errors import CoresweepError, ParamsError
from coresweep.parameters import PROTOCOL, WORKLOAD, Param, table
from coresweep.studies import common
from coresweep.studies.base import Resolved, Study
from coresweep.studies.threads import STUDY as THREADS
from coresweep.studies.threads import usable_cpus


def auto_threads(values: Mapping[str, Any], topo: Any) -> list[int]:
    """The decode thread count the run folder's decision recommends (as 06's knob_threads), else
    the usable physical cores; and 1 (where a step's compute is scarcest)."""
    from coresweep.studies.knobs import best_measured_threads

    measured = best_measured_threads(values.get("run_dir", ""), values)
    first = measured or min(common.physical_count(topo), usable_cpus(values, topo))
    return sorted({first, 1}, key=lambda t: (t != first, t))


class BatchingStudy(Study):
    number = 7
    name = "batching"
    title = "How many users per step? Batching"
    question = ("Decoding B sequences together reads every weight once per step for all of them: "
                "how much aggregate decode does a batch buy at the recommended thread count (and "
                "at 1 thread), what does it cost in time to first token and each user's speed, "
                "and from which batch is a step compute-bound?")
    capability = "batch sizes"
    shared = tuple(k for k in (*WORKLOAD, *PROTOCOL) if k != "batch")
    params = table(
        Param("batch_sizes", "int_list", [1, 2, 4, 8], "batch sizes compared: sequences of the "
              "prompt decoded together in one session; 1 is the baseline of every gain",
              minimum=1, maximum=256),
        Param("batch_threads", "int_list", "auto", "thread counts at which the batch sizes are "
              "compared; auto means the decode thread count the run recommends (the one "
              "decision over 01 and 02, as 06's knob_threads; else the physical cores) and 1",
              auto=True, minimum=1),
        THREADS.params["placement"],
        THREADS.params["bandwidth"],
    )

    def resolve(self, values: dict[str, Any], topo: Any) -> dict[str, Any]:
        if values["batch_threads"] != "auto":
            return values
        return {**values, "batch_threads": auto_threads(values, topo)}

    def check(self, values: Mapping[str, Any], topo: Any) -> None:
        from coresweep.engines.base import check_batch

        common.check_strategy("batch_threads", values["placement"], topo,
                              values["batch_threads"], oversubscribe=False)
        if 1 not in values["batch_sizes"]:
            raise ParamsError(f"parameter 'batch_sizes': {values['batch_sizes']} has no 1: "
                              "batch 1 is the baseline every gain is measured against")
        try:
            check_batch(common.runtimes(values)[0], max(values["batch_sizes"]))
        except CoresweepError as exc:
            raise ParamsError(f"parameter 'batch_sizes': {exc}") from None

    def make_configs(self, values: Mapping[str, Any], topo: Any) -> list:
        from coresweep.measurement.config import TrialConfig

        return [TrialConfig(**{**common.workload(values), "batch": b}, threads=t,
                            placement=values["placement"], role={"batch": b, "threads": t},
                            label=f"{t} thread{'s' * (t != 1)} · batch {b}")
                for t in values["batch_threads"] for b in sorted(set(values["batch_sizes"]))]

    def keep(self, configs: list) -> dict[str, str]:
        """Batch 1 at every thread count: the baseline of every gain."""
        return {c.key(): "batch 1: the baseline of the gains, never dropped"
                for c in configs if c.batch == 1}

    def capability_row(self, topo: Any) -> tuple[str, str]:
        return "yes", "batch sizes 1..8 at the recommended thread count and at 1 thread"

    def finish(self, resolved: Resolved, results: Any) -> Any:
        """The points with their aggregate decode and the roofline per step (the read bandwidth
        at each placement: 01's measurement in the same run folder, else measured here)."""
        from coresweep.analysis.batching import with_step_roofline
        from coresweep.measurement.bandwidth_table import measure_placements
        from coresweep.models import inspect_model, resolve_model

        v = resolved.values
        base = [c for c in self.configs(resolved) if c.batch == 1]  # one per placement
        results.bandwidth = measure_placements(v["run_dir"], base, resolved.topology,
                                               method=v["bandwidth"])
        info = inspect_model(resolve_model(v["model"], v["precision"], build=False))
        results.summary = with_step_roofline(results.summary, info.bytes_per_token or None,
                                             info.kv_bytes_per_position, results.bandwidth)
        return results

    def decisions(self, results: Any) -> dict[str, Any]:
        """Which batch, at each thread count: the one decision over the aggregate decode tok/s
        (tied batches: the smallest, whose users wait least)."""
        from coresweep.analysis.decision import decide

        s = results.summary
        return {int(t): decide(s[s["threads"] == t], "agg_decode_tok_s", cost=("batch",))
                for t in sorted(s["threads"].unique(), reverse=True)} if len(s) else {}

    def answer_markdown(self, results: Any, resolved: Resolved) -> str:
        """Markdown: the decision at each thread count, with the users' side beside it (TTFT
        and each sequence's speed against batch 1's)."""
        lines = []
        for t, d in self.decisions(results).items():
            lines.append(f"- **{t} thread(s)**: {d.sentence()}")
            if d.pick is not None:
                base = results.summary[(results.summary["threads"] == t)
                                       & (results.summary["batch"] == 1)]
                if len(base):
                    b, p = base.iloc[0], d.pick
                    lines.append(
                        f"  - each user then decodes at {p['decode_tok_s_median']:.1f} tok/s "
                        f"(alone: {b['decode_tok_s_median']:.1f}) and waits "
                        f"{1000 * p['ttft_s_median']:.0f} ms for the first token (alone: "
                        f"{1000 * b['ttft_s_median']:.0f} ms); serve it with `coresweep serve "
                        f"--threads {t} --batch {int(p['batch'])}`")
        return "\n".join(lines) or "No batch was measured."


STUDY = BatchingStudy()

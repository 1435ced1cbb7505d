"""05 · What should I run? The recommendation from the other studies' results in the same run
folder: the CI-aware best configuration for TTFT, for decode and for serving within a latency
budget, each with configs to paste; the roofline; and the motivating study's claims checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from coresweep.parameters import Param, table
from coresweep.studies.base import Resolved, Study


@dataclass
class Recommendation:
    evidence: Any  # claims.Evidence
    picks: dict[str, Any]  # "ttft_s" / "decode_tok_s" -> analysis.decision.Decision
    serving: dict | None  # the best plan within the latency budget
    claims: pd.DataFrame
    bytes_per_token: float | None
    params: dict[str, Any]
    refinements: list[dict[str, Any]]  # run.json "refinements": extra processes and why
    runtime_picks: dict[str, dict[str, Any]] = None  # runtime -> goal -> Decision (each apart)
    all_threads: Any = None  # 01's points of every runtime (the roofline of each)

    @property
    def runtimes(self) -> list[str]:
        """The runtimes measured (01's and 02's), the first first; [""] for a run without
        the column."""
        return list(self.runtime_picks or {}) or [""]

    def picks_of(self, runtime: str | None) -> dict[str, Any]:
        """goal -> Decision of ``runtime`` (None: the first runtime's, ``picks``)."""
        return self.picks if runtime in (None, "") else self.runtime_picks[runtime]


def _study_params(run_dir: Path) -> dict[str, Any]:
    """The parameters the run's studies used: batch.json (coresweep run), else run.json."""
    import json

    for name, key in (("batch.json", "params"), ("run.json", "params")):
        path = run_dir / name
        if path.exists():
            params = json.loads(path.read_text()).get(key) or {}
            if params:
                return params
    return {}


def _run_parameters(run_dir: Path, run: Any, topo: Any, me: Study) -> Resolved:
    """The other studies' parameters as the run used them, checked again here; a folder written
    by an older coresweep whose values this one no longer accepts (a control since renamed) is
    read with the values it resolved then, unchecked: they were checked when it ran."""
    from coresweep import studies
    from coresweep.errors import ParamsError
    from coresweep.recommend.points import run_values
    from coresweep.report.paths import read_json, run_file

    try:
        return studies.validate(_study_params(run_dir), topo=topo, model=False,
                                names=[s.id for s in studies.all_studies() if s is not me])
    except ParamsError as exc:
        values = run_values(run.meta if run is not None else {},
                            read_json(run_file(run_dir, "batch")))
        return Resolved(values, topo, [f"read as the run resolved them ({exc})"])


def _selected(run: Any, study: Any, resolved: Resolved) -> pd.DataFrame:
    from coresweep.studies.results import select

    configs = study.main_configs(resolved)
    return select(run, configs).summary if configs and run is not None else pd.DataFrame()


class RecommendStudy(Study):
    number = 5
    name = "recommend"
    title = "What should I run? The recommendation"
    question = ("Which configuration should I deploy on this machine for the lowest TTFT, the "
                "highest decode speed and the most users within a latency budget, and why?")
    runs_trials = False
    index_first = True
    params = table(
        Param("latency_budget_ms", "int", 10000, "p99 time-to-first-token budget for the serving "
              "recommendation, milliseconds", minimum=1),
    )

    def evidence(self, resolved: Resolved) -> Recommendation:
        """Everything the run folder holds: the decision points, the other studies' results,
        the claims judged on them, and the refinements the run made."""
        from coresweep import studies
        from coresweep.models import bytes_per_token
        from coresweep.recommend.claims import Evidence, check_claims
        from coresweep.recommend.points import RunPoints, run_points

        run_dir = Path(resolved.values["run_dir"])
        topo = resolved.topology
        run = _load_run(run_dir)
        full = _run_parameters(run_dir, run, topo, self)
        points = run_points(run, full.values) if run is not None else \
            RunPoints(pd.DataFrame(), pd.DataFrame(), full.values)
        smt = _selected(run, studies.get("smt"), full)
        served = _serving_results(run_dir, full)
        links = {s.name: f"{s.id}.html" for s in studies.all_studies()}
        picks, first = points.decisions(), _first_runtime(points)
        ev = Evidence(threads=first(points.threads), affinity=first(points.affinity), smt=smt,
                      serving=served.summary if served is not None else pd.DataFrame(),
                      topo=topo, links=links, decode=picks["decode_tok_s"])
        bpt = bytes_per_token(full.values.get("model"), full.values.get("precision", "int4"))
        refinements = (run.meta.get("refinements") or []) if run is not None else []
        return Recommendation(ev, picks, _serving_pick(served, resolved), check_claims(ev),
                              bpt, full.values, refinements, points.runtime_decisions(),
                              points.threads)

    def picks_table(self, rec: Recommendation) -> pd.DataFrame:
        """One row per goal: how sure the run is, the recommended point, the best measured, the
        points tied with it."""
        from coresweep.analysis.decision import GOALS

        rows = []
        several = len(rec.runtimes) > 1
        for runtime in rec.runtimes:
            for metric, goal in GOALS.items():
                d = rec.picks_of(runtime).get(metric)
                head = {"goal": goal, **({"runtime": runtime} if several else {})}
                if d is None or d.pick is None:
                    rows.append({**head, "status": "none", "recommended": "no eligible point"})
                    continue
                tied = ", ".join(str(c.get("label")) for c in d.candidates if c is not d.pick)
                rows.append({**head, "status": d.status, "recommended": d.pick.get("label"),
                             "threads": str(d.threads), "CPUs": d.pick.get("cpus"),
                             "value [95 % CI]": d.value_text(), "best measured":
                             f"{d.best.get('label')}: {d.value_text(d.best)}",
                             "tied with the best": tied or "–"})
        s = rec.serving
        if s:
            rows.append({"goal": f"most tok/s with p99 TTFT ≤ {s['budget_ms']:g} ms",
                         "status": s["status"], "recommended": f"{s['plan']} at "
                         f"{s['concurrency']} users ({s['dispatch']})",
                         "value [95 % CI]": f"{s['tok_s']:.1f} tok/s [{s['tok_s_ci_lo']:.1f}–"
                         f"{s['tok_s_ci_hi']:.1f}]", "best measured":
                         f"p99 TTFT {s['ttft_p99_ms']:.0f} ms"})
        return pd.DataFrame(rows).fillna("")

    def decision_markdown(self, rec: Recommendation) -> str:
        """Each goal's decision in a sentence, the controls beside it, and the extra processes
        the run spent to separate contenders."""
        from coresweep.analysis.decision import GOALS
        from coresweep.analysis.runtimes import comparison_sentence

        lines = []
        for runtime in rec.runtimes:
            if len(rec.runtimes) > 1:
                lines.append(f"**Runtime {runtime}** (decided over its own points):\n")
            for metric, goal in GOALS.items():
                d = rec.picks_of(runtime)[metric]
                lines.append(f"- **{goal}**: {d.sentence()}")
                lines += [f"  - {c}" for c in d.controls]
            lines.append("")
        if len(rec.runtimes) > 1:
            lines += [comparison_sentence(rec.runtime_picks), ""]
        lines += [f"- {r['sentence']}" for r in rec.refinements]
        return "\n".join(lines)

    def deployment(self, rec: Recommendation, metric: str, runtime: str | None = None) -> Any:
        """The Deployment of a recommended point (its CPUs, threads; memory on its node) of
        ``runtime`` (None: the first)."""
        from coresweep.machine.cpulist import parse_cpulist
        from coresweep.recommend.configs import Deployment

        d = rec.picks_of(runtime).get(metric)
        if d is None or d.pick is None:
            return None
        cpus = tuple(parse_cpulist(d.pick["cpus"]))
        topo = rec.evidence.topo
        nodes = {topo.cpus[c].node for c in cpus if c in topo.cpus}
        node = nodes.pop() if len(nodes) == 1 and len(topo.numa_nodes) > 1 else None
        return Deployment(threads=d.threads, cpus=cpus, numa_node=node)

    def configs_markdown(self, rec: Recommendation, metric: str) -> str:
        """Each runtime's point in every format of that runtime, as markdown code blocks."""
        from coresweep.recommend.configs import all_formats

        lang = {"shell": "bash", "python": "python", "genai_config.json": "json"}
        out = []
        for runtime in rec.runtimes:
            d = self.deployment(rec, metric, runtime)
            head = f"*Runtime {runtime}*\n\n" if len(rec.runtimes) > 1 else ""
            if d is None:
                out.append(head + "No configuration: no eligible point was measured.")
                continue
            out.append(head + "\n\n".join(
                f"**{name}**\n\n```{lang[name]}\n{text}\n```"
                for name, text in all_formats(d, runtime=runtime or "ort").items()))
        return "\n\n".join(out)

    def serving_config(self, rec: Recommendation) -> str:
        """The recommended serving plan's deployment, exactly as `coresweep serve` runs it and
        as it was measured (gunicorn.conf.py, haproxy.cfg, run.sh), found by its key."""
        from coresweep import studies

        if not rec.serving:
            return "No serving plan fits the latency budget (or 04_serving did not run)."
        serving = studies.get("serving")
        full = Resolved(rec.params, rec.evidence.topo)
        plan = next(p for p in serving.plans(full) if p.key() == rec.serving["plan_key"])
        lang = {"gunicorn.conf.py": "python", "haproxy.cfg": "haproxy", "run.sh": "bash"}
        files = serving.deployment_files(plan, full)
        return "\n\n".join(f"**{name}**\n\n```{lang.get(name, '')}\n{text}```"
                            for name, text in files.items())

    def summary_lines(self, rec: Recommendation) -> list[str]:
        """The recommendation in a few lines (summary.md)."""
        from coresweep.analysis.decision import GOALS, prefill_decode_note
        from coresweep.recommend.configs import shell

        out = []
        for metric, goal in GOALS.items():
            d, dep = rec.picks[metric], self.deployment(rec, metric)
            line = f"- {goal} ({d.status}): {d.sentence()}"
            out.append(line + (f" → `{shell(dep)}`" if dep is not None else ""))
        if rec.serving:
            s = rec.serving
            out.append(f"- serving (p99 TTFT ≤ {s['budget_ms']:g} ms, {s['status']}): "
                       f"{s['plan']} at {s['concurrency']} users behind {s['dispatch']}, "
                       f"{s['tok_s']:.1f} tok/s [{s['tok_s_ci_lo']:.1f}–{s['tok_s_ci_hi']:.1f}]")
        note = prefill_decode_note(rec.picks.get("ttft_s"), rec.picks.get("decode_tok_s"))
        return out + ([f"- {note}"] if note else []) + _other_runtimes_lines(rec)


def _first_runtime(points: Any) -> Any:
    """A function keeping a table's rows of the run's first runtime (the claims are checked on
    one runtime's points: the study's claims are about one)."""
    from coresweep.analysis.runtimes import runtimes_of

    names = runtimes_of(points.all())

    def keep(rows: pd.DataFrame) -> pd.DataFrame:
        if len(names) < 2 or rows is None or not len(rows) or "runtime" not in rows:
            return rows
        return rows[rows["runtime"].astype(str) == names[0]].reset_index(drop=True)
    return keep


def _other_runtimes_lines(rec: Recommendation) -> list[str]:
    """summary.md: the other runtimes' decided points and the comparison, when several ran."""
    from coresweep.analysis.decision import GOALS
    from coresweep.analysis.runtimes import compare_picks

    if len(rec.runtimes) < 2:
        return []
    out = [f"- {goal} on {rt} ({d.status}): {d.sentence()}" for rt in rec.runtimes[1:]
           for metric, goal in GOALS.items() for d in [rec.picks_of(rt)[metric]]]
    for metric, goal in GOALS.items():
        c = compare_picks(rec.runtime_picks, metric)
        if c is not None:
            out.append(f"- {goal}: {c['best']} is {100 * (c['ratio'] - 1):.0f} % better than "
                       f"{c['other']} here ({c['relation']})")
    return out


def write_recommendation(rec: Recommendation, run_dir: str | Path) -> Path:
    """recommendation.md in the run folder: summary.md includes it."""
    lines = ["### Recommendation", "", *STUDY.summary_lines(rec), "",
             "Claims: " + "; ".join(f"{r['claim']}. {r['the study says']}: {r['verdict']}"
                                    for _, r in rec.claims.iterrows())]
    from coresweep.report.paths import run_file

    path = run_file(run_dir, "recommendation.md")
    path.write_text("\n".join(lines) + "\n")
    return path


def _load_run(run_dir: Path) -> Any:
    from coresweep.measurement.run import Run

    return Run.load(run_dir) if (run_dir / "run.json").exists() else None


def _serving_results(run_dir: Path, full: Resolved) -> Any:
    from coresweep import studies
    from coresweep.serving.sweep import ServeStore

    serving, store = studies.get("serving"), ServeStore(run_dir)
    if not store.done():  # 04 did not run in this folder
        return None
    return serving.results(store, serving.plans(full))


def _serving_pick(results: Any, resolved: Resolved) -> dict | None:
    """The one decision over the levels that fit the latency budget, among verified plans."""
    from coresweep import studies
    from coresweep.analysis.serving import best_for_budgets

    if results is None or not len(results.summary):
        return None
    ok = studies.get("serving").verified_plans(results)
    row = best_for_budgets(results.summary, [resolved.values["latency_budget_ms"]], ok).iloc[0]
    return row.to_dict() if row["fits"] else None


STUDY = RecommendStudy()

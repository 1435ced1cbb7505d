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
    picks: dict[str, dict | None]  # "ttft_s" / "decode_tok_s" -> analysis.best.choose(...)
    serving: dict | None  # the best plan within the latency budget
    claims: pd.DataFrame
    bytes_per_token: float | None
    params: dict[str, Any]


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
        """Everything the run folder holds, re-selected per study, with the roofline."""
        from coresweep import studies
        from coresweep.analysis.best import choose
        from coresweep.analysis.roofline import with_roofline
        from coresweep.measurement.bandwidth import load as load_bandwidth
        from coresweep.models import bytes_per_token
        from coresweep.studies.claims import Evidence, check_claims

        run_dir = Path(resolved.values["run_dir"])
        params = _study_params(run_dir)
        topo = resolved.topology
        full = studies.validate(params, topo=topo, model=False,
                                names=[s.id for s in studies.all_studies() if s is not self])
        run = _load_run(run_dir)
        bpt = bytes_per_token(full.values.get("model"), full.values.get("precision", "int4"))
        summary = {s.name: _selected(run, s, full) for s in studies.all_studies()
                   if s.runs_trials and s.name != "serving"}
        summary["threads"] = with_roofline(summary["threads"], bpt, load_bandwidth(run_dir))
        serving = _serving_summary(run_dir, full)
        links = {s.name: f"{s.id}.html" for s in studies.all_studies()}
        ev = Evidence(threads=summary["threads"], affinity=summary.get("affinity"),
                      smt=summary.get("smt"), serving=serving, topo=topo, links=links)
        points = pd.concat([d for d in (summary["threads"], summary.get("affinity")) if len(d)],
                           ignore_index=True) if run is not None else pd.DataFrame()
        picks = {m: choose(points, m) if len(points) else None for m in ("ttft_s",
                                                                          "decode_tok_s")}
        return Recommendation(ev, picks, _serving_pick(serving, resolved), check_claims(ev),
                              bpt, full.values)

    def picks_table(self, rec: Recommendation) -> pd.DataFrame:
        """One row per goal: the recommended point, the best it ties with, the rule."""
        rows = []
        for goal, metric, unit, scale in (("lowest TTFT", "ttft_s", "ms", 1000.0),
                                          ("highest decode", "decode_tok_s", "tok/s", 1.0)):
            p = rec.picks.get(metric)
            if p is None:
                rows.append({"goal": goal, "recommended": "no verified, quiet point"})
                continue
            rows.append({"goal": goal, "recommended": p["label"], "threads": str(p["threads"]),
                         "CPUs": p["cpus"], "value": f"{p['value'] * scale:.1f} {unit}",
                         "best measured": f"{p['best_label']} ({p['best_value'] * scale:.1f} "
                                          f"{unit})", "tied points": str(p["tied"])})
        s = rec.serving
        if s:
            rows.append({"goal": f"most tok/s with p99 TTFT ≤ {s['p99 TTFT budget ms']} ms",
                         "recommended": s["plan"], "value": f"{s['tok/s']} tok/s at "
                         f"{s['concurrency']} users", "best measured": f"p99 TTFT "
                         f"{s['p99 TTFT ms']} ms"})
        return pd.DataFrame(rows).fillna("")

    def deployment(self, rec: Recommendation, metric: str) -> Any:
        """The Deployment of a recommended point (its CPUs, threads; memory on its node)."""
        from coresweep.machine.topology import parse_cpulist
        from coresweep.recommend.configs import Deployment

        p = rec.picks.get(metric)
        if p is None:
            return None
        cpus = tuple(parse_cpulist(p["cpus"]))
        topo = rec.evidence.topo
        nodes = {topo.cpus[c].node for c in cpus if c in topo.cpus}
        node = nodes.pop() if len(nodes) == 1 and len(topo.numa_nodes) > 1 else None
        return Deployment(threads=p["threads"], cpus=cpus, numa_node=node)

    def configs_markdown(self, rec: Recommendation, metric: str) -> str:
        """The point's configuration in every format, as markdown code blocks."""
        from coresweep.recommend.configs import all_formats

        d = self.deployment(rec, metric)
        if d is None:
            return "No configuration: no verified, quiet point was measured."
        lang = {"shell": "bash", "python": "python", "genai_config.json": "json"}
        return "\n\n".join(f"**{name}**\n\n```{lang[name]}\n{text}\n```"
                            for name, text in all_formats(d).items())

    def serving_config(self, rec: Recommendation) -> str:
        """gunicorn.conf.py of the recommended serving plan."""
        from coresweep import studies
        from coresweep.models import resolve_model
        from coresweep.serving.config import ServeConfig
        from coresweep.serving.server import print_config

        if not rec.serving:
            return "No serving plan fits the latency budget (or 04_serving did not run)."
        full = Resolved(rec.params, rec.evidence.topo)
        plan = next(p for p in studies.get("serving").plans(full)
                    if p.label == rec.serving["plan"])
        model_dir = str(resolve_model(rec.params["model"], rec.params["precision"], build=False))
        cfg = ServeConfig(model_dir=model_dir, workers=plan.workers, threads=plan.threads,
                          slices=plan.slices(rec.evidence.topo), model_name=rec.params["model"])
        return f"```python\n{print_config(cfg)}```"

    def summary_lines(self, rec: Recommendation) -> list[str]:
        """The recommendation in a few lines (summary.md)."""
        from coresweep.analysis.best import prefill_decode_note
        from coresweep.recommend.configs import shell

        out = []
        for goal, metric in (("TTFT", "ttft_s"), ("decode", "decode_tok_s")):
            d = self.deployment(rec, metric)
            if d is not None:
                out.append(f"- best {goal}: {rec.picks[metric]['label']} → `{shell(d)}`")
        if rec.serving:
            out.append(f"- serving (p99 TTFT ≤ {rec.serving['p99 TTFT budget ms']} ms): "
                       f"{rec.serving['plan']}, {rec.serving['tok/s']} tok/s")
        note = prefill_decode_note(rec.picks.get("ttft_s"), rec.picks.get("decode_tok_s"))
        return out + ([f"- {note}"] if note else [])


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
    from coresweep.measurement.results import Run

    return Run.load(run_dir) if (run_dir / "run.json").exists() else None


def _serving_summary(run_dir: Path, full: Resolved) -> pd.DataFrame:
    from coresweep import studies
    from coresweep.serving.sweep import ServeStore

    serving = studies.get("serving")
    return serving.results(ServeStore(run_dir), serving.plans(full)).summary


def _serving_pick(summary: pd.DataFrame, resolved: Resolved) -> dict | None:
    from coresweep.analysis.serving import best_for_budgets

    if summary is None or not len(summary):
        return None
    row = best_for_budgets(summary, [resolved.values["latency_budget_ms"]]).iloc[0]
    return None if row["plan"] == "none fits" else row.to_dict()


STUDY = RecommendStudy()

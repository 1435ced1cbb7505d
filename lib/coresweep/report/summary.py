"""Per-run summary (llama-bench style): summary.md and summary.csv, and the run's decisions
(analysis.decision, the same as 05's) recorded in batch.json for the index and compare."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coresweep.analysis.runtimes import decisions_markdown
from coresweep.analysis.verdicts import same_work_sentence
from coresweep.parameters import current_names
from coresweep.report.paths import read_json, run_file, write_json
from coresweep.tables import markdown, run_table

COLUMNS = ["config", "threads", "placement", "cpus", "ttft_ms", "ttft_ci_ms", "prefill_tok_s",
           "decode_tok_s", "decode_ci", "decode_gb_s", "pct_of_roofline", "cpu_pct", "n",
           "placement_ok", "noisy"]


def with_roofline(run_dir: Path, run: Any) -> Any:
    """The run's summary with achieved GB/s and % of the bandwidth measured at each placement."""
    from coresweep.analysis.roofline import runtime_roofline
    from coresweep.measurement.bandwidth_table import load

    params = run.meta.get("params") or {}
    return runtime_roofline(run.summary, params.get("model"), params.get("precision", "int4"),
                            load(run_dir))


def _names(value: Any) -> str:
    """A parameter that may be a list (an axis), as text."""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def load_run(run_dir: str | Path) -> Any:
    """The run folder's data, or None when it has none (a batch that ran no trial)."""
    from coresweep.measurement.run import Run

    if not (Path(run_dir) / "run.json").exists():
        return None
    return Run.load(run_dir)


def _header(run_dir: Path, meta: Mapping[str, Any], run: Any) -> list[str]:
    rmeta = run.meta if run is not None else {}
    params = current_names(meta.get("params") or rmeta.get("params") or {})
    fp = rmeta.get("fingerprint") or {}
    versions = rmeta.get("versions") or {}
    cpu = meta.get("cpu") or (fp.get("topology") or {}).get("model_name")
    machine = meta.get("machine") or rmeta.get("machine") or run_dir.name
    return [f"## coresweep · {machine}", "",
            f"CPU: {cpu} · model: {params.get('model')} {params.get('precision', '')} · runtime: "
            f"{_names(params.get('runtime'))} · prompt {params.get('prompt_tokens')} / gen "
            f"{params.get('gen_tokens')} tokens · onnxruntime {versions.get('onnxruntime')} · "
            f"{meta.get('created', '')}", ""]


def best_record(decisions: dict[str, Any], points: Any) -> dict[str, Any]:
    """batch.json "best": each goal's decision (pick, status, candidates) and, for decode, the
    pick's roofline (GB/s and % of the bandwidth measured on its CPUs)."""
    out = {m: d.to_dict() for m, d in decisions.items()}
    dec = decisions.get("decode_tok_s")
    if dec is not None and dec.pick is not None and points is not None and len(points) \
            and "decode_gb_s" in points:
        row = points[points["config_key"] == dec.pick["config_key"]]
        if len(row) and row["decode_gb_s"].notna().iloc[0]:
            out["decode_tok_s"]["pick"].update(
                gb_s=float(row["decode_gb_s"].iloc[0]),
                pct_of_ceiling=float(row["pct_of_ceiling"].iloc[0]))
    return out


def write_summary(run_dir: str | Path, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write <run>/summary.md and <run>/summary.csv; return the decisions' record."""
    from coresweep.recommend.points import run_points

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    roof = with_roofline(run_dir, run) if run is not None else None
    df = run_table(roof)
    points = run_points(run) if run is not None and len(df) else None
    decisions = points.decisions() if points is not None else {}
    lines = _header(run_dir, meta or {}, run)
    if len(df):
        lines += [markdown(df[COLUMNS]), "", "Recommended on this machine (the one decision, "
                  "as the recommendation report):", "",
                  decisions_markdown(points.runtime_decisions()), "",
                  same_work_sentence(run.trials)]
    else:
        lines.append("No successful trial in this run.")
    rec = run_file(run_dir, "recommendation.md")  # written by the recommendation notebook
    if rec.exists():
        lines += ["", rec.read_text().strip()]
    lines += ["", "ttft/decode: medians over processes × repetitions; ci: 95 % bootstrap CI of "
              "the median; decode_gb_s: decode tok/s × bytes read per token; pct_of_roofline: "
              "of the read bandwidth measured on the same CPUs; n: processes x repetitions."]
    run_file(run_dir, "summary.md").write_text("\n".join(lines) + "\n")
    df.to_csv(run_file(run_dir, "summary.csv"), index=False)
    return best_record(decisions, points.threads if points is not None else None)


def finish_run(run_dir: str | Path) -> dict[str, Any]:
    """Write summary.md / summary.csv and record the best configs in batch.json."""
    path = run_file(run_dir, "batch")
    meta = read_json(path)
    meta["best"] = write_summary(run_dir, meta)
    if path.exists() or meta:
        write_json(path, meta)
    return meta

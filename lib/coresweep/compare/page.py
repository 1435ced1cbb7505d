"""`compare_runs(run_dirs, out=...)`: runs of the same work side by side, as one self-contained
HTML page rendered by the reports' own template (written as compare.ipynb, rendered to
compare.html, with compare.json saying which runs it holds for reports/index.html)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from coresweep.compare.machines import fingerprint_diff
from coresweep.compare.runs import ComparedRun, load_run
from coresweep.compare.work import Work, split_by_work
from coresweep.errors import CoresweepError
from coresweep.provenance import now_iso, utc_stamp
from coresweep.report.paths import (
    comparison_file,
    new_folder,
    reports_root,
    write_json,
)

# (heading, stem of the summary/normalised columns, scale) of the side-by-side tables
SIDE_BY_SIDE = (
    ("decode tok/s", "decode_tok_s", 1.0), ("TTFT ms", "ttft_s", 1000.0),
    ("CPU % (100 = one CPU busy)", "cpu_util_pct", 1.0),
    ("decode tok/s per physical core used", "decode_tok_s_per_core", 1.0),
    ("decode bandwidth, % of the read bandwidth measured on the same CPUs", "roofline_pct", 1.0),
    ("decode speedup over 1 thread (×)", "decode_speedup", 1.0),
    ("TTFT speedup over 1 thread (×)", "ttft_speedup", 1.0),
)


def esc(value: Any) -> str:
    """Text from a run folder (possibly someone else's archive) made inert in markdown/HTML."""
    return html.escape(str(value)).replace("|", "&#124;")


def _href(out: Path, target: Path) -> str:
    return quote(os.path.relpath(target, out))


def _markdown(text: str) -> Any:
    import nbformat

    return nbformat.v4.new_markdown_cell(text)


def _output_cell(comment: str, data: dict[str, str]) -> Any:
    """A code cell holding one display output (its source, hidden in the HTML, says what)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(f"# {comment}")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
    return cell


def _figure_cell(fig: Any, comment: str) -> Any:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    png = base64.b64encode(buf.getvalue()).decode()
    return _output_cell(comment, {"image/png": png, "text/plain": f"<figure: {comment}>"})


def _table_md(df: Any) -> str:
    from coresweep.tables import markdown

    return markdown(df.map(esc).rename(columns=esc))


def unique_names(runs: Sequence[ComparedRun]) -> None:
    """Two runs of the same folder name (say, an imported copy) get their parent's name too."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
    for r in runs:
        if seen[r.name] > 1:
            r.name = f"{r.path.parent.name}/{r.name}"


def _runs_section(runs: Sequence[ComparedRun], work: Work, out: Path) -> str:
    import pandas as pd

    from coresweep.studies.common import prompt_lengths
    from coresweep.tables import markdown

    threads, recommend = _ids()
    rows = []
    for r in runs:
        links = [f"[{s}]({_href(out, r.path / f'{s}.html')})" for s in (threads, recommend)
                 if (r.path / f"{s}.html").exists()]
        rows.append({"run": esc(r.name), "machine": esc(r.machine), "CPU": esc(r.cpu),
                     "date (UTC)": esc(r.date), "runtime": esc(", ".join(r.runtime_sweeps) or r.values.get("runtime")),
                     "processes × reps": f"{esc(r.values.get('processes'))} × "
                                         f"{esc(r.values.get('reps'))}",
                     "schema": r.schema_version,
                     "threads measured": ", ".join(str(int(t)) for t in r.sweep["threads"]),
                     "prompt lengths (first compared)": esc(", ".join(
                         map(str, prompt_lengths(r.values)))),
                     "reports": " · ".join(links) or "–"})
    return (f"# Comparing {len(runs)} runs\n\nThe same work in every run compared: "
            f"{esc(work.describe())}. Every number below was measured by the run named; the "
            f"curves are each run's thread sweep ({threads}) at its first prompt length (more "
            "lengths feed its context curves, not compared here).\n\n"
            + markdown(pd.DataFrame(rows)))


def _left_out_section(left: Sequence[tuple[ComparedRun, list[str]]]) -> str:
    lines = [f"- **{esc(r.name)}** ({esc(r.machine)}): {esc('; '.join(why))}" for r, why in left]
    return ("## Not compared: different work\n\nThese runs did other work than the runs compared "
            "(what differs, this run vs the runs compared), so their numbers are not put side by "
            "side:\n\n" + "\n".join(lines))


def _machines_section(runs: Sequence[ComparedRun]) -> str:
    diff, same = fingerprint_diff([r.name for r in runs], [r.fingerprint for r in runs])
    head = "## Machines: what differs\n\n"
    body = (_table_md(diff) if len(diff) else
            "The fingerprints agree on every fact compared: these runs come from one machine "
            "(or identical ones).")
    return head + body + "\n\nThe same in every run: " + esc("; ".join(same) or "nothing") + "."


def _missing_notes(runs: Sequence[ComparedRun]) -> str:
    notes = []
    for r in runs:
        s = r.sweep
        if not r.has_bandwidth:
            notes.append(f"{esc(r.name)} has no bandwidth measurement (older run, or "
                         "`bandwidth: off`): no % of roofline")
        elif s["roofline_pct_median"].isna().all():
            notes.append(f"{esc(r.name)}: no bytes per token (the model "
                         f"{esc(r.values.get('model'))} is not on this machine): no % of roofline")
        if not (s["threads"].astype(int) == 1).any():
            notes.append(f"{esc(r.name)} has no 1-thread point: no speedup")
    return ("\n\n" + "\n".join(f"- {n}" for n in notes)) if notes else ""


# the notebook CSS right-aligns table cells: prose reads better left-aligned, on top
_TABLE_CSS = ("<style>.coresweep-compare td,.coresweep-compare th{text-align:left;"
              "vertical-align:top}.coresweep-compare h3{font-size:1em;margin:0}</style>")


def _decision_text(decisions: dict[str, Any], metric: str) -> str:
    """The run's decision (analysis.decision, as its own report): pick, value, how sure."""
    d = decisions.get(metric)
    if d is None or d.pick is None:
        return "–"
    return f"{esc(d.pick.get('label'))}: {esc(d.value_text())} ({esc(d.status)})"


def _ids() -> tuple[str, str]:
    """The notebook stems of the thread study and the recommendation, from the registry."""
    from coresweep import studies

    return studies.get("threads").id, studies.get("recommend").id


def _recommendation_html(runs: Sequence[ComparedRun]) -> str:
    """A table with one column per run: its decisions and its recommendation.md."""
    from nbconvert.filters import markdown2html

    def row(head: str, cells: list[str]) -> str:
        return f"<tr><th>{head}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    recs = [markdown2html(esc(r.recommendation)) if r.recommendation
            else f"<em>{_ids()[1]} did not run</em>" for r in runs]
    return (_TABLE_CSS + "<table class='coresweep-compare'><thead>"
            + row("", [esc(r.name) for r in runs]) + "</thead><tbody>"
            + row("recommended for TTFT", [_decision_text(r.decisions, "ttft_s") for r in runs])
            + row("recommended for decode", [_decision_text(r.decisions, "decode_tok_s")
                                             for r in runs])
            + row("recommendation", recs) + "</tbody></table>")


def _cpus_cell(row: Any) -> str:
    n = row["cores_used"]
    return f"{row['cpus']} ({n:.0f} core{'s' * (n != 1)})" if n == n else str(row["cpus"])


def _cpus_table(runs: Sequence[ComparedRun]) -> Any:
    """threads | per run: the CPUs the placement used and the physical cores they span."""
    import pandas as pd

    threads = sorted({int(t) for r in runs for t in r.sweep["threads"]})
    out: dict[str, list[str]] = {"threads": [str(t) for t in threads]}
    for r in runs:
        at = {int(row["threads"]): row for _, row in r.sweep.iterrows()}
        out[r.name] = [_cpus_cell(at[t]) if t in at else "–" for t in threads]
    return pd.DataFrame(out)


_DEFINITIONS = (
    "How the views are normalised: *per physical core used* divides decode tok/s by the "
    "physical cores the point's CPUs span on its own machine (from the run's fingerprint; "
    "SMT siblings count once); *% of roofline* is decode GB/s (tok/s × bytes read per token, the "
    "same model for every run compared) over the read bandwidth measured on the same CPUs with "
    "the same threads in that run; *speedup* is over the run's own 1-thread point. Bands and "
    "parentheses: the 95 % bootstrap CI of the median.")


def comparison_notebook(runs: Sequence[ComparedRun], left: Sequence[tuple[ComparedRun, list[str]]],
                        work: Work, out: Path) -> Any:
    """The comparison as a notebook of markdown and display outputs (no code to run)."""
    import nbformat

    from coresweep import plots
    from coresweep.tables import side_by_side

    named = any(len(r.runtime_sweeps) > 1 for r in runs)  # a run measured several runtimes
    sweeps = {name: s for r in runs for name, s in r.series(named).items()}
    cap = plots.caption(model=f"{work.model} {work.precision}, prompt {work.prompt_tokens} / "
                              f"gen {work.gen_tokens} tokens", extra=f"{len(runs)} runs")
    cells = [_markdown(_runs_section(runs, work, out))]
    if left:
        cells.append(_markdown(_left_out_section(left)))
    cells += [
        _markdown(_machines_section(runs)),
        _markdown("## Thread sweeps overlaid\n\nEach run's median against the intra-op thread "
                  "count (band: 95 % CI of the median)."),
        _figure_cell(plots.compare_curves(sweeps, ["decode_tok_s", "ttft_s", "cpu_util_pct"],
                                          title="Decode, TTFT and CPU use against threads",
                                          cap=cap), "thread sweeps overlaid"),
        _markdown("## Normalised: per core, against each machine's memory bandwidth, against "
                  "1 thread" + _missing_notes(runs)),
        _figure_cell(plots.compare_curves(sweeps, ["decode_tok_s_per_core", "roofline_pct"],
                                          title="Decode per physical core and against the "
                                                "measured roofline", cap=cap), "normalised"),
        _figure_cell(plots.compare_curves(sweeps, ["decode_speedup", "ttft_speedup"],
                                          title="Speedup over 1 thread", cap=cap), "speedup"),
        _markdown("## The study's table, side by side\n\nOne table per measure: a row per thread "
                  "count, a column per run; median (95 % CI); – where the run did not measure it."
                  "\n\n**CPUs used**\n\n" + _table_md(_cpus_table(runs))),
    ]
    cells += [_markdown(f"**{head}**\n\n" + _table_md(side_by_side(sweeps, stem, scale)))
              for head, stem, scale in SIDE_BY_SIDE]
    cells += [_markdown("## Best points and recommendations, side by side\n\nBest = over every "
                        "configuration the run measured; the recommendation is the run's own "
                        f"({_ids()[1]}, CI-aware)."),
              _output_cell("recommendations", {"text/html": _recommendation_html(runs)}),
              _markdown(_DEFINITIONS)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def _checked_dirs(run_dirs: Sequence[str | Path]) -> list[Path]:
    dirs = [Path(d).expanduser().resolve() for d in run_dirs]
    if len(dirs) < 2:
        raise CoresweepError(f"compare needs two or more run folders, got {len(dirs)}: "
                             f"{', '.join(map(str, dirs)) or 'none'}")
    twice = sorted({str(d) for d in dirs if dirs.count(d) > 1})
    if twice:
        raise CoresweepError(f"run folder given more than once: {', '.join(twice)}")
    return dirs


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write ``out``/compare.html (default reports/compare-<time>/, a new folder each time)
    comparing the runs that did the same work; returns the page. Lists the comparison in the
    index of ``out``'s parent when that folder is a reports folder (reports/, or one with
    coresweep's index.html)."""
    import nbformat

    from coresweep.report.html import render_html
    from coresweep.report.index import is_reports_folder, write_index

    runs = [load_run(d) for d in _checked_dirs(run_dirs)]
    unique_names(runs)
    kept, left, work = split_by_work(runs)
    if out:
        out = Path(out).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
    else:  # two comparisons in the same second get two folders
        out = new_folder(reports_root(), f"compare-{utc_stamp()}")
    listed = is_reports_folder(out.parent)
    ipynb = comparison_file(out, "ipynb")
    nbformat.write(comparison_notebook(kept, left, work, out), ipynb)
    banner = (f"coresweep comparison · {len(kept)} runs · {esc(work.model)} "
              f"{esc(work.precision)}" + (' · <a href="../index.html">all runs</a>'
                                          if listed else ""))
    page = render_html(ipynb, comparison_file(out, "html"), banner=banner,
                       title=f"comparison of {len(kept)} runs")
    write_json(comparison_file(out, "json"), {
        "created": now_iso(), "work": work.describe(),
        "runs": [{"name": r.name, "machine": r.machine, "cpu": r.cpu,
                  "path": os.path.relpath(r.path, out)} for r in kept],
        "left_out": [{"name": r.name, "path": os.path.relpath(r.path, out), "differs": why}
                     for r, why in left]})
    if listed:
        write_index(out.parent)
    return page

"""Batch runs and shareable reports.

`run_batch(params_file, overrides, out=...)` validates every parameter and trial config first,
builds the model if it is a preset not built yet, then executes each notebook with papermill into
``reports/<machine>-<timestamp>/`` (executed .ipynb, ``data/`` tables, ``run.json`` from the
store, ``batch.json`` with the parameters and notebook statuses), printing progress and an ETA.
Re-running on the same folder reuses finished trials (the store's resume).

`render_html()` turns an executed notebook into ONE self-contained HTML file: code hidden,
figures embedded as data: URIs, and none of the CDN scripts nbconvert's lab template loads
(require.js, MathJax, mermaid) — opening a report offline makes zero network requests.
`write_summary()` writes summary.md / summary.csv per run (llama-bench style), and
`write_index()` lists every run under reports/ in reports/index.html.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coresweep import params as P
from coresweep.errors import CoresweepError, ParamsError

NOTEBOOK_DIR_ENV = "CORESWEEP_NOTEBOOKS"
TEMPLATES = Path(__file__).resolve().parent / "templates"
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I)
_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//""", re.I)

TITLES = {
    "00_machine": "The machine",
    "01_threads": "How many threads?",
    "02_affinity": "Which CPUs? Placement strategies",
    "03_smt": "SMT on or off?",
}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _stamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def _fmt_s(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}:{s % 60:02d}"


def notebook_dir() -> Path:
    """Where the notebooks are: $CORESWEEP_NOTEBOOKS, or notebooks/ of the project checkout."""
    import os

    env = os.environ.get(NOTEBOOK_DIR_ENV)
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[2], P.project_root()):
        if (base / "notebooks" / "01_threads.ipynb").is_file():
            return base / "notebooks"
    raise CoresweepError(
        "cannot find the notebooks folder (notebooks/01_threads.ipynb); run from the coresweep "
        f"checkout or set {NOTEBOOK_DIR_ENV}"
    )


def reports_root() -> Path:
    return P.project_root() / "reports"


def _select_notebooks(names: Sequence[str] | None) -> list[str]:
    if not names:
        return list(P.NOTEBOOKS)
    out = []
    for n in names:
        n = Path(n).stem
        match = [nb for nb in P.NOTEBOOKS if nb == n or nb.split("_", 1)[0] == n
                 or nb.split("_", 1)[1] == n]
        if not match:
            raise ParamsError(f"unknown notebook {n!r}; valid choices: {', '.join(P.NOTEBOOKS)}")
        out.append(match[0])
    return [nb for nb in P.NOTEBOOKS if nb in out]


# ------------------------------------------------------------------------------------------------
# batch run


def prepare_batch(params_file: str | Path | None, overrides: Sequence[str] | Mapping = (), *,
                  notebooks: Sequence[str] | None = None, topo=None, build: bool = True,
                  log=print) -> dict[str, Any]:
    """Validate everything a batch needs before any trial: parameters, placements of every trial
    config on this machine, the model (built here when it is a missing preset)."""
    from coresweep.measurement.trial import prepare

    names = _select_notebooks(notebooks)
    checked = P.load(params_file, overrides)
    if topo is None:
        from coresweep.machine.topology import read_topology

        topo = read_topology()
    # validate what the chosen notebooks use (P.load already type-checked every key)
    for nb in names:
        P.validate(checked, notebook=nb, topo=topo, model=False)
    resolved = P.Resolved(P.resolve(checked, topo), topo)
    configs = {nb: P.configs_for(nb, resolved, topo) for nb in names}
    if any(configs.values()):
        P.check_model(resolved["model"], resolved["precision"])
        if build:
            from coresweep.models import PRESETS, resolve_model

            if resolved["model"] in PRESETS:
                t0 = time.monotonic()
                log(f"model: {resolved['model']} ({resolved['precision']}) — building if missing")
                path = resolve_model(resolved["model"], resolved["precision"], build=True)
                log(f"model: {path} ({time.monotonic() - t0:.0f} s)")
        for nb, cfgs in configs.items():
            if cfgs:
                try:
                    prepare(cfgs, topo=topo, build=build, check_mem=True)
                except CoresweepError as exc:
                    raise ParamsError(f"notebook {nb}: {exc}") from None
    return {"checked": checked, "resolved": resolved, "configs": configs, "topo": topo,
            "notebooks": names}


def run_batch(params_file: str | Path | None = None, overrides: Sequence[str] | Mapping = (), *,
              out: str | Path | None = None, notebooks: Sequence[str] | None = None,
              html_reports: bool = True, progress: bool = True, kernel_name: str = "python3",
              log=None) -> Path:
    """Validate, then run the notebooks with papermill into a run folder; render HTML, the
    summary and the index. Returns the run folder. Raises CoresweepError on a failed notebook
    (after rendering what ran)."""
    import papermill as pm

    from coresweep.machine.topology import machine_name
    from coresweep.measurement.store import Store

    def say(msg: str) -> None:
        if log is not None:
            log(msg)
        else:
            print(f"coresweep run: {msg}", file=sys.stderr, flush=True)

    t_start = time.monotonic()
    batch = prepare_batch(params_file, overrides, notebooks=notebooks, log=say)
    topo, names, configs = batch["topo"], batch["notebooks"], batch["configs"]
    t_units = time.monotonic()  # the model build (in prepare_batch) is not part of the rate
    checked = dict(batch["checked"])
    run_dir = Path(out) if out else reports_root() / f"{machine_name(topo)}-{_stamp()}"
    run_dir = run_dir.expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    checked["run_dir"] = str(run_dir)
    src_dir = notebook_dir()
    meta_path = run_dir / "batch.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update({
        "params_file": str(params_file) if params_file else None,
        "overrides": list(overrides) if not isinstance(overrides, Mapping) else dict(overrides),
        "params": checked,
        "resolved": batch["resolved"].to_dict(),
        "machine": machine_name(topo),
        "cpu": getattr(topo, "model_name", None),
        "notebooks": meta.get("notebooks", {}),
    })
    meta.setdefault("created", _now())
    meta["started"] = _now()
    _write_json(meta_path, meta)

    processes = int(checked["processes"])
    done = Store(run_dir).completed_units() if (run_dir / "data").exists() else set()
    units = {nb: [(c.key(), p) for c in cfgs for p in range(processes)]
             for nb, cfgs in configs.items()}
    todo = {nb: [u for u in us if u not in done] for nb, us in units.items()}
    total = sum(len(v) for v in todo.values())
    say(f"{len(names)} notebook(s) into {run_dir}; {total} worker process(es) to run"
        + (f", {len(done)} reused" if done else ""))
    sec_per_unit: float | None = None
    units_done = 0
    failed: list[str] = []
    for i, nb in enumerate(names, 1):
        remaining = sum(len(todo[n]) for n in names[i - 1:])
        eta = (f", ETA {_fmt_s(remaining * sec_per_unit + 8 * (len(names) - i + 1))}"
               if sec_per_unit else "")
        say(f"[{i}/{len(names)}] {nb}: {len(todo[nb])} worker process(es) "
            f"(elapsed {_fmt_s(time.monotonic() - t_start)}{eta})")
        t0 = time.monotonic()
        dst = run_dir / f"{nb}.ipynb"
        pvals = {k: checked[k] for k in P.keys_for(nb)}
        status, error = "ok", None
        monitor = _Progress(run_dir, todo[nb], names[i:], todo, t_start, units_done, say,
                            label=f"[{i}/{len(names)}] {nb}")
        monitor.start()
        try:
            pm.execute_notebook(str(src_dir / f"{nb}.ipynb"), str(dst), parameters=pvals,
                                kernel_name=kernel_name, progress_bar=progress,
                                cwd=str(src_dir))
        except pm.PapermillExecutionError as exc:
            status, error = "failed", f"{exc.ename}: {exc.evalue}"
            failed.append(nb)
            say(f"{nb} FAILED: {error}")
        finally:
            monitor.stop()
        wall = time.monotonic() - t0
        units_done += len(todo[nb])
        if units_done:
            sec_per_unit = (time.monotonic() - t_units) / units_done
        meta["notebooks"][nb] = {"status": status, "error": error, "wall_s": round(wall, 1),
                                 "units": len(units[nb]), "units_run": len(todo[nb]),
                                 "end": _now()}
        _write_json(meta_path, meta)
        if html_reports and dst.exists():
            render_html(dst, banner=_banner(meta, nb))
        say(f"[{i}/{len(names)}] {nb}: {status} in {_fmt_s(wall)}")
    meta["finished"] = _now()
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    _write_json(meta_path, meta)
    finish_run(run_dir)
    index = write_index(run_dir.parent)
    say(f"done in {_fmt_s(time.monotonic() - t_start)}: {run_dir}")
    say(f"index: {index}")
    if failed:
        raise CoresweepError(f"notebook(s) failed: {', '.join(failed)}; see the executed "
                             f"notebooks and HTML in {run_dir}")
    return run_dir


class _Progress:
    """Watches the run folder while a notebook runs and prints finished worker processes with
    the elapsed time and an ETA for the whole batch (rate measured in this batch)."""

    def __init__(self, run_dir: Path, units, later: Sequence[str], todo, t_start: float,
                 done_before: int, say, label: str, every_s: float = 2.0):
        import threading

        self.run_dir, self.units, self.say, self.label = run_dir, set(units), say, label
        self.later = sum(len(todo[n]) for n in later)
        self.t_start, self.done_before, self.every_s = t_start, done_before, every_s
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="coresweep-progress")
        self.t0 = time.monotonic()
        self.last = 0

    def start(self) -> None:
        if self.units:
            self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)

    def _finished(self) -> int:
        d = self.run_dir / "data"
        seen = set()
        for sub in ("trials", "failures"):
            for f in (d / sub).glob("*.parquet") if (d / sub).is_dir() else ():
                m = re.fullmatch(r"(.+)__p(\d+)(?:__\d+)?\.parquet", f.name)
                if m and (m.group(1), int(m.group(2))) in self.units:
                    seen.add((m.group(1), int(m.group(2))))
        return len(seen)

    def _loop(self) -> None:
        while not self.stop_event.wait(self.every_s):
            n = self._finished()
            if n == self.last:
                continue
            self.last = n
            elapsed = time.monotonic() - self.t_start
            rate = (time.monotonic() - self.t0) / n
            remaining = (len(self.units) - n) + self.later
            self.say(f"{self.label}: {n}/{len(self.units)} worker processes done · elapsed "
                     f"{_fmt_s(elapsed)} · ETA {_fmt_s(remaining * rate)}")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    tmp.replace(path)


def _banner(meta: Mapping[str, Any], nb: str) -> str:
    return (f"coresweep report · {html.escape(str(meta.get('machine')))} · "
            f"{html.escape(str(meta.get('cpu')))} · model "
            f"{html.escape(str((meta.get('params') or {}).get('model')))} · "
            f'<a href="../index.html">all runs</a>')


def finish_run(run_dir: str | Path) -> dict[str, Any]:
    """Write summary.md / summary.csv and record the best configs in batch.json."""
    run_dir = Path(run_dir)
    meta_path = run_dir / "batch.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    best = write_summary(run_dir, meta)
    meta["best"] = best
    if meta_path.exists() or meta:
        _write_json(meta_path, meta)
    return meta


# ------------------------------------------------------------------------------------------------
# HTML


def _strip_for_html(nb) -> None:
    """Drop progress-bar noise (stderr streams) and widget outputs that need JavaScript."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        keep = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                continue
            data = o.get("data")
            if data and "application/vnd.jupyter.widget-view+json" in data:
                data.pop("application/vnd.jupyter.widget-view+json")
                if not data:
                    continue
            keep.append(o)
        cell["outputs"] = keep


def external_references(text: str) -> list[str]:
    """Every src=/href=/url()/@import in an HTML page that points off the file system."""
    hits = []
    for rx in (_EXTERNAL, _CSS_URL, _IMPORT):
        for m in rx.finditer(text):
            hits.append(text[m.start(): m.start() + 80])
    return hits


def render_html(ipynb: str | Path, out: str | Path | None = None, *,
                banner: str | None = None) -> Path:
    """Render an executed notebook to ONE self-contained HTML file with the code hidden."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    ipynb = Path(ipynb)
    out = Path(out) if out else ipynb.with_suffix(".html")
    nb = nbformat.read(ipynb, as_version=4)
    _strip_for_html(nb)
    exporter = HTMLExporter(template_name="coresweep", extra_template_basedirs=[str(TEMPLATES)])
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.embed_images = True
    tags = TagRemovePreprocessor(remove_cell_tags={"remove_cell"},
                                 remove_input_tags={"remove_input"}, enabled=True)
    exporter.register_preprocessor(tags, enabled=True)
    title = TITLES.get(ipynb.stem, ipynb.stem)
    nb.metadata["title"] = f"coresweep · {title}"
    body, _ = exporter.from_notebook_node(nb, resources={"coresweep_banner": banner})
    ext = external_references(body)
    if ext:  # never ship a report that would reach the network
        raise CoresweepError(f"{out}: the rendered HTML references the network: {ext[:3]}")
    out.write_text(body, encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------
# per-run summary (llama-bench style) and the index


def _md_table(rows: list[dict[str, Any]], cols: Sequence[str]) -> str:
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "|".join("---:" if c not in ("config", "placement", "cpus") else "---"
                         for c in cols) + "|"
    body = ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def summary_frame(run_dir: str | Path):
    """One row per measured config of a run, ready for markdown/CSV."""
    import pandas as pd

    from coresweep.measurement.sweep import Run

    try:
        run = Run.load(run_dir)
    except CoresweepError:
        return pd.DataFrame(), None
    s = run.summary
    if s is None or s.empty:
        return pd.DataFrame(), run
    rows = []
    for _, r in s.iterrows():
        t = int(r["threads"])
        rows.append({
            "config": r.get("label"),
            "threads": "ORT default" if t < 0 else t,
            "placement": r.get("strategy", r.get("placement")),
            "cpus": r.get("cpus"),
            "smt": r.get("smt"),
            "ttft_ms": round(float(r["ttft_s_median"]) * 1000, 2),
            "ttft_ci_ms": f"{r['ttft_s_ci_lo'] * 1000:.1f}-{r['ttft_s_ci_hi'] * 1000:.1f}",
            "prefill_tok_s": round(float(r["prefill_tok_s_median"]), 2),
            "decode_tok_s": round(float(r["decode_tok_s_median"]), 2),
            "decode_ci": f"{r['decode_tok_s_ci_lo']:.2f}-{r['decode_tok_s_ci_hi']:.2f}",
            "cpu_pct": round(float(r.get("cpu_util_pct_median", float("nan"))), 1),
            "n": f"{int(r['n_processes'])}x{int(r['n_reps']) // max(1, int(r['n_processes']))}",
            "placement_ok": bool(r.get("placement_ok", True)),
            "noisy": bool(r.get("noisy", False)),
        })
    df = pd.DataFrame(rows)
    df["_t"] = [999 if isinstance(t, str) else t for t in df["threads"]]
    df = df.sort_values(["_t", "config"], kind="stable").drop(columns="_t").reset_index(drop=True)
    return df, run


def _threads_text(t: int) -> str:
    return "ORT's default thread count" if int(t) < 0 else f"{int(t)} thread{'s' * (int(t) != 1)}"


def write_summary(run_dir: str | Path, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write <run>/summary.md and <run>/summary.csv; return the best TTFT/decode configs."""
    from coresweep.plots import best_configs

    run_dir = Path(run_dir)
    meta = dict(meta or {})
    df, run = summary_frame(run_dir)
    best = best_configs(run.summary) if run is not None and len(df) else {}
    params = meta.get("params") or (run.meta.get("params") if run else {}) or {}
    fp = (run.meta.get("fingerprint") if run else None) or {}
    versions = (run.meta.get("versions") if run else None) or {}
    cpu = meta.get("cpu") or (fp.get("topology") or {}).get("model_name")
    machine = meta.get("machine") or (run.meta.get("machine") if run else run_dir.name)
    lines = [
        f"## coresweep · {machine}",
        "",
        f"CPU: {cpu} · model: {params.get('model')} {params.get('precision', '')} · engine: "
        f"{params.get('engine')} · prompt {params.get('prompt_tokens')} / gen "
        f"{params.get('gen_tokens')} tokens · onnxruntime {versions.get('onnxruntime')} · "
        f"{meta.get('created', '')}",
        "",
    ]
    cols = ["config", "threads", "placement", "cpus", "ttft_ms", "ttft_ci_ms", "prefill_tok_s",
            "decode_tok_s", "decode_ci", "cpu_pct", "n", "placement_ok", "noisy"]
    if len(df):
        lines.append(_md_table(df.to_dict("records"), cols))
        lines.append("")
        if "ttft_s" in best:
            b = best["ttft_s"]
            lines.append(f"Best TTFT: {b['value'] * 1000:.1f} ms with {b['label']} "
                         f"({_threads_text(b['threads'])})  ")
        if "decode_tok_s" in best:
            b = best["decode_tok_s"]
            lines.append(f"Best decode: {b['value']:.2f} tok/s with {b['label']} "
                         f"({_threads_text(b['threads'])})")
        if run is not None:
            from coresweep.plots import same_work_sentence

            lines.append("")
            lines.append(same_work_sentence(run.trials))
    else:
        lines.append("No successful trial in this run.")
    lines.append("")
    lines.append("ttft/decode: medians over processes × repetitions; ci: 95 % bootstrap CI of "
                 "the median; n: processes x repetitions.")
    (run_dir / "summary.md").write_text("\n".join(lines) + "\n")
    df.to_csv(run_dir / "summary.csv", index=False)
    return best


_INDEX_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}
table{border-collapse:collapse;width:100%;margin-top:1em}
th,td{border-bottom:1px solid #ddd;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666;font-size:.9em}
a{color:#1f5fa8}
.fail{color:#b00020}
"""


def _run_row(run_dir: Path) -> dict[str, Any] | None:
    meta_path = run_dir / "batch.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return None
    params = meta.get("params") or {}
    reports = []
    for nb in P.NOTEBOOKS:
        if (run_dir / f"{nb}.html").exists():
            st = (meta.get("notebooks") or {}).get(nb, {}).get("status", "?")
            reports.append((nb, f"{run_dir.name}/{nb}.html", st))
    return {
        "name": run_dir.name,
        "machine": meta.get("machine", "?"),
        "cpu": meta.get("cpu") or "?",
        "date": (meta.get("finished") or meta.get("started") or meta.get("created")
                 or "")[:16].replace("T", " "),
        "model": f"{params.get('model', '?')} {params.get('precision', '')}".strip(),
        "best": meta.get("best") or {},
        "reports": reports,
        "summary": f"{run_dir.name}/summary.md" if (run_dir / "summary.md").exists() else None,
        "csv": f"{run_dir.name}/summary.csv" if (run_dir / "summary.csv").exists() else None,
        "wall_s": meta.get("wall_s"),
    }


def write_index(root: str | Path | None = None) -> Path:
    """reports/index.html: every run folder under ``root`` (newest first), self-contained."""
    root = Path(root) if root else reports_root()
    root.mkdir(parents=True, exist_ok=True)
    rows = [r for d in sorted(root.iterdir()) if d.is_dir() and (r := _run_row(d))]
    rows.sort(key=lambda r: r["date"], reverse=True)
    e = html.escape
    trs = []
    for r in rows:
        b = r["best"]
        ttft = (f"{b['ttft_s']['value'] * 1000:.1f} ms<br><span class=muted>"
                f"{e(str(b['ttft_s']['label']))}</span>" if "ttft_s" in b else "–")
        dec = (f"{b['decode_tok_s']['value']:.2f} tok/s<br><span class=muted>"
               f"{e(str(b['decode_tok_s']['label']))}</span>" if "decode_tok_s" in b else "–")
        links = " · ".join(
            f'<a href="{e(href)}"{" class=fail" if st == "failed" else ""}>'
            f"{e(nb)}{' (failed)' if st == 'failed' else ''}</a>"
            for nb, href, st in r["reports"]) or "–"
        extra = " · ".join(f'<a href="{e(h)}">{n}</a>' for n, h in
                           (("summary.md", r["summary"]), ("summary.csv", r["csv"])) if h)
        trs.append(
            f"<tr><td>{e(r['machine'])}<br><span class=muted>{e(r['name'])}</span></td>"
            f"<td>{e(str(r['cpu']))}</td><td>{e(r['date'])}</td><td>{e(r['model'])}</td>"
            f"<td class=num>{ttft}</td><td class=num>{dec}</td>"
            f"<td>{links}<br><span class=muted>{extra}</span></td></tr>"
        )
    body = "\n".join(trs) or '<tr><td colspan=7 class=muted>no runs yet</td></tr>'
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coresweep reports</title><style>{_INDEX_CSS}</style></head>
<body>
<h1>coresweep reports</h1>
<p class=muted>How should I spend my CPU cores on LLM inference? One row per run
(<code>coresweep run PARAMS.yaml</code>); best = lowest median time to first token and highest
median decode throughput over every configuration measured, with the configuration that gave
it.</p>
<table>
<thead><tr><th>machine</th><th>CPU</th><th>date (UTC)</th><th>model</th><th>best TTFT</th>
<th>best decode</th><th>reports</th></tr></thead>
<tbody>
{body}
</tbody></table>
<p class=muted>Generated {e(_now())} by coresweep.</p>
</body></html>
"""
    out = root / "index.html"
    out.write_text(page, encoding="utf-8")
    return out


def rerender(run_dirs: Sequence[str | Path] = ()) -> Path:
    """Re-render the HTML, summary and index of run folders (all under reports/ when none)."""
    dirs = [Path(d) for d in run_dirs] or [d for d in sorted(reports_root().glob("*"))
                                           if (d / "batch.json").exists()]
    roots = set()
    for d in dirs:
        if not d.is_dir():
            raise CoresweepError(f"{d} is not a run folder")
        meta = json.loads((d / "batch.json").read_text()) if (d / "batch.json").exists() else {}
        for nb in P.NOTEBOOKS:
            if (d / f"{nb}.ipynb").exists():
                render_html(d / f"{nb}.ipynb", banner=_banner(meta, nb))
        finish_run(d)
        roots.add(d.resolve().parent)
    out = None
    for r in roots or {reports_root()}:
        out = write_index(r)
    return out

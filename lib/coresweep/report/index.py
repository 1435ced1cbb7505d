"""reports/index.html: every run folder under reports/, newest first, self-contained.

An index is written only into a reports folder: the project's reports/, or a folder that already
holds an index coresweep wrote (`coresweep import --reports DIR` makes one). A run or comparison
written with --out anywhere else gets none: coresweep never drops an index.html into whatever
folder happens to hold it."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from coresweep import studies
from coresweep.errors import CoresweepError
from coresweep.provenance import now_iso
from coresweep.report.paths import comparison_file, read_json, reports_root, run_file

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
#compare-panel{margin:.8em 0;padding:.6em .8em;background:#f3f5f8;border-radius:4px}
code{background:#eef;padding:1px 4px;border-radius:3px}
"""

# Picking runs works offline: the page knows the comparisons made (compare.json of each folder
# under the reports folder) and links the one of exactly the runs ticked, else shows the command
# that makes it. Text goes in through textContent only: run names come from other machines.
_PICK_JS = """
const made = JSON.parse(document.getElementById('comparisons').textContent);
const root = document.body.dataset.root;
const panel = document.getElementById('compare-panel');
function update() {
  const picked = [...document.querySelectorAll('input.pick:checked')].map(b => b.value).sort();
  panel.textContent = '';
  if (picked.length < 2) { panel.textContent = 'Tick two or more runs to compare them.'; return; }
  const key = picked.join('\\n');
  const hit = made.find(c => c.runs.slice().sort().join('\\n') === key);
  if (hit) {
    const a = document.createElement('a');
    a.href = hit.href;
    a.textContent = 'Open the comparison of these ' + picked.length + ' runs';
    panel.append(a);
    return;
  }
  panel.append('No comparison of these runs yet. Make it, in the folder that holds ' + root +
               '/, with: ');
  const code = document.createElement('code');
  code.textContent = 'coresweep compare ' + picked.map(n => root + '/' + n).join(' ');
  panel.append(code);
}
document.querySelectorAll('input.pick').forEach(b => b.addEventListener('change', update));
update();
"""


def _run_row(run_dir: Path) -> dict[str, Any] | None:
    try:
        meta = read_json(run_file(run_dir, "batch"))
    except CoresweepError:
        return None
    if not meta:
        return None
    params = meta.get("params") or {}
    reports = []
    first = sorted(studies.all_studies(), key=lambda s: not s.index_first)  # the answer first
    for s in first:
        if run_file(run_dir, "html", s.id).exists():
            st = (meta.get("notebooks") or {}).get(s.id, {}).get("status", "?")
            reports.append((s.id, f"{run_dir.name}/{s.id}.html", st))
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


def _roofline_text(pick: dict[str, Any]) -> str:
    if pick.get("gb_s") is None:
        return ""
    pct = pick.get("pct_of_ceiling")
    share = f", {pct:.0f} % of measured" if pct == pct and pct is not None else ""
    return f"<br><span class=muted>{pick['gb_s']:.1f} GB/s{share}</span>"


def _decision_cell(best: dict[str, Any], metric: str) -> str:
    """The run's decision for ``metric`` (batch.json "best"): the pick's value and name and how
    sure the run was. Folders rendered before the decision existed hold the point itself."""
    e = html.escape
    rec = best.get(metric)
    if not rec:
        return "–"
    pick, status = (rec.get("pick"), rec.get("status")) if "status" in rec else (rec, None)
    if not pick:
        return "<span class=muted>no eligible point</span>"
    value = (f"{pick['value'] * 1000:.1f} ms" if metric == "ttft_s"
             else f"{pick['value']:.2f} tok/s")
    roof = _roofline_text(pick) if metric == "decode_tok_s" else ""
    sure = f" · {e(status)}" if status else ""
    return f"{value}{roof}<br><span class=muted>{e(str(pick.get('label')))}{sure}</span>"


def _row_html(r: dict[str, Any]) -> str:
    e = html.escape
    b = r["best"]
    ttft, dec = _decision_cell(b, "ttft_s"), _decision_cell(b, "decode_tok_s")
    links = " · ".join(
        f'<a href="{e(href)}"{" class=fail" if st == "failed" else ""}>'
        f"{e(nb)}{' (failed)' if st == 'failed' else ''}</a>"
        for nb, href, st in r["reports"]) or "–"
    extra = " · ".join(f'<a href="{e(h)}">{n}</a>' for n, h in
                       (("summary.md", r["summary"]), ("summary.csv", r["csv"])) if h)
    return (
        f'<tr><td><input type=checkbox class=pick value="{e(r["name"])}" '
        f'aria-label="pick {e(r["name"])}"></td>'
        f"<td>{e(r['machine'])}<br><span class=muted>{e(r['name'])}</span></td>"
        f"<td>{e(str(r['cpu']))}</td><td>{e(r['date'])}</td><td>{e(r['model'])}</td>"
        f"<td class=num>{ttft}</td><td class=num>{dec}</td>"
        f"<td>{links}<br><span class=muted>{extra}</span></td></tr>"
    )


def _comparisons(root: Path) -> list[dict[str, Any]]:
    """The comparisons made in folders under ``root`` (their compare.json), newest first."""
    out = []
    for d in sorted(root.iterdir()):
        try:
            meta = read_json(comparison_file(d, "json")) if d.is_dir() else {}
        except CoresweepError:
            continue
        if meta and comparison_file(d, "html").exists():
            out.append({"href": f"{d.name}/{comparison_file(d, 'html').name}",
                        "created": str(meta.get("created", ""))[:16].replace("T", " "),
                        "runs": [str(r.get("name")) for r in meta.get("runs") or []],
                        "left_out": [str(r.get("name")) for r in meta.get("left_out") or []],
                        "work": str(meta.get("work", ""))})
    return sorted(out, key=lambda c: c["created"], reverse=True)


def _comparisons_html(made: list[dict[str, Any]]) -> str:
    e = html.escape
    if not made:
        return ("<p class=muted>No comparison yet: tick runs above, or run "
                "<code>coresweep compare RUN_DIR RUN_DIR...</code>.</p>")
    rows = "\n".join(
        f'<tr><td>{e(c["created"])}</td><td><a href="{e(c["href"])}">{e(", ".join(c["runs"]))}'
        f'</a></td><td>{e(c["work"])}</td><td>{e(", ".join(c["left_out"])) or "–"}</td></tr>'
        for c in made)
    return ("<table><thead><tr><th>made (UTC)</th><th>runs compared</th><th>same work</th>"
            f"<th>left out (other work)</th></tr></thead><tbody>{rows}</tbody></table>")


_TITLE = "<title>coresweep reports</title>"  # in every index coresweep wrote, old ones too


def is_reports_folder(folder: str | Path) -> bool:
    """reports/ of the project, or a folder whose index.html coresweep wrote."""
    folder = Path(folder).resolve()
    if folder == reports_root().resolve():
        return True
    index = folder / "index.html"
    try:
        with index.open(encoding="utf-8", errors="replace") as f:
            return _TITLE in f.read(4096)
    except OSError:
        return False


def index_of(item_dir: str | Path) -> Path | None:
    """The index that lists a run or comparison folder: its parent's index.html when the parent
    is a reports folder, else None (no index lists it)."""
    parent = Path(item_dir).resolve().parent
    return parent / "index.html" if is_reports_folder(parent) else None


def update_index(item_dir: str | Path) -> Path | None:
    """Re-render the index that lists a run or comparison folder; None when there is none."""
    index = index_of(item_dir)
    return write_index(index.parent) if index else None


def no_index_note(item_dir: str | Path) -> str:
    """What to print for a folder no index lists."""
    parent = Path(item_dir).resolve().parent
    return (f"no index.html written: {parent} is not a reports folder (reports/ or one with "
            "coresweep's index.html); open the folder's HTML files directly")


def write_index(root: str | Path | None = None) -> Path:
    """reports/index.html: every run folder under ``root`` (newest first), self-contained."""
    root = Path(root) if root else reports_root()
    root.mkdir(parents=True, exist_ok=True)
    rows = [r for d in sorted(root.iterdir()) if d.is_dir() and (r := _run_row(d))]
    rows.sort(key=lambda r: r["date"], reverse=True)
    e = html.escape
    trs = [_row_html(r) for r in rows]
    body = "\n".join(trs) or '<tr><td colspan=8 class=muted>no runs yet</td></tr>'
    made = _comparisons(root)
    # JSON inside <script>: "<" escaped so no run name can close the element
    made_json = json.dumps([{"runs": c["runs"], "href": c["href"]} for c in made]
                           ).replace("<", "\\u003c")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{_TITLE}<style>{_INDEX_CSS}</style></head>
<body data-root="{e(root.name)}">
<h1>coresweep reports</h1>
<p class=muted>How should I spend my CPU cores on LLM inference? One row per run
(<code>coresweep run PARAMS.yaml</code>); TTFT and decode: the configuration the run recommends
(the same decision as its recommendation report: among verified, not oversubscribed, not throttled
points, CI-aware) with its median, and how sure the run was (decided, tied, undecided).</p>
<table>
<thead><tr><th>compare</th><th>machine</th><th>CPU</th><th>date (UTC)</th><th>model</th><th>recommended for TTFT</th>
<th>recommended for decode</th><th>reports</th></tr></thead>
<tbody>
{body}
</tbody></table>
<p id=compare-panel class=muted>Tick two or more runs to compare them.</p>
<h2>Comparisons</h2>
{_comparisons_html(made)}
<script type="application/json" id="comparisons">{made_json}</script>
<script>{_PICK_JS}</script>
<p class=muted>Generated {e(now_iso())} by coresweep.</p>
</body></html>
"""
    out = root / "index.html"
    out.write_text(page, encoding="utf-8")
    return out

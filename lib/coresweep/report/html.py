"""One executed notebook → ONE self-contained HTML file: code hidden, figures embedded as data:
URIs, and none of the CDN scripts nbconvert's lab template loads (require.js, MathJax, mermaid) —
opening a report offline makes zero network requests; the renderer refuses a page that would."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.report.paths import TEMPLATES

_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)
_CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I)
_IMPORT = re.compile(r"""@import\s+(?:url\()?\s*["']?\s*(?:https?:)?//""", re.I)


def _title(stem: str) -> str:
    from coresweep import studies

    try:
        return studies.get(stem).title
    except CoresweepError:
        return stem


def banner(meta: Mapping[str, Any], *, listed: bool = True) -> str:
    """The line on top of every page of a run: machine, CPU, model, and a link to the index
    when one lists the run (``listed``: see report.index.index_of)."""
    return (f"coresweep report · {html.escape(str(meta.get('machine')))} · "
            f"{html.escape(str(meta.get('cpu')))} · model "
            f"{html.escape(str((meta.get('params') or {}).get('model')))}"
            + (' · <a href="../index.html">all runs</a>' if listed else ""))


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
                banner: str | None = None, title: str | None = None) -> Path:
    """Render an executed notebook to ONE self-contained HTML file with the code hidden; the page
    title is the study's (from the file name) unless ``title`` is given."""
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
    nb.metadata["title"] = f"coresweep · {title or _title(ipynb.stem)}"
    body, _ = exporter.from_notebook_node(nb, resources={"coresweep_banner": banner})
    ext = external_references(body)
    if ext:  # never ship a report that would reach the network
        raise CoresweepError(f"{out}: the rendered HTML references the network: {ext[:3]}")
    out.write_text(body, encoding="utf-8")
    return out

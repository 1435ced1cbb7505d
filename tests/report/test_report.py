"""Report rendering: self-contained HTML (no network reference, figures as data: URIs, code
hidden), the per-run summary (markdown + CSV), the index, `coresweep report`, and resume."""

from __future__ import annotations

import base64
import io
import json

import nbformat
import pandas as pd
import pytest
from _report_run import REPO, quick_run
from coresweep import report
from coresweep.errors import CoresweepError, ParamsError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return quick_run(tmp_path_factory)


def _png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def test_render_html_is_self_contained(tmp_path):
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# Title $x^2$"),
        new_code_cell("secret_source_line = 1", outputs=[
            new_output("stream", name="stderr", text="progress 50%|#####"),
            new_output("display_data", data={"image/png": _png(), "text/plain": "<Figure>"}),
            new_output("stream", name="stdout", text="visible output"),
        ]),
    ]
    p = tmp_path / "t.ipynb"
    nbformat.write(nb, p)
    out = report.render_html(p, banner="banner text")
    html = out.read_text()
    assert report.external_references(html) == []
    assert "<script src" not in html and "cdn" not in html.lower()
    assert "data:image/png;base64," in html
    assert "secret_source_line" not in html  # code hidden
    assert "progress 50%" not in html  # stderr (progress bars) dropped
    assert "visible output" in html and "banner text" in html


def test_external_references_are_detected():
    bad = '<script src="https://cdn.example/x.js"></script><link href="//x/y.css">'
    assert len(report.external_references(bad)) == 2
    assert report.external_references('<img src="data:image/png;base64,AAA">') == []
    assert report.external_references("<style>@import url('https://f/x.css');</style>")


def test_summary_and_index(run):
    d = run["run_dir"]
    md = (d / "summary.md").read_text()
    assert "| config | threads |" in md and "Lowest TTFT (" in md and "Highest decode (" in md
    assert "Same work everywhere" in md or "generated different tokens" in md
    csv = pd.read_csv(d / "summary.csv")
    assert {"config", "threads", "ttft_ms", "decode_tok_s", "cpu_pct", "placement_ok"} <= set(
        csv.columns)
    assert (csv["ttft_ms"] > 0).all() and (csv["decode_tok_s"] > 0).all()
    batch = json.loads((d / "batch.json").read_text())
    for metric in ("ttft_s", "decode_tok_s"):  # the index's answer is 05's answer
        best = batch["best"][metric]
        assert best["status"] in ("decided", "tied", "undecided")
        assert f"**{best['pick']['label']}**" in (d / "recommendation.md").read_text()
    index = run["index"].read_text()
    assert report.external_references(index) == []
    assert d.name in index and "recommended for decode" in index
    assert batch["best"]["decode_tok_s"]["pick"]["label"] in index
    for nb in ("00_machine", "01_threads", "02_affinity", "03_smt"):
        assert f'href="{d.name}/{nb}.html"' in index


def test_cli_report_rerenders(run, capsys):
    from coresweep.cli import main

    d = run["run_dir"]
    (d / "01_threads.html").unlink()
    assert main(["report", str(d)]) == 0
    assert (d / "01_threads.html").exists()
    assert capsys.readouterr().out.strip().endswith("index.html")


def test_resume_reuses_finished_trials(run):
    d = run["run_dir"]
    before = len(pd.read_parquet(d / "data" / "trials"))
    report.run_batch(REPO / "params" / "quick.yaml", out=d, notebooks=["01"], progress=False,
                     log=lambda m: None)
    batch = json.loads((d / "batch.json").read_text())
    assert batch["notebooks"]["01_threads"]["units_run"] == 0
    assert len(pd.read_parquet(d / "data" / "trials")) == before


def test_unknown_notebook_is_refused(tmp_path):
    with pytest.raises(ParamsError, match="valid choices: 00_machine"):
        report.run_batch(REPO / "params" / "quick.yaml", out=tmp_path / "x",
                         notebooks=["05_gpu"], log=lambda m: None)
    assert not (tmp_path / "x").exists()


def test_rerender_refuses_a_non_folder(tmp_path):
    with pytest.raises(CoresweepError):
        report.rerender([tmp_path / "missing"])


def test_report_renders_a_run_folder_written_by_release_0_1(tmp_path):
    """`coresweep report OLD_RUN`: the executed notebooks, summary and index of a run folder
    written before the studies layout (no schema_version, `warmups` in its configs)."""
    import shutil

    from coresweep.cli import main

    old = tmp_path / "reports" / "v0-quick"
    shutil.copytree(REPO / "tests" / "fixtures" / "runs" / "v0-quick", old)
    report.write_index(old.parent)  # a reports folder: its index lists the run re-rendered
    assert main(["report", str(old)]) == 0
    for stem in ("00_machine", "03_smt"):
        html = (old / f"{stem}.html").read_text()
        assert report.external_references(html) == []
    summary = (old / "summary.md").read_text()
    assert "| 1 thread | 1 | cores-first |" in summary and "ort-default" in summary
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "v0-quick" in index and "00_machine.html" in index
    batch = json.loads((old / "batch.json").read_text())
    assert batch["best"]["decode_tok_s"]["pick"]["value"] > 0  # the decision, as 05


def test_the_index_goes_only_into_a_reports_folder(tmp_path, capsys):
    """A run re-rendered (or written with --out) outside reports/ leaves the folder that holds it
    alone and says so; in a folder holding coresweep's index it is listed there."""
    import shutil

    from coresweep.cli import main
    from coresweep.report.index import index_of, is_reports_folder

    elsewhere = tmp_path / "downloads"
    run = elsewhere / "v0-quick"
    shutil.copytree(REPO / "tests" / "fixtures" / "runs" / "v0-quick", run)
    assert not is_reports_folder(elsewhere) and index_of(run) is None
    assert main(["report", str(run)]) == 0
    assert "no index.html written" in capsys.readouterr().out
    assert sorted(p.name for p in elsewhere.iterdir()) == ["v0-quick"]
    report.write_index(elsewhere)  # now a reports folder: it holds coresweep's index
    assert is_reports_folder(elsewhere) and index_of(run) == elsewhere / "index.html"
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(elsewhere / "index.html")
    assert "v0-quick" in (elsewhere / "index.html").read_text()


def test_new_folder_never_reuses_one(tmp_path):
    from coresweep.report.paths import new_folder

    made = [new_folder(tmp_path, "compare-x") for _ in range(3)]
    assert [p.name for p in made] == ["compare-x", "compare-x-2", "compare-x-3"]
    assert all(p.is_dir() for p in made)


@pytest.mark.slow
def test_a_run_written_outside_reports_writes_no_index(tmp_path):
    """`coresweep run --out` into a folder that is not a reports folder: no index.html beside the
    run, and the command says so (00_machine only: no trial)."""
    import subprocess
    import sys

    out = tmp_path / "elsewhere" / "run"
    res = subprocess.run([sys.executable, "-m", "coresweep", "run", str(REPO / "params" /
                          "quick.yaml"), "--notebooks", "00", "--out", str(out), "--no-html",
                          "-q"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    where, note = res.stdout.splitlines()
    assert where == str(out) and note.startswith(f"no index.html written: {out.parent} is not")
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"]
    assert (out / "00_machine.ipynb").is_file()

"""`coresweep run ... -p runtime=ort,llamacpp`: 01, 02 and 05 on the tiny model with both
runtimes side by side — each runtime's curve, roofline and decision, and 05's comparison."""

from __future__ import annotations

import json

import pytest
from _llamacpp import needs_llamacpp
from _report_run import REPO


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    import os

    from coresweep.report import run_batch

    needs_llamacpp()
    os.environ.setdefault("CORESWEEP_CACHE", str(REPO / ".cache" / "test-models"))
    out = tmp_path_factory.mktemp("reports") / "runtimes"
    return run_batch(REPO / "params" / "quick.yaml",
                     ["runtime=ort,llamacpp", "threads=1,2", "prompt_tokens=32", "gen_tokens=12",
                      "strategies=physical,ort-default", "heatmaps=physical", "bandwidth=ort",
                      "budget=off"],
                     out=out, notebooks=["01_threads", "02_affinity", "05_recommend"],
                     progress=False, log=lambda m: None)


@pytest.mark.slow
def test_both_runtimes_side_by_side(both):
    from coresweep.analysis.runtimes import runtimes_of
    from coresweep.measurement.run import Run
    from coresweep.recommend.points import run_points

    run = Run.load(both)
    points = run_points(run)
    assert runtimes_of(points.threads) == ["ort", "llamacpp"]
    t = points.threads
    for rt in ("ort", "llamacpp"):
        rows = t[t["runtime"] == rt]
        assert sorted(rows["threads"].astype(int)) == [1, 2]
        assert rows["decode_gb_s"].notna().all()  # the roofline of each runtime
    # each runtime's bytes per token (GB/s per tok/s): its own model's
    per_tok = (t["decode_gb_s"] / t["decode_tok_s_median"]).groupby(t["runtime"]).first()
    assert per_tok["ort"] != pytest.approx(per_tok["llamacpp"])
    by_rt = points.runtime_decisions()
    assert set(by_rt) == {"ort", "llamacpp"}
    assert all(d["decode_tok_s"].pick is not None for d in by_rt.values())
    # placement read back: the mask set first, no busy thread off the plan or beyond the CPUs
    # (numpy's OpenBLAS pool, spinning beside llama.cpp's team, is kept to one thread)
    trials = run.trials[run.trials["runtime"] == "llamacpp"]
    assert trials["affinity_first"].all()
    assert trials["placement_ok"].all(), trials["placement_reasons"].tolist()
    controls = run.trials[run.trials["label"].str.startswith("ort-default")]
    assert set(controls["runtime"]) == {"ort"}  # onnxruntime's own mode, not llama.cpp's
    html = (both / "01_threads.html").read_text()
    assert "Runtimes side by side" in html and "llamacpp ÷ ort" in html
    rec = (both / "recommendation.md").read_text()
    assert "on llamacpp" in rec and "better than" in rec
    best = json.loads((both / "batch.json").read_text())
    assert best["resolved"]["runtime"] == ["ort", "llamacpp"]


@pytest.mark.slow
def test_compare_draws_each_runtime(both, tmp_path):
    """compare: a run with a runtime column gives one curve per runtime; the work compared is
    the first runtime's (its token checksums)."""
    import shutil

    from coresweep.compare import compare_runs
    from coresweep.compare.runs import load_run

    twin = tmp_path / "twin"
    shutil.copytree(both, twin)
    run = load_run(both)
    assert list(run.runtime_sweeps) == ["ort", "llamacpp"]
    assert list(run.sweep["config_key"]) == list(run.runtime_sweeps["ort"]["config_key"])
    assert set(run.trials["runtime"]) == {"ort"}
    html = compare_runs([both, twin], out=tmp_path / "cmp").read_text()
    assert "runtimes · llamacpp" in html and "twin · llamacpp" in html and "on ort" in html

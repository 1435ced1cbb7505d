"""The one decision on a real noisy run (tests/fixtures/runs/noisy-t12: every point flagged
noisy, 2 threads clearly faster than 1): 05's evidence, summary.md, recommendation.md, the index
and 06's baseline all name the same faster point, and 1 thread is never the answer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _fixture_runs import REPO, copy_run
from coresweep import studies
from coresweep.machine.topology import read_topology
from coresweep.report.index import write_index
from coresweep.report.summary import finish_run
from coresweep.studies.base import Resolved

VM = REPO / "tests" / "fixtures" / "vm-2vcpu"  # a captured 2-vCPU tree, like the one that ran it


@pytest.fixture
def noisy(tmp_path: Path) -> Path:
    return copy_run("noisy-t12", tmp_path / "reports")


def _recommendation(run_dir: Path):
    study = studies.get("recommend")
    return study.evidence(Resolved({"run_dir": str(run_dir), "latency_budget_ms": 1000},
                                   read_topology(VM)))


def test_every_point_is_noisy_and_two_threads_are_clearly_faster(noisy):
    from coresweep.measurement.run import Run
    from coresweep.recommend.points import run_points

    points = run_points(Run.load(noisy)).all()
    assert points["noisy"].all()
    one = points[points["threads"] == 1].iloc[0]
    d = run_points(Run.load(noisy)).decisions()["decode_tok_s"]
    assert d.threads == 2 and d.pick["decode_tok_s_ci_lo"] > one["decode_tok_s_ci_hi"]
    assert d.evidence.set_index("point").loc["1 thread", "decision"] == "clearly worse"
    assert d.threads_settled  # the contenders differ in placement, not in threads


def test_every_answer_names_the_same_faster_point(noisy):
    rec = _recommendation(noisy)
    dec, ttft = rec.picks["decode_tok_s"], rec.picks["ttft_s"]
    assert dec.threads == 2 and ttft.threads == 2
    label = dec.pick["label"]
    table = studies.get("recommend").picks_table(rec).set_index("goal")
    assert table.loc["highest decode", "recommended"] == label  # 05's table
    from coresweep.studies.recommend import write_recommendation

    text = write_recommendation(rec, noisy).read_text()  # recommendation.md
    assert f"**{label}**" in text and "taskset -c 0-1" in text
    best = finish_run(noisy)["best"]  # summary.md and batch.json, the index's source
    assert best["decode_tok_s"]["pick"]["label"] == label
    assert best["decode_tok_s"]["pick"]["threads"] == 2
    assert f"**{label}**" in (noisy / "summary.md").read_text()
    index = write_index(noisy.parent).read_text()
    assert label in index and "undecided" in index  # the status beside the pick
    claims = rec.claims.set_index("claim")
    assert claims.loc[1, "verdict"] == "holds"  # 2 threads = the VM's 2 physical cores


def test_the_knobs_baseline_runs_at_the_decided_thread_count(noisy):
    from coresweep.parameters import current_names
    from coresweep.studies.knobs import best_measured_threads

    # the values that folder resolved, under today's names (`engine` is now `runtime`)
    values = current_names(json.loads((noisy / "batch.json").read_text())["resolved"])
    assert best_measured_threads(str(noisy), values) == 2
    assert best_measured_threads(str(noisy), {**values, "gen_tokens": 16}) is None  # other work


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="05 validates the run's 2-thread points against this machine")
def test_the_recommend_notebook_renders_the_fixture(noisy):
    import nbformat
    import papermill as pm

    out = noisy / "05_recommend.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "05_recommend.ipynb"), str(out),
                        parameters={"run_dir": str(noisy), "latency_budget_ms": 1000},
                        progress_bar=False, cwd=str(REPO / "notebooks"))
    text = json.dumps([c.outputs for c in nbformat.read(out, as_version=4).cells
                       if c.cell_type == "code"])
    label = _recommendation(noisy).picks["decode_tok_s"].pick["label"]
    assert label in text and "undecided" in text.lower() and "clearly worse" in text

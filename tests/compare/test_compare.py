"""`coresweep compare`: runs of the same work side by side (trimmed real runs of this machine; the
"second machine" is a synthetic fingerprint, see tests/fixtures/runs/README.md), incomparable work
left out or refused with a message, the normalised views, the fingerprint diff, the index."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from _fixture_runs import copy_run, synthetic_fingerprint
from coresweep.cli import main
from coresweep.compare import IncomparableError, compare_runs
from coresweep.compare.machines import fingerprint_diff
from coresweep.compare.runs import load_run, physical_cores
from coresweep.compare.work import split_by_work
from coresweep.errors import CoresweepError
from coresweep.report import external_references, write_index


@pytest.fixture(autouse=True)
def model_cache(monkeypatch, tiny_int4, test_model_cache):
    """bytes per token of the runs' model (tiny int4), for the roofline view."""
    monkeypatch.setenv("CORESWEEP_CACHE", str(test_model_cache))


@pytest.fixture
def reports(tmp_path):
    root = tmp_path / "reports"
    root.mkdir()
    copy_run("quick-t12", root)
    copy_run("quick-t124", root, second_machine=True)
    return root


def test_compare_two_runs_writes_one_self_contained_page(reports):
    page = compare_runs([reports / "quick-t12", reports / "quick-t124"],
                        out=reports / "compare-a")
    text = page.read_text()
    assert page.name == "compare.html" and external_references(text) == []
    assert text.count("data:image/png;base64,") >= 3  # sweeps, normalised, speedup
    for heading in ("Machines: what differs", "Thread sweeps overlaid", "Normalised",
                    "side by side", "recommendation"):
        assert heading in text, heading
    assert "AMD EPYC 7313P" in text  # the second (synthetic) machine's CPU in the diff
    assert "Not compared" not in text
    meta = json.loads((page.parent / "compare.json").read_text())
    assert [r["name"] for r in meta["runs"]] == ["quick-t12", "quick-t124"]
    assert meta["left_out"] == [] and "gen 16" in meta["work"]


def test_the_index_lists_the_comparison_and_offers_picking(reports):
    compare_runs([reports / "quick-t12", reports / "quick-t124"], out=reports / "compare-a")
    index = write_index(reports).read_text()
    assert 'href="compare-a/compare.html"' in index
    assert index.count("class=pick") == 2  # one checkbox per run
    made = index.split('id="comparisons">')[1].split("</script>")[0]
    assert json.loads(made) == [{"runs": ["quick-t12", "quick-t124"],
                                 "href": "compare-a/compare.html"}]
    assert external_references(index) == []


def test_normalised_views_are_consistent_with_the_measurements(reports):
    run = load_run(reports / "quick-t124")
    s = run.sweep.set_index("threads")
    assert list(s.index) == [1, 2, 4]
    assert s.loc[4, "cores_used"] == 2  # oversubscribed: 4 threads on CPUs 0-1
    assert np.allclose(s["decode_tok_s_per_core_median"],
                       s["decode_tok_s_median"] / s["cores_used"])
    assert s.loc[1, "decode_speedup_median"] == pytest.approx(1.0)
    assert s.loc[1, "ttft_speedup_median"] == pytest.approx(1.0)
    assert (s["decode_speedup_ci_lo"] <= s["decode_speedup_ci_hi"]).all()
    pct = s["roofline_pct_median"].dropna()  # bandwidth measured at the unsubscribed points
    assert len(pct) == 2 and ((pct > 0) & (pct < 1000)).all()


def test_physical_cores_count_smt_siblings_once():
    topo = synthetic_fingerprint()["topology"]
    sibling = [c for c in topo["cpus"]["0"]["siblings"] if c != 0][0]
    assert physical_cores(f"0,{sibling}", topo) == 1
    assert physical_cores("0-1", topo) == 2
    assert np.isnan(physical_cores("0-999", topo))  # a CPU the fingerprint does not know


def test_incomparable_work_is_refused_with_what_differs(tmp_path, capsys):
    a, b = copy_run("quick-t12", tmp_path), copy_run("quick-gen24", tmp_path)
    with pytest.raises(IncomparableError, match="no two runs did the same work") as e:
        compare_runs([a, b], out=tmp_path / "cmp")
    assert "gen 16" in str(e.value) and "gen 24" in str(e.value)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coresweep compare: error: nothing to compare") and "Traceback" not in err


def test_other_work_is_left_out_and_named(reports):
    copy_run("quick-gen24", reports)
    page = compare_runs([reports / n for n in ("quick-t12", "quick-gen24", "quick-t124")],
                        out=reports / "compare-b")
    text = page.read_text()
    assert "Not compared: different work" in text and "generated tokens 24 vs 16" in text
    meta = json.loads((page.parent / "compare.json").read_text())
    assert [r["name"] for r in meta["left_out"]] == ["quick-gen24"]


def test_a_release_0_1_run_is_compared_without_its_roofline(tmp_path):
    a, old = copy_run("quick-t12", tmp_path), copy_run("v0-quick", tmp_path)
    assert load_run(old).schema_version == 1
    text = compare_runs([a, old], out=tmp_path / "cmp").read_text()
    assert "v0-quick has no bandwidth measurement" in text


def _run(name: str, checksum: str, gen: int = 16) -> SimpleNamespace:
    trials = pd.DataFrame({"model": ["tiny"], "prompt_tokens": [32], "gen_tokens": [gen],
                           "checksum": [checksum], "ok": [True]})
    return SimpleNamespace(name=name, trials=trials, values={"precision": "int4"})


def test_same_lengths_but_other_tokens_is_other_work():
    with pytest.raises(IncomparableError, match="token checksum"):
        split_by_work([_run("a", "aaaa"), _run("b", "bbbb")])
    kept, left, work = split_by_work([_run("a", "aaaa"), _run("b", "bbbb"), _run("c", "bbbb")])
    assert [r.name for r in kept] == ["b", "c"] and work.checksums == ("bbbb",)
    assert left[0][1] == ["token checksum aaaa vs bbbb"]


def test_fingerprint_diff_names_what_differs(reports):
    a, b = load_run(reports / "quick-t12"), load_run(reports / "quick-t124")
    diff, same = fingerprint_diff([a.name, b.name], [a.fingerprint, b.fingerprint])
    facts = set(diff[""])
    assert {"CPU", "physical cores", "logical CPUs", "SMT active"} <= facts
    assert any(s.startswith("onnxruntime ") for s in same)  # same software on both


@pytest.mark.parametrize("dirs, message", [
    (["quick-t12"], "two or more run folders"),
    (["quick-t12", "quick-t12"], "more than once"),
    (["quick-t12", "missing"], "not a run folder"),
])
def test_bad_run_folders_are_refused(reports, dirs, message):
    with pytest.raises(CoresweepError, match=message):
        compare_runs([reports / d for d in dirs], out=reports / "cmp")


def test_a_run_with_several_prompt_lengths_is_compared_at_its_first(tmp_path):
    ctx, old = copy_run("quick-ctx", tmp_path), copy_run("quick-t12", tmp_path)
    run = load_run(ctx)
    assert set(run.sweep["prompt_tokens"]) == {32} and list(run.sweep["threads"]) == [1, 2]
    text = compare_runs([ctx, old], out=tmp_path / "cmp").read_text()
    assert "32, 48" in text and "Not compared" not in text
    diff, _ = fingerprint_diff(["ctx", "old"], [run.fingerprint, load_run(old).fingerprint])
    assert "hypervisor" in set(diff[""])  # recorded by the newer run only: unknown in the older


def test_two_comparisons_in_the_same_second_get_two_folders(reports, monkeypatch, capsys):
    from coresweep.compare import page

    monkeypatch.setattr(page, "reports_root", lambda: reports)
    monkeypatch.setattr(page, "utc_stamp", lambda: "20261201-120000")  # the same second, twice
    write_index(reports)  # a reports folder, as reports/ is
    runs = [str(reports / "quick-t12"), str(reports / "quick-t124")]
    assert main(["compare", *runs]) == 0
    assert main(["compare", *runs]) == 0
    out = capsys.readouterr().out.split()
    first, second = reports / "compare-20261201-120000", reports / "compare-20261201-120000-2"
    assert out == [str(first / "compare.html"), str(reports / "index.html"),
                   str(second / "compare.html"), str(reports / "index.html")]
    index = (reports / "index.html").read_text()
    assert f'href="{first.name}/compare.html"' in index
    assert f'href="{second.name}/compare.html"' in index


def test_a_comparison_outside_a_reports_folder_writes_no_index(reports, tmp_path, capsys):
    elsewhere = tmp_path / "my-notes"
    elsewhere.mkdir()
    (elsewhere / "index.html").write_text("<title>my notes</title>")  # not coresweep's
    runs = [str(reports / "quick-t12"), str(reports / "quick-t124")]
    assert main(["compare", *runs, "--out", str(elsewhere / "cmp")]) == 0
    assert (elsewhere / "cmp" / "compare.html").is_file()
    assert (elsewhere / "index.html").read_text() == "<title>my notes</title>"
    assert "no index.html written" in capsys.readouterr().out
    assert 'href="../index.html"' not in (elsewhere / "cmp" / "compare.html").read_text()

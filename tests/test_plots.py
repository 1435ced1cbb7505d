"""Figure functions: each returns a Figure with titled, unit-labelled axes and the caption naming
the machine and model; empty inputs give an explanatory figure, not an exception.

Inputs are small hand-made tables shaped like the store's (column names from
docs/architecture.md), summarised by coresweep.analysis.summarize — test inputs, not results.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from coresweep import plots, tables  # noqa: E402
from coresweep.analysis import summarize, verdicts  # noqa: E402
from coresweep.machine.topology import read_topology  # noqa: E402

CAP = plots.caption("test-machine", "Test CPU", "tiny int4")


def _trials():
    rng = np.random.default_rng(0)
    rows = []
    specs = [("k1", "1 thread", 1, "physical"), ("k2", "2 threads", 2, "physical"),
             ("k4", "4 threads", 4, "physical"), ("kd", "ort-default", -1, "none"),
             ("ko", "omp-only 2", -1, "none")]
    for key, label, t, strat in specs:
        for proc in range(2):
            for rep in range(3):
                speed = min(abs(t), 2) if t > 0 else 2
                rows.append({
                    "config_key": key, "label": label, "model": "tiny", "runtime": "ort",
                    "threads": t, "ort_default": t < 0, "placement": strat, "strategy": strat,
                    "cpus": "0-1", "n_cpus": 2, "smt": "asis", "prompt_tokens": 32,
                    "gen_tokens": 16, "pin_threads": False, "env": "{}", "session": "{}",
                    "process": proc, "rep": rep, "ok": True, "load_s": 0.1,
                    "ttft_s": 0.01 / speed * (1 + 0.05 * rng.random()),
                    "prefill_tok_s": 3200 * speed * (1 + 0.05 * rng.random()),
                    "decode_tok_s": 100 * speed * (1 + 0.05 * rng.random()),
                    "e2e_s": 0.2 / speed, "peak_rss_bytes": 1e8, "cpu_util_pct": 100 * speed,
                    "placement_ok": t != 4, "busy_threads": abs(t), "oversubscribed": t == 4,
                    "placement_reasons": "", "checksum": "abc",
                })
    return pd.DataFrame(rows)


def _tokens(trials):
    rows = []
    for _, r in trials.iterrows():
        rows.append({"config_key": r["config_key"], "process": r["process"], "rep": r["rep"],
                     "token_index": 0, "latency_s": r["ttft_s"], "phase": "prefill"})
        for i in range(1, 16):
            rows.append({"config_key": r["config_key"], "process": r["process"], "rep": r["rep"],
                         "token_index": i, "latency_s": 1 / r["decode_tok_s"], "phase": "decode"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data():
    trials = _trials()
    tokens = _tokens(trials)
    roles = pd.DataFrame({"config_key": ["kd", "ko"], "role_control": ["ort-default", "omp-only"],
                          "role_omp_num_threads": [None, 2]})
    summary = summarize(trials, tokens).merge(roles, on="config_key", how="left")
    samples = pd.DataFrame([{"config_key": "k2", "process": 0, "t_s": t / 10, "cpu": c,
                             "util_pct": 50.0 + 10 * c, "phase": "timed" if t > 3 else "warmup"}
                            for t in range(10) for c in range(2)])
    return {"trials": trials, "tokens": tokens, "summary": summary, "samples": samples}


def _texts(fig) -> str:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return " | ".join(out)


def _check(fig, *units):
    txt = _texts(fig)
    assert "test-machine" in txt and "tiny int4" in txt, txt  # the caption
    assert fig._suptitle is not None and fig._suptitle.get_text()
    for u in units:
        assert u in txt, (u, txt)
    plt.close(fig)


def test_threads_curves(data):
    _check(plots.threads_curves(data["summary"], cpus=2, cap=CAP), "(ms)", "tokens/s",
           "intra-op threads")


def test_speedup_efficiency(data):
    fig = plots.speedup_efficiency(data["summary"], "decode_tok_s", cap=CAP)
    _check(fig, "speedup", "efficiency (%)")
    fig = plots.speedup_efficiency(data["summary"], "ttft_s", cap=CAP)
    _check(fig, "speedup")


def test_util_vs_threads(data):
    _check(plots.util_vs_threads(data["summary"], cpus=2, cap=CAP), "%")


def test_token_latency_ecdf(data):
    labels = dict(zip(data["summary"]["config_key"], data["summary"]["label"], strict=True))
    _check(plots.token_latency_ecdf(data["tokens"], labels, cap=CAP), "(ms)")


def test_strategy_comparison(data):
    _check(plots.strategy_comparison(data["summary"], cap=CAP), "(ms)", "tokens/s")


def test_utilisation_heatmap(data):
    fig = plots.utilisation_heatmap(data["samples"], "k2", title="physical", cpus=[0, 1], cap=CAP)
    assert any("utilisation (%)" in ax.get_ylabel() for ax in fig.axes)
    _check(fig, "time since worker start (s)")


def test_smt_paired(data):
    s = data["summary"][data["summary"]["threads"] > 0].copy()
    s["smt"] = ["off", "on", "on"]
    _check(plots.smt_paired(s, cap=CAP), "tokens/s")


def test_topology_picture():
    fig = plots.topology_picture(read_topology(), cap=CAP)
    _check(fig)


def test_empty_inputs_explain_instead_of_failing():
    empty = pd.DataFrame(columns=["threads", "config_key"])
    for fig in (plots.threads_curves(empty, cap=CAP), plots.smt_paired(None, cap=CAP),
                plots.strategy_comparison(empty, cap=CAP),
                plots.utilisation_heatmap(pd.DataFrame(), "x", cap=CAP),
                plots.token_latency_ecdf(pd.DataFrame(), {}, cap=CAP)):
        _check(fig)


def test_tables_and_sentences(data):
    s = data["summary"]
    t = tables.study_table(s)
    assert list(t.columns[:4]) == ["threads", "TTFT ms", "TTFT 95% CI", "decode tok/s"]
    assert list(t["threads"]) == [1, 2, 4]
    from coresweep.analysis.decision import GOALS, decide

    decisions = {m: decide(s, m) for m in GOALS}
    text = verdicts.decisions_sentence(decisions)
    assert "Lowest TTFT" in text and "Highest decode" in text
    assert verdicts.decisions_sentence({}).startswith("No eligible point")
    pt = tables.placement_table(s)
    assert "ORT default" in set(pt["threads"])
    assert "Control — does `OMP_NUM_THREADS` act?" in verdicts.control_verdict(s)


def test_caption_for_topology():
    cap = plots.caption_for(None, {"model": "tiny", "precision": "int4", "prompt_tokens": 8,
                                   "gen_tokens": 4}, read_topology())
    assert "machine:" in cap and "model: tiny int4" in cap


def _control_summary(busy_default, busy_omp, omp_ttft=1.0):
    def row(label, busy, ttft, role):
        return {"label": label, "busy_threads": busy, **role,
                "decode_tok_s_median": 17.0, "decode_tok_s_ci_lo": 16.0, "decode_tok_s_ci_hi": 18.0,
                "ttft_s_median": ttft, "ttft_s_ci_lo": ttft * 0.98, "ttft_s_ci_hi": ttft * 1.02}
    # roles are what the verdict reads: the label below says nothing it parses
    return pd.DataFrame([row("ort-default", busy_default, 1.0, {"role_control": "ort-default"}),
                         row("the OMP control", busy_omp, omp_ttft,
                             {"role_control": "omp-only", "role_omp_num_threads": 1})])


def test_control_verdict_reads_the_busy_threads():
    # same threads as ORT's default although 1 was asked: the knob does not act, even when the
    # speed intervals happen not to overlap
    v = verdicts.control_verdict(_control_summary(2, 2, omp_ttft=1.1))
    assert "the knob does not act" in v and "CIs do not overlap" in v
    assert "not the knob's doing" in v
    assert "the knob acts" in verdicts.control_verdict(_control_summary(2, 1))
    assert "inconclusive" in verdicts.control_verdict(_control_summary(2, 3))


def test_show_displays_a_table_without_index_or_hashes(capsys):
    df = pd.DataFrame({"config_key": ["3f2a9c1e7b44", "5b1f3d0e9a7c"], "label": ["1 thread", "2"],
                       "plan_key": ["aa11", "bb22"], "decode tok/s": [12.25, 6.42]},
                      index=[7, 9])
    shown = tables.for_readers(df)
    assert list(shown.columns) == ["label", "decode tok/s"] and list(shown.index) == [0, 1]
    assert list(tables.for_readers(df, keep=["plan_key"]).columns) == [
        "label", "plan_key", "decode tok/s"]
    html = tables.Table(shown)._repr_html_()
    assert "<th></th>" not in html and "<th>7</th>" not in html  # no index column
    assert "12.25" in html and "3f2a9c1e7b44" not in html
    tables.show(df)  # outside a notebook IPython prints the text form
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == ["label", "decode", "tok/s"]
    assert "3f2a9c1e7b44" not in text and not text.splitlines()[1].startswith("7")
    tables.show(None)
    assert capsys.readouterr().out == ""


def test_config_and_fingerprint_tables_hold_no_hashes():
    from coresweep import studies
    from coresweep.measurement.config import TrialConfig
    from coresweep.studies.machine import fingerprint_table

    topo = read_topology()
    configs = [TrialConfig(threads=1, placement="physical")]
    described = studies.describe_configs(configs, topo)
    assert configs[0].key() not in described.to_string()
    assert list(fingerprint_table({"cpu": {"model": "x"}}).columns) == ["field", "value"]

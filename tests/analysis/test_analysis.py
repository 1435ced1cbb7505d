"""Statistics: median/percentiles, hierarchical bootstrap CI, noise flags, summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd
from coresweep.analysis import (
    bootstrap_median_ci,
    describe,
    processes_disagree,
    summarize,
    token_latency_stats,
)


def test_describe_basic():
    d = describe([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    assert d["median"] == 3.0 and d["n"] == 5
    assert d["p10"] < d["median"] < d["p90"]
    assert d["ci_lo"] <= d["median"] <= d["ci_hi"]
    assert 0 < d["cv"] < 1
    assert np.isnan(describe([])["median"])


def test_bootstrap_ci_is_seeded_and_contains_median():
    rng = np.random.default_rng(1)
    groups = [rng.normal(20 + i, 0.5, 5) for i in range(3)]
    a = bootstrap_median_ci(groups, seed=3)
    assert a == bootstrap_median_ci(groups, seed=3)
    med = np.median(np.concatenate(groups))
    assert a[0] <= med <= a[1]
    # between-process spread widens the interval compared with one pooled sample
    pooled = bootstrap_median_ci([np.concatenate(groups)], seed=3)
    assert (a[1] - a[0]) >= (pooled[1] - pooled[0])
    # unequal group sizes work
    lo, hi = bootstrap_median_ci([[1.0, 2.0], [3.0], [2.0, 2.5, 3.0]])
    assert lo <= hi


def test_processes_disagree():
    assert processes_disagree([[20, 20.1, 20.2], [28, 28.1, 28.2]])
    assert not processes_disagree([[20, 24, 28], [21, 25, 27]])
    assert not processes_disagree([[20, 21]])


def _trials(noisy: bool = False) -> pd.DataFrame:
    rows = []
    for key, base in (("a", 10.0), ("b", 20.0)):
        for p in range(3):
            for r in range(4):
                v = base * (1 + (0.3 * p if (noisy and key == "b") else 0.01 * r))
                rows.append(
                    {"config_key": key, "label": f"cfg {key}", "threads": 1 if key == "a" else 2,
                     "placement": "physical", "process": p, "rep": r, "ok": True,
                     "decode_tok_s": v, "ttft_s": 1 / v, "placement_ok": True,
                     "oversubscribed": False, "busy_threads": 1, "placement_reasons": "",
                     "checksum": "x"}
                )
    return pd.DataFrame(rows)


def test_summarize_columns_and_flags():
    tokens = pd.DataFrame(
        {"config_key": "a", "process": 0, "rep": 0, "token_index": range(101),
         "latency_s": [0.5] + [0.01 * (i + 1) for i in range(100)],
         "phase": ["prefill"] + ["decode"] * 100}
    )
    s = summarize(_trials(noisy=True), tokens)
    assert list(s["config_key"]) == ["a", "b"]
    for c in ("decode_tok_s_median", "decode_tok_s_p10", "decode_tok_s_p90", "decode_tok_s_ci_lo",
              "decode_tok_s_ci_hi", "decode_tok_s_cv", "decode_tok_s_noisy", "ttft_s_median",
              "n_processes", "n_reps", "noisy", "placement_ok", "token_latency_p99_s"):
        assert c in s, c
    a, b = s.iloc[0], s.iloc[1]
    assert a["n_processes"] == 3 and a["n_reps"] == 12
    assert not a["noisy"] and b["noisy"] and b["decode_tok_s_disagree"]
    assert abs(a["token_latency_p50_s"] - 0.505) < 0.01
    assert np.isnan(b["token_latency_p50_s"])
    from coresweep.tables import run_table

    t = run_table(s)
    assert len(t) == 2 and "decode_tok_s" in t


def test_token_latency_stats_empty():
    assert len(token_latency_stats(pd.DataFrame())) == 0


def test_same_work_flags_configs_that_generated_other_tokens():
    import pandas as pd
    from coresweep.analysis import same_work

    rows = [{"label": lb, "model": "m", "prompt_tokens": 8, "gen_tokens": 4, "ok": True,
             "checksum": cs} for lb, cs in [("a", "x"), ("a", "x"), ("b", "x"), ("c", "y")]]
    rows.append({"label": "d", "model": "m", "prompt_tokens": 16, "gen_tokens": 4, "ok": True,
                 "checksum": "z"})  # other prompt length: its own group
    w = same_work(pd.DataFrame(rows))
    assert not w["ok"] and w["groups"] == 2 and len(w["mismatches"]) == 1
    assert w["mismatches"][0][1] == {"x": ["a", "b"], "y": ["c"]}
    assert same_work(pd.DataFrame(rows[:3]))["ok"]

"""07_batching without a model: its configs on captured machines (the decided thread count and
1, batch 1 kept as the baseline), its checks, and its numbers on a made-up summary — the
aggregate and its interval, the roofline per step, where a step turns compute-bound, and its
answer through the one decision (the smaller batch when tied)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from coresweep import studies
from coresweep.analysis import batching
from coresweep.errors import ParamsError
from coresweep.machine.topology import read_topology

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def _resolved(fixture: str = "laptop-i7-11800h", **params):
    study = studies.get("batching")
    return study, study.validate({"model": "tiny", **params},
                                 topo=read_topology(FIX / fixture), model=False)


def test_configs_cover_every_batch_at_the_decided_threads_and_one():
    study, v = _resolved()
    cfgs = study.configs(v)
    assert v["batch_threads"] == [8, 1]  # no run folder yet: the physical cores, then 1
    assert [(c.threads, c.batch) for c in cfgs] == [(t, b) for t in (8, 1) for b in (1, 2, 4, 8)]
    assert all(c.role == {"batch": c.batch, "threads": c.threads} for c in cfgs)
    kept = study.keep(cfgs)
    assert set(kept) == {c.key() for c in cfgs if c.batch == 1}
    assert "batch" not in study.keys()  # the study sweeps it: not a shared parameter here


@pytest.mark.parametrize("params,message", [
    ({"batch_sizes": [2, 4]}, "has no 1: batch 1 is the baseline"),
    ({"batch_sizes": [1, 0]}, "below the minimum 1"),
    ({"batch_threads": [64]}, "cannot place 64 thread(s)"),
])
def test_bad_values_name_the_parameter(params, message):
    with pytest.raises(ParamsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _resolved(**params)


def _summary() -> pd.DataFrame:
    """2 threads: batch 1 13 tok/s ... batch 8 at 5 tok/s each (step 3x as long); the CI of each
    sequence's decode ±5 %."""
    rows = []
    for b, per in ((1, 13.0), (2, 11.0), (4, 8.0), (8, 5.0)):
        rows.append({"config_key": f"k{b}", "label": f"2 threads · batch {b}", "threads": 2,
                     "n_cpus": 2, "batch": b, "prompt_tokens": 64, "gen_tokens": 32,
                     "cpus": "0-1", "placement_ok": True, "oversubscribed": False,
                     "decode_tok_s_median": per, "decode_tok_s_ci_lo": per * 0.95,
                     "decode_tok_s_ci_hi": per * 1.05, "ttft_s_median": 0.5 * b,
                     "cpu_s_per_token_median": 0.15 / b})
    return pd.DataFrame(rows)


def test_aggregate_roofline_and_answer_on_a_made_up_summary():
    bw = pd.DataFrame([{"cpus": "0-1", "threads": 2, "gb_s": 20.0, "ok": True,
                        "roofline": True}])
    s = batching.with_step_roofline(_summary(), 1e9, 57344, bw)
    row8 = s[s["batch"] == 8].iloc[0]
    assert row8["agg_decode_tok_s_median"] == pytest.approx(40.0)
    assert row8["agg_decode_tok_s_ci_lo"] == pytest.approx(8 * 5.0 * 0.95)
    step = 1e9 + 8 * 57344 * (64 + 16)
    assert row8["step_gb"] == pytest.approx(step / 1e9)
    assert row8["pct_of_ceiling"] == pytest.approx(100 * step / 1e9 * 5.0 / 20.0)
    assert s[s["batch"] == 1].iloc[0]["pct_of_ceiling"] == pytest.approx(65.3, abs=0.1)
    assert batching.compute_bound_from(s, 2) == 1  # 65 % already: below the 70 % line
    assert "compute-bound" in batching.roofline_sentence(s, 2)
    table = batching.batch_table(s)
    assert list(table["batch"]) == [1, 2, 4, 8] and table["× batch 1"].iloc[0].startswith("1.00")
    m, lo, hi = batching.ratio(s.iloc[2], s.iloc[0])
    assert m == pytest.approx(32 / 13) and lo < m < hi

    class Res:
        summary = s

    d = studies.get("batching").decisions(Res())[2]
    assert d.status == "decided" and int(d.pick["batch"]) == 8


def test_tied_batches_go_to_the_smaller_one_and_no_ceiling_is_said():
    s = batching.with_aggregate(_summary())
    s.loc[s["batch"] == 8, ["agg_decode_tok_s_median", "agg_decode_tok_s_ci_lo",
                            "agg_decode_tok_s_ci_hi"]] = [32.3, 30.0, 34.0]
    s.loc[s["batch"] == 4, ["agg_decode_tok_s_ci_lo", "agg_decode_tok_s_ci_hi"]] = [31.5, 32.5]

    class Res:
        summary = s

    d = studies.get("batching").decisions(Res())[2]
    assert d.status == "tied" and int(d.pick["batch"]) == 4
    none = batching.with_step_roofline(_summary(), 1e9, 57344, None)
    assert np.isnan(batching.compute_bound_from(none, 2))
    assert "no read bandwidth was measured" in batching.roofline_sentence(none, 2)

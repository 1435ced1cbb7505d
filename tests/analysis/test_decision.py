"""The one decision (coresweep.analysis.decision) on constructed summaries: every rule of
docs/protocol.md "The decision". The same function on a real noisy run is tested in
test_decision_fixture.py."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from coresweep.analysis.decision import (
    BETTER,
    DECIDED,
    EQUIVALENT,
    INCONCLUSIVE,
    NONE,
    TIED,
    UNDECIDED,
    WORSE,
    decide,
    prefill_decode_note,
    relation,
)


def _p(threads, decode, lo=None, hi=None, *, ttft=1.0, noisy=False, ok=True, over=False,
       throttled=False, control=None, key=None):
    lo = decode * 0.98 if lo is None else lo
    hi = decode * 1.02 if hi is None else hi
    return {"config_key": key or f"k{threads}{control or ''}", "label": control or f"{threads}t",
            "threads": -1 if control else threads, "n_cpus": threads, "cpus": f"0-{threads - 1}",
            "decode_tok_s_median": decode, "decode_tok_s_ci_lo": lo, "decode_tok_s_ci_hi": hi,
            "ttft_s_median": ttft, "ttft_s_ci_lo": ttft * 0.98, "ttft_s_ci_hi": ttft * 1.02,
            "noisy": noisy, "placement_ok": ok, "oversubscribed": over, "throttled": throttled,
            "role_control": control, "busy_threads": 2.0}


def test_a_clear_winner_is_decided():
    d = decide(pd.DataFrame([_p(1, 10.0), _p(2, 17.0), _p(4, 6.0, over=True)]), "decode_tok_s")
    assert d.status == DECIDED and d.threads == 2 and not d.needs_refinement
    assert "clearly ahead" in d.sentence() and "1t" in d.sentence()  # the runner-up named


def test_noisy_points_stay_eligible_and_the_clearly_faster_one_wins():
    """The 2-vCPU Xeon: every 2-thread point noisy, intervals far apart (issue 17)."""
    s = pd.DataFrame([_p(1, 6.42, 6.29, 6.73), _p(2, 12.25, 11.55, 12.87, noisy=True)])
    d = decide(s, "decode_tok_s")
    assert d.status == DECIDED and d.threads == 2
    assert "(noisy)" in d.sentence()
    assert d.evidence.set_index("point").loc["2t", "noisy"]


def test_a_tie_within_five_percent_recommends_the_cheapest():
    s = pd.DataFrame([_p(1, 10.0), _p(2, 17.0), _p(4, 17.4), _p(8, 17.2)])
    d = decide(s, "decode_tok_s")
    assert d.status == TIED and d.threads == 2 and d.best["threads"] == 4
    assert sorted(int(c["threads"]) for c in d.candidates) == [2, 4, 8]
    assert not d.needs_refinement  # tied and quiet: settled


def test_a_tie_among_noisy_points_asks_for_refinement():
    s = pd.DataFrame([_p(1, 10.0), _p(2, 17.0, noisy=True), _p(4, 17.4)])
    d = decide(s, "decode_tok_s")
    assert d.status == TIED and d.needs_refinement
    assert set(d.contenders) == {"k2", "k4"}


def test_wide_overlapping_intervals_are_undecided_and_provisionally_the_best_median():
    s = pd.DataFrame([_p(1, 9.0, 7.0, 11.5), _p(2, 11.0, 8.5, 13.0)])
    d = decide(s, "decode_tok_s")
    assert d.status == UNDECIDED and d.threads == 2 and d.needs_refinement
    assert set(d.contenders) == {"k1", "k2"}
    assert "Undecided" in d.sentence() and "processes" in d.sentence()


def test_a_point_beaten_outright_is_never_recommended():
    """1 thread overlaps the best, but 2 threads beat it with disjoint intervals."""
    s = pd.DataFrame([_p(1, 8.5, 7.0, 9.1), _p(2, 9.35, 9.2, 9.5), _p(4, 10.0, 9.0, 11.0)])
    d = decide(s, "decode_tok_s")
    assert d.threads != 1
    assert {int(c["threads"]) for c in d.candidates} == {2, 4}
    assert d.evidence.set_index("point").loc["1t", "decision"] == "clearly worse"


@pytest.mark.parametrize("flag, why", [({"ok": False}, "placement not verified"),
                                       ({"over": True}, "oversubscribed"),
                                       ({"throttled": True}, "throttled")])
def test_ineligible_points_are_never_picked_and_say_why(flag, why):
    d = decide(pd.DataFrame([_p(1, 10.0), _p(2, 40.0, **flag)]), "decode_tok_s")
    assert d.threads == 1 and d.status == DECIDED
    assert why in d.evidence.set_index("point").loc["2t", "decision"]


def test_failed_points_and_nothing_eligible():
    failed = {**_p(2, math.nan), "decode_tok_s_ci_lo": math.nan, "decode_tok_s_ci_hi": math.nan}
    d = decide(pd.DataFrame([_p(1, 10.0), failed]), "decode_tok_s")
    assert d.threads == 1
    assert "not measured" in d.evidence.set_index("point").loc["2t", "decision"]
    none = decide(pd.DataFrame([_p(2, 40.0, ok=False)]), "decode_tok_s")
    assert none.status == NONE and none.pick is None and none.contenders == []
    assert "No eligible point" in none.sentence()
    assert decide(None, "decode_tok_s").status == NONE


def test_controls_are_shown_beside_the_pick_never_picked():
    s = pd.DataFrame([_p(1, 10.0), _p(2, 17.0), _p(2, 18.4, control="ort-default"),
                      _p(2, 17.1, control="omp-only")])
    d = decide(s, "decode_tok_s")
    assert d.threads == 2 and d.pick["label"] == "2t"
    faster, tied = d.controls
    assert faster.startswith("ORT's default mode") and "8 % faster" in faster
    assert "to get it explicitly, set intra_op_num_threads = 2" in faster
    assert tied.startswith("The OMP_NUM_THREADS-only run") and "tied" in tied


def test_ttft_lower_is_better_and_prefill_decode_disagreement_is_named():
    s = pd.DataFrame([_p(1, 10.0, ttft=2.0), _p(2, 17.0, ttft=1.0), _p(4, 17.1, ttft=0.5)])
    ttft, dec = decide(s, "ttft_s"), decide(s, "decode_tok_s")
    assert ttft.threads == 4 and ttft.status == DECIDED and dec.threads == 2
    note = prefill_decode_note(ttft, dec)
    assert "disagree" in note and "4 thread(s)" in note and "decode with 2" in note
    assert "agree" in prefill_decode_note(dec, dec)
    assert "ms" in ttft.value_text()


def test_relations():
    a, b = _p(1, 10.0), _p(2, 10.1)
    assert relation(a, b, "decode_tok_s") == EQUIVALENT
    assert relation(_p(1, 12.0), b, "decode_tok_s") == BETTER
    assert relation(b, _p(1, 12.0), "decode_tok_s") == WORSE
    assert relation(_p(1, 10.0, 8.0, 12.0), b, "decode_tok_s") == INCONCLUSIVE
    fast, slow = {**a, "ttft_s_median": 0.5, "ttft_s_ci_lo": 0.49, "ttft_s_ci_hi": 0.51}, b
    assert relation(fast, slow, "ttft_s") == BETTER  # lower time is better


def test_the_json_record_keeps_the_answer():
    d = decide(pd.DataFrame([_p(1, 10.0), _p(2, 17.0)]), "decode_tok_s")
    rec = d.to_dict()
    assert rec["status"] == DECIDED and rec["pick"]["threads"] == 2
    assert rec["pick"]["value"] == pytest.approx(17.0) and rec["sentence"] == d.sentence()
    with pytest.raises(ValueError, match="valid"):
        decide(pd.DataFrame([_p(1, 1.0)]), "speed")


def test_the_ladder_is_filled_where_neighbours_differ_most():
    from coresweep.studies.refine import widest_gap

    over = {**_p(16, 20.0, over=True), "n_cpus": 8}  # 16 threads on the plan's 8 CPUs
    s = pd.DataFrame([_p(1, 10.0), _p(2, 18.0), _p(4, 30.0), _p(8, 31.0), over])
    assert widest_gap(s)[:2] == (2, 4)  # 18 → 30: 67 %; 4 → 8 only 3 %; 16 is oversubscribed
    assert widest_gap(pd.DataFrame([_p(1, 10.0), _p(2, 18.0)])) is None  # no count between

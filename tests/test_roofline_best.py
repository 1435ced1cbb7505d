"""Roofline arithmetic and the claims, on constructed tables (test inputs, not results); the
decision itself is tested in test_decision.py."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from coresweep.analysis.roofline import achieved_gb_s, bound_sentence, with_roofline


def _point(threads, decode, ci=0.5, ttft=1.0, ok=True, noisy=False, cpus=None):
    return {"config_key": f"k{threads}{ok}{noisy}", "label": f"{threads}t", "threads": threads,
            "n_cpus": threads, "cpus": cpus or f"0-{threads - 1}", "strategy": "physical",
            "decode_tok_s_median": decode, "decode_tok_s_ci_lo": decode - ci,
            "decode_tok_s_ci_hi": decode + ci, "ttft_s_median": ttft,
            "ttft_s_ci_lo": ttft * 0.97, "ttft_s_ci_hi": ttft * 1.03,
            "placement_ok": ok, "noisy": noisy}


def test_roofline_arithmetic():
    assert achieved_gb_s(10.0, 0.965e9) == pytest.approx(9.65)
    s = pd.DataFrame([_point(1, 12.0, cpus="0"), _point(2, 19.8, cpus="0-1")])
    bw = pd.DataFrame([{"method": "likwid", "cpus": "0", "threads": 1, "gb_s": 15.0, "ok": True,
                        "roofline": True},
                       {"method": "ort", "cpus": "0", "threads": 1, "gb_s": 11.0, "ok": True,
                        "roofline": False},
                       {"method": "likwid", "cpus": "0-1", "threads": 2, "gb_s": 24.0,
                        "ok": True, "roofline": True}])
    r = with_roofline(s, 0.965e9, bw)
    assert list(r["decode_gb_s"].round(3)) == [11.58, 19.107]
    assert list(r["ceiling_gb_s"]) == [15.0, 24.0]  # the roofline's method, same placement
    assert r["pct_of_ceiling"].iloc[1] == pytest.approx(100 * 19.107 / 24.0, rel=1e-3)
    text = bound_sentence(r)
    assert "bandwidth-bound" in text and "80 %" in text


def test_no_bandwidth_or_no_bytes_say_so():
    s = pd.DataFrame([_point(1, 12.0)])
    r = with_roofline(s, None, None)
    assert math.isnan(r["decode_gb_s"].iloc[0])
    assert "No bandwidth measured" in bound_sentence(with_roofline(s, 1e9, None))


def _ev(threads=None, affinity=None, serving=None):
    from coresweep.analysis.decision import decide
    from coresweep.machine.topology import read_topology
    from coresweep.recommend.claims import Evidence

    topo = read_topology(Path(__file__).resolve().parent / "fixtures" / "vm-2vcpu")
    empty = pd.DataFrame()
    threads = threads if threads is not None else empty
    affinity = affinity if affinity is not None else empty
    points = pd.concat([d for d in (threads, affinity) if len(d)] or [empty], ignore_index=True)
    return Evidence(threads=threads, affinity=affinity, smt=empty,
                    serving=serving if serving is not None else empty, topo=topo, links={},
                    decode=decide(points, "decode_tok_s"))


def test_claims_verdicts_on_constructed_results():
    from coresweep.recommend.claims import check_claims

    threads = pd.DataFrame([{**_point(1, 10.0), "oversubscribed": False},
                            {**_point(2, 17.0), "oversubscribed": False},
                            {**_point(4, 6.0), "oversubscribed": True, "placement_ok": False}])
    threads = with_roofline(threads, 1e9, pd.DataFrame([
        {"method": "likwid", "cpus": "0-1", "threads": 2, "gb_s": 20.0, "ok": True,
         "roofline": True}]))
    affinity = pd.DataFrame([
        {**_point(2, 17.0), "role_strategy": "physical", "role_control": None},
        {**_point(2, 16.9), "role_strategy": "none", "role_control": None},
        {**_point(2, 17.0), "role_strategy": None, "role_control": "ort-default",
         "busy_threads": 2, "threads": -1},
        {**_point(2, 17.0), "role_strategy": None, "role_control": "omp-only",
         "role_omp_num_threads": 1, "busy_threads": 2, "threads": -1}])
    c = check_claims(_ev(threads, affinity)).set_index("claim")["verdict"]
    assert c[1] == "holds"  # 2 threads on the VM's 2 physical cores
    assert c[2] == "holds"  # 4 threads on 2 CPUs: 6 tok/s against 17
    assert c[3] == "does not hold"  # asked for 1, 2 busy
    assert c[4] == "does not hold"  # pinned 17.0 vs 16.9: inside the CIs
    assert c[5] == c[6] == c[7] == "cannot be tested here"  # no SMT, one node, no serving
    assert c[8] == "holds"  # 17 GB/s of 20: 85 %
    assert (check_claims(_ev())["verdict"] == "cannot be tested here").all()


def test_bytes_per_token_of_a_model_and_of_nothing(tiny_int4):
    from coresweep.models import bytes_per_token, inspect_model

    assert bytes_per_token(str(tiny_int4)) == inspect_model(tiny_int4).bytes_per_token > 0
    assert bytes_per_token(None) is None and bytes_per_token("/no/such/model") is None


def test_claims_are_inconclusive_within_noise():
    """Intervals that overlap but are too wide to say two points are within 5 %: neither holds
    nor fails (issue 17: claims judged on intervals)."""
    from coresweep.recommend.claims import WITHIN_NOISE, check_claims

    wide = {"decode_tok_s_ci_lo": 9.0, "decode_tok_s_ci_hi": 19.0}
    threads = pd.DataFrame([{**_point(1, 16.0), **wide, "oversubscribed": False},
                            {**_point(2, 17.0), "oversubscribed": False},
                            {**_point(4, 12.0), **wide, "oversubscribed": True}])
    threads = with_roofline(threads, 1e9, pd.DataFrame([
        {"method": "likwid", "cpus": "0-1", "threads": 2, "gb_s": 24.0, "ok": True,
         "roofline": True}]))
    affinity = pd.DataFrame([
        {**_point(2, 17.0), **wide, "role_strategy": "physical", "role_control": None},
        {**_point(2, 15.0), "role_strategy": "none", "role_control": None}])
    c = check_claims(_ev(threads, affinity)).set_index("claim")
    assert c.loc[2, "verdict"] == c.loc[4, "verdict"] == WITHIN_NOISE
    assert c.loc[8, "verdict"] == WITHIN_NOISE  # 17 GB/s of 24 = 71 %, interval 16.5–17.5
    assert "[" in c.loc[8, "why"] and "%" in c.loc[8, "why"]


def test_claim_1_compares_the_physical_core_point_with_the_decided_best():
    from coresweep.recommend.claims import check_claims

    def ev(one, two):
        return _ev(pd.DataFrame([{**_point(1, *one), "oversubscribed": False},
                                 {**_point(2, *two), "oversubscribed": False}]))

    assert check_claims(ev((10.0, 0.2), (17.0, 0.5))).iloc[0]["verdict"] == "holds"
    fails = check_claims(ev((17.0, 0.2), (10.0, 0.5))).iloc[0]
    assert fails["verdict"] == "does not hold" and "decided" in fails["why"]
    tied = check_claims(ev((17.0, 0.2), (17.1, 0.2))).iloc[0]  # 1 thread as good: tied
    assert tied["verdict"] == "holds" and "within 5 %" in tied["why"]
    noisy = check_claims(ev((17.0, 0.2), (15.0, 6.0))).iloc[0]
    assert noisy["verdict"] == "inconclusive here (within noise)"

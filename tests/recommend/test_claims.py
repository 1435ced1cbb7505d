"""The study's eight claims (coresweep.recommend.claims) judged on constructed results: verdicts
on intervals, inconclusive within noise, claim 1 against the decided best."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from coresweep.analysis.roofline import with_roofline


def _point(threads, decode, ci=0.5, ttft=1.0, ok=True, noisy=False, cpus=None):
    return {"config_key": f"k{threads}{ok}{noisy}", "label": f"{threads}t", "threads": threads,
            "n_cpus": threads, "cpus": cpus or f"0-{threads - 1}", "strategy": "physical",
            "decode_tok_s_median": decode, "decode_tok_s_ci_lo": decode - ci,
            "decode_tok_s_ci_hi": decode + ci, "ttft_s_median": ttft,
            "ttft_s_ci_lo": ttft * 0.97, "ttft_s_ci_hi": ttft * 1.03,
            "placement_ok": ok, "noisy": noisy}


def _ev(threads=None, affinity=None, serving=None):
    from coresweep.analysis.decision import decide
    from coresweep.machine.topology import read_topology
    from coresweep.recommend.claims import Evidence

    topo = read_topology(Path(__file__).resolve().parents[1] / "fixtures" / "vm-2vcpu")
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

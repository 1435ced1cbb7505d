"""Roofline arithmetic on constructed tables (test inputs, not results)."""

from __future__ import annotations

import math

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

"""Adaptive sweeps: the stopping rules on constructed trials, and on the tiny model a clearly worse
config dropped with its reason, a control never dropped, and a resume in the middle of the rounds.

On the tiny model the "clearly worse" config is made so by scaling its measured decode speed in the
parent (a wrapper around the unit runner): the rules are under test here, not the machine's speed.
"""

from __future__ import annotations

import pandas as pd
import pytest
from _machine import cpulist
from coresweep.errors import CoresweepError
from coresweep.measurement import adaptive
from coresweep.measurement import sweep as sweep_mod
from coresweep.measurement.adaptive import Adaptive, decide
from coresweep.measurement.config import TrialConfig
from coresweep.measurement.sweep import sweep

BASE = dict(model="tiny", prompt_tokens=8, gen_tokens=16)
FAST = TrialConfig(threads=2, **BASE)
SLOW = TrialConfig(threads=1, **BASE)
CONTROL = TrialConfig(threads=None, placement="none", role={"control": "ort-default"}, **BASE)


def _trials(speeds: list[tuple[TrialConfig, list[list[float]]]], placement_ok: bool = True):
    """Trial rows: per config, one list of decode tok/s per process."""
    rows = [{"config_key": c.key(), "process": p, "rep": r, "ok": True, "decode_tok_s": v,
             "placement_ok": placement_ok}
            for c, procs in speeds for p, vals in enumerate(procs) for r, v in enumerate(vals)]
    return pd.DataFrame(rows)


def _decide(speeds, rnd, active=None, keep=None, target=0.03, cap=3, unfinished=None):
    configs = [c for c, _ in speeds]
    return decide(active or configs, configs, _trials(speeds), rnd, target=target, cap=cap,
                  keep=adaptive.protected(configs, keep), unfinished=unfinished or {})


def test_clearly_worse_dropped_after_one_process_with_reason():
    speeds = [(FAST, [[100, 101, 99]]), (SLOW, [[40, 41, 40]]), (CONTROL, [[30, 31, 30]])]
    stops = _decide(speeds, 0)
    assert set(stops) == {SLOW.key()}  # the control is as slow, but kept; one process: no target
    s = stops[SLOW.key()]
    assert s.stop == "dropped" and s.processes == 1 and s.rounds == 1
    assert "below the best" in s.reason and FAST.display in s.reason and "±30 %" in s.reason


def test_one_process_is_not_enough_to_drop_a_close_config():
    # 20 % slower: inside the one-process allowance, so it gets a second process
    assert _decide([(FAST, [[100, 100, 100]]), (SLOW, [[80, 80, 80]])], 0) == {}
    # two tight processes each: now the CIs alone decide, and they do not overlap
    stops = _decide([(FAST, [[100, 100.5, 100], [101, 100, 101]]),
                     (SLOW, [[80, 80.5, 80], [81, 80, 80]])], 1, target=0.001)
    assert stops[SLOW.key()].stop == "dropped" and FAST.key() not in stops


def test_target_then_cap():
    tight = [(FAST, [[100, 100.2, 99.9], [100.1, 99.8, 100]])]
    (s,) = _decide(tight, 1).values()
    assert s.stop == "target" and s.processes == 2 and s.ci_half_pct <= 3
    assert "≤ 3 %" in s.reason
    wide = [(FAST, [[100, 100, 100], [70, 70, 70]])]
    assert _decide(wide, 1, cap=3) == {}  # not tight, not at the cap: one more round
    (s,) = _decide(wide, 1, cap=2).values()
    assert s.stop == "cap" and "2 of 2 processes" in s.reason


def test_control_and_kept_points_are_never_dropped():
    slow_control = [(FAST, [[100] * 3, [100] * 3]), (CONTROL, [[10, 50, 12], [11, 14, 60]])]
    # far slower and noisy: measured on, not dropped
    assert _decide(slow_control, 1, cap=3, active=[CONTROL]) == {}
    (s,) = _decide(slow_control, 1, cap=2, active=[CONTROL]).values()
    assert s.stop == "cap"
    kept = _decide([(FAST, [[100] * 3]), (SLOW, [[10] * 3])], 0, keep={SLOW.key(): "baseline"})
    assert kept == {}


def test_leader_is_a_point_the_recommendation_could_pick():
    # a control faster than every explicit point does not make them "worse"
    assert _decide([(CONTROL, [[500] * 3]), (FAST, [[100] * 3])], 0) == {}
    # nor does a point whose placement failed
    configs = [FAST, SLOW]
    trials = pd.concat([_trials([(FAST, [[500] * 3])], placement_ok=False),
                        _trials([(SLOW, [[100] * 3])])])
    assert decide(configs, configs, trials, 0, target=0.03, cap=3, keep={},
                  unfinished={}) == {}


def test_unfinished_process_stops_the_config_with_its_status():
    stops = _decide([(FAST, [[100] * 3])], 0, active=[FAST, SLOW],
                    unfinished={SLOW.key(): ("timeout", "timeout after 3 s")})
    assert stops[SLOW.key()].stop == "failed" and "timeout after 3 s" in stops[SLOW.key()].reason
    stops = _decide([(FAST, [[100] * 3])], 0, active=[SLOW],
                    unfinished={SLOW.key(): ("skipped", "SMT notsupported")})
    assert stops[SLOW.key()].stop == "skipped"


def test_bad_settings_fail_before_any_trial():
    for bad in (0, 1.5, -0.1, True, "3%"):
        with pytest.raises(CoresweepError, match="adaptive target"):
            Adaptive(bad)
    with pytest.raises(CoresweepError, match="valid orders with adaptive"):
        sweep([FAST], processes=2, order="sequential", adaptive=Adaptive())
    with pytest.raises(CoresweepError, match="adaptive must be"):
        sweep([FAST], processes=2, adaptive=0.03)
    assert adaptive.settings({"adaptive": False, "adaptive_target": 0.05}) is None
    from coresweep import studies
    from coresweep.errors import ParamsError

    with pytest.raises(ParamsError, match="'adaptive_target'.*between 0 and 1"):
        studies.get("threads").validate({"adaptive": True, "adaptive_target": 1.5}, model=False)
    assert adaptive.settings({"adaptive": True, "adaptive_target": 0.05}) == Adaptive(0.05)


# -- on the tiny model ---------------------------------------------------------------------------

def _tiny_configs(model):
    base = dict(model=str(model), prompt_tokens=8, gen_tokens=24, warmup=1, reps=2)
    best = TrialConfig(threads=1, placement=cpulist(1), **base)
    worse = TrialConfig(threads=2, placement=cpulist(2), **base)
    control = TrialConfig(threads=None, placement="none", role={"control": "ort-default"}, **base)
    return best, worse, control


@pytest.fixture
def five_times_slower(monkeypatch):
    """Make the given configs' measured decode five times slower, in the parent."""
    slowed: set[str] = set()
    real = sweep_mod._run_unit

    def run_unit(prep, process, *args):
        res = real(prep, process, *args)
        if prep.key in slowed:
            for row in res.trials:
                row["decode_tok_s"] /= 5
        return res

    monkeypatch.setattr(sweep_mod, "_run_unit", run_unit)
    return slowed


@pytest.mark.slow
def test_tiny_adaptive_drops_the_worse_keeps_the_control(tiny_int4, tmp_path,
                                                         five_times_slower):
    best, worse, control = _tiny_configs(tiny_int4)
    five_times_slower.update({worse.key(), control.key()})
    run = sweep([best, worse, control], out=tmp_path / "run", processes=3, progress=False,
                sample_interval_s=None, adaptive=Adaptive(0.03))
    s = run.summary.set_index("config_key")
    assert s.loc[worse.key(), "stop"] == "dropped"
    assert "below the best" in s.loc[worse.key(), "stop_reason"]
    assert s.loc[worse.key(), "n_processes"] == 1  # dropped after the first round
    assert s.loc[control.key(), "stop"] in ("target", "cap")  # as slow, never dropped
    assert s.loc[control.key(), "n_processes"] >= 2
    assert s.loc[best.key(), "stop"] in ("target", "cap")
    assert run.meta["sweep"]["adaptive"] == 0.03


@pytest.mark.slow
def test_tiny_adaptive_resumes_mid_rounds(tiny_int4, tmp_path, five_times_slower):
    best, worse, control = _tiny_configs(tiny_int4)
    five_times_slower.add(worse.key())
    cfgs = [best, worse, control]

    class Stop(Exception):
        pass

    ended = []

    def interrupt(e):
        if e["event"] == "unit_end":
            ended.append((e["key"], e["process"]))
            if len(ended) == 4:  # the first unit of round 2
                raise Stop

    with pytest.raises(Stop):
        sweep(cfgs, out=tmp_path / "run", processes=3, progress=False, sample_interval_s=None,
              adaptive=Adaptive(0.001), on_event=interrupt)
    partial = sweep_mod.Run.load(tmp_path / "run")
    assert partial.meta["stops"][worse.key()]["stop"] == "dropped"
    assert set(partial.summary["stop"]) >= {"dropped", "active"}
    spawned = []
    run = sweep(cfgs, out=tmp_path / "run", processes=3, progress=False, sample_interval_s=None,
                adaptive=Adaptive(0.001),
                on_event=lambda e: spawned.append((e["key"], e["process"]))
                if e["event"] == "spawn" else None)
    assert not set(spawned) & set(ended)  # nothing measured twice
    assert (worse.key(), 1) not in spawned  # the drop is replayed, not undone
    s = run.summary.set_index("config_key")
    assert s.loc[worse.key(), "stop"] == "dropped" and s.loc[worse.key(), "n_processes"] == 1
    # a target of 0.1 % is out of reach: the others run to the cap of 3
    assert list(s.loc[[best.key(), control.key()], "stop"]) == ["cap", "cap"]
    assert list(s.loc[[best.key(), control.key()], "n_processes"]) == [3, 3]


@pytest.mark.slow
def test_fixed_sweep_records_fixed_stops(tiny_int4, tmp_path):
    best, _, _ = _tiny_configs(tiny_int4)
    run = sweep([best], out=tmp_path / "run", processes=1, progress=False,
                sample_interval_s=None)
    assert list(run.summary["stop"]) == ["fixed"]
    assert "1 of 1 processes" in run.summary["stop_reason"].iloc[0]

"""Sweeps: grid, interleaving, tables, failures, SIGKILL + resume, lock, the Run object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import coresweep
import pytest
from _machine import cpulist, needs_physical_cores
from coresweep.errors import CoresweepError
from coresweep.measurement.store import RunLockedError, Store
from coresweep.measurement.sweep import Run, grid, sweep, unit_order
from coresweep.measurement.trial import TrialConfig


def test_grid_and_order():
    cfgs = grid(model="tiny", threads=[1, 2], placement=["physical", "compact"], reps=2)
    assert len(cfgs) == 4 and {c.reps for c in cfgs} == {2}
    assert len({c.key() for c in cfgs}) == 4
    assert len(grid(TrialConfig(threads=2), env=[{}, {"OMP_NUM_THREADS": "1"}])) == 2
    with pytest.raises(CoresweepError, match="unknown config field"):
        grid(thread=[1])
    assert unit_order(cfgs, 2) == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1)]
    sh = unit_order(cfgs, 3, "shuffle", seed=1)
    assert sh == unit_order(cfgs, 3, "shuffle", seed=1) and sorted(sh) == sorted(unit_order(cfgs, 3))
    assert unit_order(cfgs, 2, "sequential")[:2] == [(0, 0), (0, 1)]
    with pytest.raises(CoresweepError, match="valid: interleave"):
        unit_order(cfgs, 2, "random")


def test_lazy_exports():
    assert coresweep.sweep is sweep and callable(coresweep.sweep)
    assert coresweep.Run is Run and coresweep.TrialConfig is TrialConfig
    with pytest.raises(CoresweepError, match="processes must be"):
        coresweep.sweep([TrialConfig()], processes=0)


def _two(model):
    base = dict(model=str(model), prompt_tokens=8, gen_tokens=40, warmup=1, reps=2)
    needs_physical_cores(2)  # the second config: 2 threads, one per physical core
    return [TrialConfig(threads=1, placement=cpulist(1), **base), TrialConfig(threads=2, **base)]


@pytest.mark.slow
def test_two_config_sweep_tables(tiny_int4, tmp_path):
    cfgs = _two(tiny_int4)
    run = sweep(cfgs, out=tmp_path / "run", processes=2, progress=False, sample_interval_s=0.05,
                params={"purpose": "test"})
    t = run.trials
    assert len(t) == 2 * 2 * 2 and set(t["config_key"]) == {c.key() for c in cfgs}
    assert t.groupby("config_key")["process"].nunique().tolist() == [2, 2]
    assert (t["ok"]).all() and (t["decode_tok_s"] > 0).all() and (t["ttft_s"] > 0).all()
    assert t["placement_ok"].all() and not t["oversubscribed"].any() and t["affinity_first"].all()
    for col in ("config_key", "label", "runtime", "threads", "placement", "cpus", "smt",
                "prompt_tokens", "gen_tokens", "process", "rep", "ok", "load_s", "ttft_s",
                "prefill_tok_s", "decode_tok_s", "e2e_s", "peak_rss_bytes", "cpu_user_s",
                "cpu_sys_s", "ctx_vol", "ctx_invol", "checksum", "placement_ok", "busy_threads",
                "oversubscribed", "cpu_util_pct"):
        assert col in t, col
    assert len(run.tokens) == 8 * 40
    assert list(run.tokens.columns[:6]) == ["config_key", "process", "rep", "token_index",
                                            "latency_s", "phase"]
    assert {"config_key", "process", "t_s", "cpu", "util_pct"} <= set(run.samples.columns)
    assert {"config_key", "process", "when", "tid", "name", "allowed", "last_cpu", "user_s",
            "sys_s", "busy"} <= set(run.threads.columns)
    assert set(run.threads["when"]) == {"after_load", "decode"}
    assert len(run.failures) == 0
    s = run.summary
    assert len(s) == 2 and (s["n_processes"] == 2).all() and (s["n_reps"] == 4).all()
    assert (s["decode_tok_s_ci_lo"] <= s["decode_tok_s_median"]).all()
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["fingerprint"] and meta["params"] == {"purpose": "test"} and meta["end"]
    assert meta["versions"]["onnxruntime"] and len(meta["configs"]) == 2
    again = Run.load(tmp_path / "run")
    assert len(again.trials) == 8 and len(again.summary) == 2
    # everything done: a resume runs nothing
    spawned = []
    sweep(cfgs, out=tmp_path / "run", processes=2, progress=False,
          on_event=lambda e: spawned.append(e) if e["event"] == "spawn" else None)
    assert spawned == []
    sessions = json.loads((tmp_path / "run" / "run.json").read_text())["sessions"]
    assert len(sessions) == 2 and all(x["versions"]["onnxruntime"] for x in sessions)
    with pytest.raises(CoresweepError, match="resume=True"):
        sweep(cfgs, out=tmp_path / "run", processes=2, progress=False, resume=False)


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume(tiny_int4, tmp_path):
    cfgs = _two(tiny_int4)
    pids: list[int] = []

    def killer(e):
        if e["event"] == "spawn":
            pids.append(e["pid"])
        elif e["event"] == "loaded" and len(pids) == 3:  # third unit: kill it mid-trial
            os.kill(pids[-1], signal.SIGKILL)

    run = sweep(cfgs, out=tmp_path / "run", processes=2, progress=False, on_event=killer)
    assert len(pids) == 4  # the sweep went on after the kill
    assert len(run.trials) == 3 * 2  # three completed units, none lost
    (f,) = run.failures.to_dict("records")
    assert f["status"] == "failed" and f["reason"].startswith("killed by SIGKILL")
    assert f["resolved"] is False or f["resolved"] == False  # noqa: E712 (numpy bool)
    assert f["returncode"] == -9 and f["config_key"] == cfgs[0].key() and f["process"] == 1
    spawned = []
    run2 = sweep(cfgs, out=tmp_path / "run", processes=2, progress=False,
                 on_event=lambda e: spawned.append(e) if e["event"] == "spawn" else None)
    assert [(e["key"], e["process"]) for e in spawned] == [(cfgs[0].key(), 1)]
    assert len(run2.trials) == 4 * 2
    assert list(run2.failures["resolved"]) == [True]
    assert sorted(run2.summary["n_processes"]) == [2, 2]
    assert len(json.loads((tmp_path / "run" / "run.json").read_text())["sessions"]) == 2


@pytest.mark.slow
def test_killed_sweep_process_resumes(tiny_int4, tmp_path):
    """SIGKILL the whole sweep (parent and worker) mid-run: completed units survive."""
    out = tmp_path / "run"
    needs_physical_cores(2)
    code = textwrap.dedent(
        f"""
        from coresweep.measurement.sweep import sweep
        from coresweep.measurement.trial import TrialConfig
        base = dict(model={str(tiny_int4)!r}, prompt_tokens=8, gen_tokens=40, warmup=1, reps=2)
        cfgs = [TrialConfig(threads=1, placement={cpulist(1)!r}, **base),
                TrialConfig(threads=2, **base)]
        sweep(cfgs, out={str(out)!r}, processes=3, progress=False, cooldown_s=0.5)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 120
    while len(Store(out).completed_units()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    done = Store(out).completed_units()
    assert 2 <= len(done) < 6
    before = Run.load(out)
    assert len(before.trials) == 2 * len(done)
    spawned = []
    run = sweep(_two(tiny_int4), out=out, processes=3, progress=False,
                on_event=lambda e: spawned.append(e) if e["event"] == "spawn" else None)
    assert len(spawned) == 6 - len(done)
    assert not {(e["key"], e["process"]) for e in spawned} & done
    assert len(run.trials) == 6 * 2


@pytest.mark.slow
def test_lock_refuses_concurrent_sweep(tiny_int4, tmp_path):
    with Store(tmp_path / "run"):
        with pytest.raises(RunLockedError, match="in use by another sweep"):
            sweep(_two(tiny_int4), out=tmp_path / "run", processes=1, progress=False)


@pytest.mark.slow
def test_timeout_recorded_and_sweep_goes_on(tiny_int4, tmp_path):
    slow = TrialConfig(model=str(tiny_int4), threads=1, prompt_tokens=8, gen_tokens=2000, reps=100)
    fast = TrialConfig(model=str(tiny_int4), threads=1, prompt_tokens=8, gen_tokens=8, reps=1)
    run = sweep([slow, fast], out=tmp_path / "run", processes=1, progress=False, timeout_s=3)
    (f,) = run.failures.to_dict("records")
    assert f["status"] == "timeout" and "timeout after 3 s" in f["reason"]
    assert f["config_key"] == slow.key()
    assert list(run.trials["config_key"].unique()) == [fast.key()]
    assert list(run.summary["config_key"]) == [fast.key()]


@pytest.mark.slow
def test_skipped_smt_point_is_recorded(tiny_int4, tmp_path):
    root = tmp_path / "fake"
    (root / "sys/devices/system/cpu/smt").mkdir(parents=True)
    (root / "sys/devices/system/cpu/smt/control").write_text("notsupported\n")
    cfg = TrialConfig(model=str(tiny_int4), threads=1, smt="off", smt_mode="sysfs", reps=1,
                      prompt_tokens=8, gen_tokens=4)
    run = sweep([cfg], out=tmp_path / "run", processes=2, progress=False, smt_root=root)
    assert len(run.trials) == 0
    assert list(run.failures["status"]) == ["skipped", "skipped"]
    assert "notsupported" in run.failures["reason"].iloc[0]


def test_sysfs_smt_plan_made_before_the_switch_is_checked_after_it():
    from pathlib import Path

    from coresweep.machine.placement import make_plan
    from coresweep.machine.topology import read_topology
    from coresweep.measurement.sweep import _plan_unfit_after_switch
    from coresweep.measurement.trial import PreparedTrial

    fix = Path(__file__).resolve().parents[1] / "fixtures"
    off = fix / "laptop-i7-11800h-smt-off"  # SMT off: CPUs 8-15 offline
    cfg = TrialConfig(model="tiny", threads=4, smt="on", smt_mode="sysfs")
    stale = make_plan(read_topology(off), 4, "smt")  # planned while SMT was off: 4 cores
    prep = PreparedTrial(cfg, cfg.key(), stale, "", 0)
    assert "no pair of SMT siblings" in _plan_unfit_after_switch(prep, fix / "laptop-i7-11800h")
    good = make_plan(read_topology(fix / "laptop-i7-11800h"), 4, "smt")  # 0,8,1,9
    assert _plan_unfit_after_switch(PreparedTrial(cfg, cfg.key(), good, "", 0),
                                    fix / "laptop-i7-11800h") is None
    cfg_off = TrialConfig(model="tiny", threads=4, smt="off", smt_mode="sysfs")
    assert "offline" in _plan_unfit_after_switch(PreparedTrial(cfg_off, cfg_off.key(), good, "", 0),
                                                 off)


@pytest.mark.slow
def test_a_resume_measures_units_of_an_older_timed_loop_again(tiny_int4, tmp_path, monkeypatch):
    """Every unit carries the measurement version of the loop that made it; after the loop
    changes (the version bumps) a resume measures the old units again, a refining pass adds
    processes to a config without changing the run's recorded design."""
    from coresweep.measurement import rows
    from coresweep.measurement import sweep as sweep_mod
    from coresweep.measurement.store import part_measurement_version

    cfg = _two(tiny_int4)[:1]
    out = tmp_path / "run"
    first = sweep(cfg, out=out, processes=1, progress=False, sample_interval_s=None)
    assert (first.trials["measurement_version"] == rows.MEASUREMENT_VERSION).all()
    part = next((out / "data" / "trials").glob("*.parquet"))
    assert part_measurement_version(part) == rows.MEASUREMENT_VERSION
    sweep(cfg, out=out, processes=1, progress=False, sample_interval_s=None)  # same loop: reused
    assert len(json.loads((out / "run.json").read_text())["sessions"]) == 2
    assert Store(out).completed_units(rows.MEASUREMENT_VERSION) == {(cfg[0].key(), 0)}
    monkeypatch.setattr(rows, "MEASUREMENT_VERSION", rows.MEASUREMENT_VERSION + 1)
    monkeypatch.setattr(sweep_mod, "MEASUREMENT_VERSION", rows.MEASUREMENT_VERSION)
    again = sweep(cfg, out=out, processes=1, progress=False, sample_interval_s=None)
    meta = json.loads((out / "run.json").read_text())
    assert meta["sessions"][-1]["remeasured_units"] == 1
    assert (again.trials["measurement_version"] == rows.MEASUREMENT_VERSION).all()
    assert part_measurement_version(part) == rows.MEASUREMENT_VERSION
    refined = sweep(cfg, out=out, processes=2, progress=False, sample_interval_s=None,
                    refining="refined: a test")
    meta = json.loads((out / "run.json").read_text())
    assert meta["sweep"]["processes"] == 1  # the run's design stays
    assert meta["stops"][cfg[0].key()]["stop"] == "refined"
    assert refined.trials["process"].nunique() == 2

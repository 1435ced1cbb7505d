"""Every knob a sweep axis (issue 11): prompt lengths and session knobs through params and
`coresweep trial`, the knobs study's plan, the spin split, cgroup quota and throttling, the
parent's placement, the NUMA memory policy and what the fingerprint says about CPU speed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _machine import first_cpu, memory_node, needs_physical_cores, usable_cpus
from coresweep import studies
from coresweep.analysis import knobs
from coresweep.errors import CoresweepError, ParamsError
from coresweep.machine import cgroup, numa_policy, speed
from coresweep.machine.topology import read_topology
from coresweep.measurement.config import TrialConfig
from coresweep.measurement.parent import parent_outside, throttle_columns
from coresweep.parameters import SESSION

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "tests" / "fixtures"


# -- parameters ----------------------------------------------------------------------------------


def test_prompt_tokens_takes_one_length_or_a_list():
    schema = studies.schema()
    p = schema["prompt_tokens"]
    assert p.check(64) == 64 and p.check([64, 512]) == [64, 512]
    assert p.parse_text("64,512,2048") == [64, 512, 2048] and p.parse_text("128") == 128
    with pytest.raises(ParamsError, match="'prompt_tokens'.*0 is below the minimum 1"):
        p.parse_text("64,0")
    with pytest.raises(ParamsError, match="'prompt_tokens'.*empty list"):
        p.check([])


def test_knob_axes_are_checked_item_by_item_with_the_valid_choices():
    with pytest.raises(ParamsError, match="'execution_mode': 'bogus' is not a valid choice; "
                                          "valid choices: sequential, parallel"):
        studies.load(None, ["execution_mode=sequential,bogus"])
    with pytest.raises(ParamsError, match="'spinning'"):
        studies.load(None, {"spinning": ["yes"]})
    with pytest.raises(ParamsError, match="'numa_memory'.*valid choices: default, local, interleave"):
        studies.load(None, ["numa_memory=bind"])
    v = studies.load(None, ["spinning=false,true", "dynamic_block_base=0,2,8"])
    assert v["spinning"] == [False, True] and v["dynamic_block_base"] == [0, 2, 8]


def test_session_defaults_are_onnxruntime_session_config_defaults():
    from coresweep.engines import SessionConfig

    sc = SessionConfig(threads=1)
    for k in ("spinning", "inter_op_threads", "execution_mode", "dynamic_block_base",
              "graph_optimization"):
        assert getattr(sc.ort, k) == SESSION[k].default
    # a knob left at its default keeps the config's key (it measures the same thing)
    assert TrialConfig.session_knobs({"spinning": True, "dynamic_block_base": 4}) == \
        {"dynamic_block_base": 4}


# -- the knobs study's plan ------------------------------------------------------------------


def _knob_configs(fixture: str, **over):
    t = read_topology(FIX / fixture)
    v = studies.validate({**studies.defaults(), **over}, topo=t, model=False)
    study = studies.get("knobs")
    return study, v, study.configs(v)


def test_knobs_change_one_at_a_time_from_the_baseline():
    study, v, cfgs = _knob_configs("laptop-i7-11800h", execution_mode=["sequential", "parallel"])
    base = cfgs[0]
    assert base.role["knob"] == "baseline" and base.session == {} and not base.pin_threads
    assert base.threads == v["knob_threads"] == 8  # no 01 results: the physical cores
    for c in cfgs[1:]:
        changed = {k for k in ("session", "pin_threads", "numa_memory", "huge_pages")
                   if getattr(c, k) != getattr(base, k)}
        assert len(changed) == 1, c.display
    assert {c.role["knob"] for c in cfgs[1:]} == {"spinning", "pin_threads", "execution_mode",
                                                 "dynamic_block_base", "graph_optimization",
                                                 "huge_pages"}
    assert {c.huge_pages for c in cfgs} == {"default", "malloc", "madvise"}
    assert [c for c in cfgs if c.role["knob"] == "spinning"][0].session == {"spinning": False}
    assert "numa_memory" in study.explanation(v) and "one NUMA node" in study.explanation(v)


def test_numa_memory_is_planned_on_two_sockets_and_skipped_on_one():
    _, _, two = _knob_configs("server-2s-xeon-6226r")
    assert {c.numa_memory for c in two} == {"default", "local", "interleave"}
    _, _, one = _knob_configs("laptop-i7-11800h")
    assert {c.numa_memory for c in one} == {"default"}


def test_knob_threads_must_place_and_values_must_not_repeat():
    with pytest.raises(ParamsError, match="'knob_threads'.*cannot place 64 thread"):
        _knob_configs("laptop-i7-11800h", knob_threads=64)
    with pytest.raises(ParamsError, match="'spinning'.*repeats a value"):
        _knob_configs("laptop-i7-11800h", spinning=[True, True])


def test_auto_threads_respect_the_cgroup_quota(tmp_path):
    """A quota of 2.5 CPUs on a 16-CPU machine: threads 1, 2, 3 and the oversubscribed 6."""
    tree = tmp_path / "laptop-quota"
    shutil.copytree(FIX / "laptop-i7-11800h", tree, symlinks=True)
    cg = tree / "sys" / "fs" / "cgroup"
    cg.mkdir(parents=True, exist_ok=True)
    (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (cg / "cpu.max").write_text("250000 100000\n")
    (tree / "proc" / "self").mkdir(parents=True, exist_ok=True)
    (tree / "proc" / "self" / "cgroup").write_text("0::/\n")
    t = read_topology(tree)
    assert len(t.allowed) == 16 and t.cgroup.quota_cpus == 2.5
    v = studies.validate(studies.defaults(), topo=t, model=False)
    assert v["threads"] == [1, 2, 3, 6]
    assert studies.get("threads").sweep_cpus(v) == 3
    assert v["knob_threads"] == 3
    v2 = studies.validate(studies.defaults(), topo=read_topology(FIX / "container-cgv2-quota"),
                          model=False)
    assert v2["threads"] == [1, 2, 3, 6]


def test_prompt_length_list_needs_synthetic_prompts(tmp_path):
    t = read_topology(FIX / "laptop-i7-11800h")
    with pytest.raises(ParamsError, match="'prompt_tokens'.*prompt_text sets the prompt"):
        studies.get("threads").validate({**studies.defaults(), "prompt_tokens": [64, 512],
                                         "prompt_text": "hello", "model": str(tmp_path)},
                                        topo=t, model=False)


# -- throttling, the parent, the clock, the fingerprint ---------------------------------------


def _cgroup_tree(root: Path, v2: bool, periods: int, t: int) -> Path:
    if v2:
        (root / "proc/self").mkdir(parents=True, exist_ok=True)
        (root / "proc/self/cgroup").write_text("0::/ctr\n")
        d = root / "sys/fs/cgroup/ctr"
        d.mkdir(parents=True, exist_ok=True)
        (root / "sys/fs/cgroup/cgroup.controllers").write_text("cpu\n")
        (d / "cpu.max").write_text("150000 100000\n")
        (d / "cpu.stat").write_text(f"usage_usec 1\nnr_periods 9\nnr_throttled {periods}\n"
                                    f"throttled_usec {t}\n")
    else:
        (root / "proc/self").mkdir(parents=True, exist_ok=True)
        (root / "proc/self/cgroup").write_text("3:cpu,cpuacct:/ctr\n")
        d = root / "sys/fs/cgroup/cpu,cpuacct/ctr"
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.stat").write_text(f"nr_periods 9\nnr_throttled {periods}\nthrottled_time {t}\n")
    return root


@pytest.mark.parametrize("v2", [True, False])
def test_throttling_is_read_from_cpu_stat_and_flags_the_trial(tmp_path, v2):
    before = cgroup.read_throttling(_cgroup_tree(tmp_path, v2, 2, 1000))
    after = cgroup.read_throttling(_cgroup_tree(tmp_path, v2, 5, 251000))
    assert before.readable and after.periods == 5
    cols = throttle_columns(before, after)
    assert cols["throttled"] is True and cols["throttled_periods"] == 3
    assert cols["throttled_s"] == pytest.approx(0.25 if v2 else 0.25e-3)
    same = throttle_columns(after, after)
    assert same["throttled"] is False and same["throttled_periods"] == 0
    nothing = cgroup.read_throttling(tmp_path / "empty")
    assert not nothing.readable
    assert throttle_columns(nothing, nothing)["throttled_periods"] == -1


def test_the_parent_moves_off_the_plan_and_comes_back():
    mine = sorted(os.sched_getaffinity(0))  # the parent's own mask, whatever the cgroup says
    with parent_outside(mine) as whole:
        assert whole.shares_cpus and sorted(os.sched_getaffinity(0)) == mine
    if len(mine) < 2:
        pytest.skip("one CPU: nothing outside a plan")
    with parent_outside(mine[:1]) as p:
        assert not p.shares_cpus and sorted(os.sched_getaffinity(0)) == mine[1:]
        assert p.columns()["parent_cpus"]
    assert sorted(os.sched_getaffinity(0)) == mine


def test_speed_state_from_a_tree(tmp_path):
    root = tmp_path
    (root / "sys/devices/system/cpu/intel_pstate").mkdir(parents=True)
    (root / "sys/devices/system/cpu/intel_pstate/no_turbo").write_text("1\n")
    for c in (0, 1):
        d = root / f"sys/devices/system/cpu/cpu{c}/cpufreq"
        d.mkdir(parents=True)
        (d / "energy_performance_preference").write_text("balance_power\n")
        (d / "scaling_cur_freq").write_text(f"{2000000 + c * 1000000}\n")
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text("ro quiet isolcpus=2-3 nohz_full=2-3\n")
    (root / "proc/cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n")
    s = speed.speed_state(root, live=False)
    assert s["boost"] is False and s["boost_source"] == "intel_pstate/no_turbo"
    assert s["energy_performance_preference"] == {"balance_power": [0, 1]}
    assert s["isolation"] == {"isolcpus": "2-3", "nohz_full": "2-3"}
    assert s["hypervisor"] is True
    assert s["memory"] is None and "captured tree" in s["memory_note"]
    assert speed.cpu_mhz([0, 1], root) == 2500.0


def test_dmidecode_memory_is_parsed():
    text = "\n\n".join(
        f"Handle 0x00{i}, DMI type 17\nMemory Device\n\tSize: {size}\n\tLocator: DIMM {i}\n"
        f"\tBank Locator: CHANNEL {ch}\n\tType: DDR4\n\tSpeed: 3200 MT/s\n"
        f"\tConfigured Memory Speed: {cfg} MT/s"
        for i, (size, ch, cfg) in enumerate([("16 GB", "A", 2933), ("16 GB", "B", 2933),
                                              ("No Module Installed", "C", 0)]))
    m = speed.parse_dmidecode_memory(text)
    assert m == {"dimms": 2, "channels": 2, "speed_mts": 2933, "type": "DDR4"}


def test_live_fingerprint_has_the_speed_section():
    from coresweep.machine.fingerprint import fingerprint

    fp = fingerprint()
    s = fp["speed"]
    assert set(s) >= {"boost", "energy_performance_preference", "hypervisor", "isolation",
                      "memory", "memory_note"}
    assert (s["memory"] is None) == bool(s["memory_note"])  # absent always says why


# -- NUMA memory policy --------------------------------------------------------------------------


def test_numa_maps_are_parsed_and_the_policy_verified():
    text = ("7f00 interleave:0-1 anon=300 dirty=300 N0=150 N1=150 kernelpagesize_kB=4\n"
            "7f10 interleave:0-1 file=/m/model.onnx.data mapped=500 N0=250 N1=250\n"
            "5600 default file=/usr/bin/python3 mapped=20 N0=20\n")
    maps = numa_policy.parse_numa_maps(text)
    assert maps["pages"] == {"0": 420, "1": 400}
    assert numa_policy.policy_verified("interleave", maps) is True
    assert numa_policy.policy_verified("local", maps) is False
    assert numa_policy.policy_verified("default", maps) is True
    assert numa_policy.policy_verified("local", None) is None
    with pytest.raises(CoresweepError, match="unknown NUMA memory policy 'bind'; valid: default"):
        numa_policy.set_memory_policy("bind")


@pytest.mark.skipif(not Path("/proc/self/numa_maps").exists(), reason="kernel without NUMA")
@pytest.mark.parametrize("policy", ["local", "interleave"])
def test_numa_policy_is_set_and_shows_in_numa_maps(policy):
    """The mechanism on this machine, in a fresh process (a policy is per process)."""
    code = ("from coresweep.machine.numa_policy import *\n"
            f"set_memory_policy({policy!r}, [{memory_node()}])\n"
            "import numpy as np; a = np.ones(20_000_000)\n"
            f"m = read_numa_maps(); print(policy_verified({policy!r}, m), sum(m['pages'].values()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ok, pages = out.stdout.split()
    assert ok == "True" and int(pages) > 20_000_000 * 8 / 4096


# -- analysis on a constructed summary ------------------------------------------------------------


def _row(knob, value, spinning, dec, ci, cpu_tok, util):
    return {"config_key": f"{knob}{value}", "role_knob": knob, "role_value": value,
            "role_spinning": spinning, "decode_tok_s_median": dec,
            "decode_tok_s_ci_lo": dec - ci, "decode_tok_s_ci_hi": dec + ci,
            "ttft_s_median": 0.1, "ttft_s_ci_lo": 0.09, "ttft_s_ci_hi": 0.11,
            "cpu_util_pct_median": util, "cpu_s_per_token_median": cpu_tok}


def test_effects_and_the_spin_split():
    s = pd.DataFrame([_row("baseline", None, True, 100.0, 2, 0.020, 200),
                      _row("spinning", False, False, 98.0, 2, 0.012, 120),
                      _row("graph_optimization", "basic", True, 60.0, 1, 0.030, 200)])
    e = knobs.effects(s)
    assert list(e["knob"]) == ["spinning", "graph_optimization"]
    assert list(e["verdict"]) == ["the same (within 5 %)", "slower"]
    assert e["decode_ratio"].iloc[1] == pytest.approx(0.6)
    assert e["decode_ratio_lo"].iloc[1] < 0.6 < e["decode_ratio_hi"].iloc[1]
    assert "decode_ratio" not in knobs.effects_table(e)
    split = knobs.spin_split(s)
    assert list(split.columns) == ["measure", "spinning on", "spinning off"]
    assert split.iloc[-1]["spinning on"] == "40 %"  # 1 - 12/20 of the CPU time is spin
    assert "40 %" in knobs.spin_sentence(s)
    assert knobs.spin_split(s[s["role_knob"] != "spinning"]).empty


def test_thread_utilisation_ranks_threads_by_cpu_time():
    t = pd.DataFrame({"config_key": ["a"] * 4, "process": [0, 0, 1, 1], "when": ["decode"] * 4,
                      "cpu_s": [1.0, 0.5, 0.9, 0.6], "util_pct": [100.0, 50.0, 90.0, 60.0]})
    u = knobs.thread_utilisation(t)
    assert list(u["rank"]) == [1, 2] and list(u["util_pct"]) == [95.0, 55.0]


# -- end to end on the tiny model ------------------------------------------------------------


def _trial(tiny, out, *flags):
    return subprocess.run(
        [sys.executable, "-m", "coresweep", "trial", "--model", str(tiny), "--prompt-tokens", "8",
         "--gen-tokens", "4", "--processes", "1", "--reps", "2", "--out", str(out), "--json",
         *flags], capture_output=True, text=True, timeout=300)


def test_cli_trial_knob_flags_reach_the_session_and_the_rows(tiny_int4, tmp_path):
    needs_physical_cores(2)  # 2 threads placed one per physical core
    out = _trial(tiny_int4, tmp_path / "run", "--threads", "2", "--no-spinning",
                 "--dynamic-block-base", "4", "--graph-optimization", "basic", "--pin-threads",
                 "--numa-memory", "interleave")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["config"]["session"] == {"spinning": False, "dynamic_block_base": 4,
                                      "graph_optimization": "basic"}
    assert d["config"]["pin_threads"] is True and d["config"]["numa_memory"] == "interleave"
    trials = pd.read_parquet(tmp_path / "run" / "data" / "trials")
    assert (trials["numa_memory"] == "interleave").all()
    if Path("/proc/self/numa_maps").exists():
        assert trials["numa_policy_ok"].all()
        assert sum(json.loads(trials["numa_pages"].iloc[0]).values()) > 0
    assert (trials["cpu_s_per_token"] > 0).all() and np.isfinite(trials["sampler_cpu_pct"]).all()
    assert trials["throttled"].dtype == bool
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "speed" in meta["fingerprint"]


def test_cli_trial_parent_runs_outside_a_one_cpu_plan(tiny_int4, tmp_path):
    if len(usable_cpus()) < 2:
        pytest.skip("one CPU")
    cpu = first_cpu()
    out = _trial(tiny_int4, tmp_path / "run", "--threads", "1", "--cpus", str(cpu))
    assert out.returncode == 0, out.stderr
    trials = pd.read_parquet(tmp_path / "run" / "data" / "trials")
    assert not trials["parent_shares_cpus"].any()
    assert str(cpu) not in trials["parent_cpus"].iloc[0].split(",")
    threads = pd.read_parquet(tmp_path / "run" / "data" / "threads")
    timed = threads[threads["when"] == "decode"]
    assert (timed["util_pct"] >= 0).all() and (timed["timed_wall_s"] > 0).all()


def test_cli_trial_refuses_a_prompt_length_list(tiny_int4, tmp_path):
    out = _trial(tiny_int4, tmp_path / "run", "--threads", "1", "--prompt-tokens", "8,16")
    assert out.returncode == 2
    assert "coresweep trial measures one config, so one prompt length" in out.stderr
    assert "Traceback" not in out.stderr


def test_huge_pages_are_skipped_where_the_kernel_has_none(tmp_path):
    """A machine whose kernel has no transparent huge pages (no sysfs THP files): the knob's
    values other than the default are not measured, and the explanation says why."""
    root = tmp_path / "machine"
    shutil.copytree(FIX / "laptop-i7-11800h", root)
    shutil.rmtree(root / "sys/kernel/mm/transparent_hugepage")
    study = studies.get("knobs")
    v = study.validate({"model": "tiny"}, topo=read_topology(root), model=False)
    assert {c.huge_pages for c in study.configs(v)} == {"default"}
    assert "no transparent huge pages" in study.explanation(v)

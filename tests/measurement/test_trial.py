"""One trial: config identity, /proc readers, placement verdicts, the worker, faults, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from _machine import first_cpu, usable_cpus
from coresweep.errors import CoresweepError, ModelError, PlacementError
from coresweep.measurement.trial import (
    TrialConfig,
    check_memory,
    prepare,
    read_threads,
    run_trial,
    verify_placement,
)

# -- no model needed --------------------------------------------------------------------------


def test_config_key_is_stable_and_ignores_label():
    a = TrialConfig(model="tiny", threads=2, env={"OMP_NUM_THREADS": "2", "A": "1"})
    b = TrialConfig(model="tiny", threads=2, env={"A": "1", "OMP_NUM_THREADS": "2"}, label="x")
    assert a.key() == b.key() and len(a.key()) == 12
    assert a.key() != TrialConfig(model="tiny", threads=1).key()
    assert TrialConfig.from_dict(a.to_dict()) == a
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()
    with pytest.raises(CoresweepError, match="unknown trial config field"):
        TrialConfig.from_dict({"thread": 2})


def test_the_runtime_parameter_offers_every_runtime():
    """One list of runtimes (engines.RUNTIMES): the parameter's choices come from it."""
    from coresweep import engines
    from coresweep.parameters import WORKLOAD

    assert WORKLOAD["runtime"].choices == engines.ENGINES == tuple(engines.RUNTIMES)


def test_importing_the_package_does_not_import_onnxruntime():
    code = (
        "import sys, coresweep, coresweep.measurement.worker, coresweep.measurement.trial, coresweep.measurement.sweep, "
        "coresweep.measurement.store, coresweep.analysis, coresweep.machine.smt\n"
        "coresweep.measurement.sweep; coresweep.Run; coresweep.TrialConfig\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime imported'\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_read_threads_self():
    ev = threading.Event()
    t = threading.Thread(target=ev.wait, name="probe")
    t.start()
    try:
        rows = read_threads("self")
    finally:
        ev.set()
        t.join()
    assert len(rows) >= 2
    me = [r for r in rows if r["tid"] == os.getpid()][0]
    assert me["allowed"] and me["last_cpu"] in os.sched_getaffinity(0)
    assert me["user_s"] >= 0 and me["sys_s"] >= 0
    assert read_threads(999_999_999) == []


def _th(tid, allowed, cpu, cpu_s):
    return {"tid": tid, "name": f"t{tid}", "allowed": allowed, "last_cpu": cpu,
            "user_s": cpu_s, "sys_s": 0.0, "cpu_s": cpu_s}


def test_verdict_oversubscribed_and_outside():
    before = [_th(1, "0", 0, 0.0), _th(2, "0", 0, 0.0), _th(3, "0", 0, 0.0)]
    after = [_th(1, "0", 0, 1.0), _th(2, "0", 0, 1.0), _th(3, "0", 0, 0.001)]
    v = verify_placement([0], before, after, wall_s=2.0)
    assert not v["placement_ok"] and v["oversubscribed"] and v["busy_threads"] == 2
    assert "2 busy threads on 1 CPU: oversubscribed" in v["reasons"]
    ok = verify_placement([0, 1], before[:2], [_th(1, "0-1", 0, 1.0), _th(2, "0-1", 1, 1.0)],
                          wall_s=2.0, seen={1: {0}, 2: {1}})
    assert ok["placement_ok"] and ok["reasons"] == [] and ok["cpus_used"] == "0-1"
    out = verify_placement([0], [], [_th(1, "0", 0, 1.0), _th(2, "1", 1, 1.0)], wall_s=2.0,
                           ort_default=True)
    assert not out["placement_ok"]
    assert any("ORT default mode pinned its own threads outside the plan" in r for r in out["reasons"])


def test_memory_refusal(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x" * 1000)
    with pytest.raises(ModelError, match="refusing to load"):
        check_memory(tmp_path, available=10)
    assert check_memory(tmp_path, available=10_000) == 1000


@pytest.mark.parametrize(
    "cfg, err, match",
    [
        (TrialConfig(runtime="torch"), CoresweepError,
         "unknown runtime 'torch'; valid runtimes: ort, genai, llamacpp"),
        (TrialConfig(threads=0), PlacementError, "positive integer"),
        (TrialConfig(placement="bogus"), PlacementError, "valid strategies"),
        (TrialConfig(placement="0-99"), PlacementError, "99"),
        (TrialConfig(model="/no/such/model"), ModelError, "neither a preset"),
        (TrialConfig(session={"spin": True}), CoresweepError, "unknown session option"),
        (TrialConfig(session={"execution_mode": "fast"}), ModelError, "execution_mode"),
        (TrialConfig(gen_tokens=0), CoresweepError, "gen_tokens"),
        (TrialConfig(smt="maybe"), CoresweepError, "smt"),
        (TrialConfig(batch=0), CoresweepError, "batch=0: expected an integer >= 1"),
        (TrialConfig(huge_pages="always"), CoresweepError, "valid: default, malloc, madvise"),
    ],
)
def test_bad_input_errors_before_any_trial(tmp_path, cfg, err, match, monkeypatch):
    import coresweep.measurement.sweep as sw

    def boom(*a, **k):
        raise AssertionError("a trial started")

    monkeypatch.setattr(sw, "run_trial", boom)
    with pytest.raises(err, match=match):
        sw.sweep([cfg], out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# -- with the tiny model ------------------------------------------------------------------------


def _cfg(model, **kw):
    base = dict(model=str(model), prompt_tokens=8, gen_tokens=100, warmup=1, reps=2)
    base.update(kw)
    return TrialConfig(**base)


@pytest.mark.slow
def test_one_trial_rows_and_placement(tiny_int4):
    events = []
    # long enough that the one busy thread passes the busy threshold (2 ms) on a loaded machine
    n = 64
    cpu = str(first_cpu())
    cfg = _cfg(tiny_int4, threads=1, placement=cpu, env={"OMP_NUM_THREADS": "7"}, gen_tokens=n)
    (prep,) = prepare([cfg])
    res = run_trial(prep, 0, sample_interval_s=0.05, on_event=events.append)
    assert res.ok, (res.reason, res.stderr_tail)
    hello = next(e for e in events if e["event"] == "hello")
    assert hello["onnxruntime_imported_before_affinity"] is False
    assert hello["affinity"] == [int(cpu)]
    assert hello["env_knobs"]["OMP_NUM_THREADS"] == "7"
    assert [e["event"] for e in events if e["event"] != "warmup"][-6:] == [
        "loaded", "timed_start", "rep", "rep", "timed_end", "threads"] or events[-1]["event"] == "done"
    assert len(res.trials) == 2
    for r in res.trials:
        assert r["ttft_s"] > 0 and r["decode_tok_s"] > 0 and r["e2e_s"] >= r["ttft_s"]
        assert r["load_s"] > 0 and r["peak_rss_bytes"] > 0 and r["n_tokens"] == n
        assert r["cpus"] == cpu and json.loads(r["env"])["OMP_NUM_THREADS"] == "7"
        assert r["affinity"] == cpu and r["onnxruntime_version"]  # read back by the worker
        assert r["placement_ok"], r["placement_reasons"]
        assert r["busy_threads"] == 1 and r["cpus_used"] == cpu
    assert len({r["checksum"] for r in res.trials}) == 1
    assert len(res.tokens) == 2 * n
    assert {t["phase"] for t in res.tokens} == {"prefill", "decode"}
    whens = {t["when"] for t in res.threads}
    assert whens == {"after_load", "decode"}
    assert all(t["allowed"] == cpu for t in res.threads)
    assert res.samples and {s["cpu"] for s in res.samples} == set(range(os.cpu_count()))


@pytest.mark.slow
def test_prompt_text_goes_through_the_tokenizer(tiny_int4):
    from coresweep.engines import make_prompt

    text = "How should I spend my CPU cores on LLM inference?"
    expected = len(make_prompt(tiny_int4, 1, text=text))
    cfg = _cfg(tiny_int4, threads=1, prompt_tokens=8, prompt_text=text, gen_tokens=4, reps=1)
    assert cfg.key() != _cfg(tiny_int4, threads=1, prompt_tokens=8, gen_tokens=4, reps=1).key()
    (prep,) = prepare([cfg])
    res = run_trial(prep, 0)
    assert res.ok, (res.reason, res.stderr_tail)
    assert expected > 8 and [r["prompt_tokens"] for r in res.trials] == [expected]


def test_prompt_text_needs_a_tokenizer(tiny_int4, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for f in tiny_int4.iterdir():
        if f.is_file() and not f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(f, bare / f.name)
    with pytest.raises(ModelError, match="prompt_text needs a tokenizer"):
        prepare([_cfg(bare, threads=1, prompt_text="hello")])


@pytest.mark.slow
def test_two_threads_on_one_cpu_flagged_oversubscribed(tiny_int4):
    cpu = str(first_cpu())
    cfg = _cfg(tiny_int4, threads=2, placement=cpu, oversubscribe=True)
    (prep,) = prepare([cfg])
    res = run_trial(prep, 0)
    assert res.ok, (res.reason, res.stderr_tail)
    p = res.placement
    assert p["oversubscribed"] and not p["placement_ok"] and p["busy_threads"] >= 2
    assert any("oversubscribed" in r for r in p["reasons"])
    decode_rows = [t for t in res.threads if t["when"] == "decode" and t["busy"]]
    assert len(decode_rows) >= 2 and all(t["allowed"] == cpu for t in decode_rows)
    assert all(not r["placement_ok"] and r["oversubscribed"] for r in res.trials)


@pytest.mark.slow
@pytest.mark.skipif(len(usable_cpus()) < 2, reason="needs 2 CPUs")
def test_ort_default_mode_mismatch_is_flagged(tiny_int4):
    cfg = _cfg(tiny_int4, threads=None, placement=str(first_cpu()))
    (prep,) = prepare([cfg])
    res = run_trial(prep, 0)
    assert res.ok, (res.reason, res.stderr_tail)
    assert not res.placement["placement_ok"]
    assert any("ORT default mode pinned its own threads outside the plan" in r
               for r in res.placement["reasons"])


@pytest.mark.slow
def test_timeout_kills_the_process_group(tiny_int4):
    events = []
    (prep,) = prepare([_cfg(tiny_int4, threads=1, gen_tokens=2000, reps=100)])
    res = run_trial(prep, 0, timeout_s=2.0, on_event=events.append)
    assert not res.ok and res.status == "timeout" and "timeout after 2 s" in res.reason
    pid = events[0]["pid"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


@pytest.mark.slow
def test_crash_is_recorded_with_signal(tiny_int4):
    (prep,) = prepare([_cfg(tiny_int4, threads=1, gen_tokens=2000, reps=100)])

    def on_event(e):
        if e["event"] == "loaded":
            os.kill(e_pid[0], signal.SIGKILL)
        if e["event"] == "spawn":
            e_pid.append(e["pid"])

    e_pid: list[int] = []
    res = run_trial(prep, 0, on_event=on_event)
    assert not res.ok and res.status == "failed"
    assert res.reason.startswith("killed by SIGKILL") and res.returncode == -9


@pytest.mark.slow
def test_cli_trial_json(tiny_int4, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "coresweep", "trial", "--model", str(tiny_int4), "--threads", "1",
         "--cpus", str(first_cpu()), "--prompt-tokens", "8", "--gen-tokens", "4", "--processes", "1",
         "--reps", "2", "--out", str(tmp_path / "run"), "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["config"]["threads"] == 1 and d["key"] == TrialConfig.from_dict(d["config"]).key()
    assert d["statistics"]["decode_tok_s_median"] > 0 and d["statistics"]["n_reps"] == 2
    assert d["placement"]["placement_ok"] is True and "noisy" in d["flags"]
    bad = subprocess.run(
        [sys.executable, "-m", "coresweep", "trial", "--model", str(tiny_int4), "--threads", "1",
         "--runtime", "torch"], capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and ("'runtime': 'torch' is not a valid choice; valid choices: "
                                    "ort, genai, llamacpp") in bad.stderr


@pytest.mark.slow
def test_interrupt_kills_the_worker(tiny_int4):
    (prep,) = prepare([_cfg(tiny_int4, threads=1, gen_tokens=2000, reps=100)])
    pids: list[int] = []

    def on_event(e):
        if e["event"] == "spawn":
            pids.append(e["pid"])
        if e["event"] == "loaded":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(prep, 0, on_event=on_event)
    with pytest.raises(ProcessLookupError):
        os.killpg(pids[0], 0)


def test_auto_placement_resolution():
    assert TrialConfig(threads=2).plan_strategy() == "physical"
    assert TrialConfig(threads=2, smt="on").plan_strategy() == "smt"
    assert TrialConfig(threads=2, smt="on", smt_mode="sysfs").plan_strategy() == "smt"
    assert TrialConfig(threads=2, smt="off").plan_strategy() == "physical"
    assert TrialConfig(threads=None).plan_strategy() == "none"
    assert TrialConfig(threads=2, placement="0-1").plan_strategy() == "0-1"


def test_prompt_past_the_context_is_refused_before_any_trial(tiny_int4):
    from coresweep.models import inspect_model

    ctx = inspect_model(tiny_int4).max_context
    assert ctx
    with pytest.raises(ModelError, match="exceeds the context"):
        prepare([_cfg(tiny_int4, threads=1, prompt_tokens=ctx - 2, gen_tokens=4)])


@pytest.mark.slow
def test_a_batch_trial_gives_rows_per_step_and_every_sequence(tiny_int4):
    """batch 3: each row's n_tokens is per sequence, the aggregate is 3 x each sequence's decode,
    every sequence's checksum is batch 1's, one token row per step, CPU time per token over all
    sequences' tokens."""
    n, cpu = 24, str(first_cpu())
    one, three = (_cfg(tiny_int4, threads=1, placement=cpu, gen_tokens=n, batch=b)
                  for b in (1, 3))
    assert one.key() != three.key() and "b3" in three.display
    rows = {}
    for cfg in (one, three):
        (prep,) = prepare([cfg])
        res = run_trial(prep, 0, sample_interval_s=0.05)
        assert res.ok, (res.reason, res.stderr_tail)
        rows[cfg.batch] = res
    base = rows[1].trials[0]["checksum"]
    for r in rows[3].trials:
        assert r["batch"] == 3 and r["n_tokens"] == n and r["sequences_agree"]
        assert json.loads(r["checksums"]) == [base] * 3 and r["checksum"] == base
        assert r["agg_decode_tok_s"] == pytest.approx(3 * r["decode_tok_s"])
        assert r["cpu_s_per_token"] == pytest.approx(
            (r["cpu_user_s"] + r["cpu_sys_s"]) / (3 * n))
    assert len(rows[3].tokens) == 2 * n  # one latency per step, per repetition
    assert rows[1].trials[0]["batch"] == 1 and json.loads(rows[1].trials[0]["checksums"]) == [base]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["malloc", "madvise"])
def test_huge_pages_are_asked_for_and_read_back(tiny_int4, mode):
    """malloc: the worker starts with the glibc tunable (recorded in env); madvise: it advises
    after loading; both rows read AnonHugePages back from smaps_rollup."""
    from coresweep.machine.hugepages import why_not

    if why_not(mode):
        pytest.skip(why_not(mode))
    (prep,) = prepare([_cfg(tiny_int4, threads=1, placement=str(first_cpu()), gen_tokens=8,
                            huge_pages=mode)])
    res = run_trial(prep, 0, sample_interval_s=None)
    assert res.ok, (res.reason, res.stderr_tail)
    r = res.trials[0]
    assert r["huge_pages"] == mode and r["anon_bytes"] > 0 and r["anon_huge_bytes"] is not None
    assert r["huge_pages_ok"] in (True, False)
    tunables = json.loads(r["env"]).get("GLIBC_TUNABLES") or ""
    assert ("glibc.malloc.hugetlb=1" in tunables) == (mode == "malloc")


@pytest.mark.slow
def test_cli_trial_batch_flag(tiny_int4, tmp_path):
    """`coresweep trial --batch B` comes from the Param: a batch trial, its aggregate printed;
    a bad batch is one line, exit 2, before any process."""
    base = [sys.executable, "-m", "coresweep", "trial", "--model", str(tiny_int4), "--threads",
            "1", "--cpus", str(first_cpu()), "--prompt-tokens", "8", "--gen-tokens", "6",
            "--processes", "1", "--reps", "1"]
    out = subprocess.run([*base, "--batch", "3", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "b3" in out.stdout and "aggregate" in out.stdout and "3 sequences x decode" in out.stdout
    bad = subprocess.run([*base, "--batch", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'batch': 0 is below the minimum 1" in bad.stderr

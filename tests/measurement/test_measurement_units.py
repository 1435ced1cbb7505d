"""The measurement core's parts on their own: rows built from canned worker events (no process),
the one failure classification, the worker-process handle on a stand-in worker, and the
versioned run folder (release 0.1's folder still reads; a newer or broken one is refused)."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from coresweep.errors import CoresweepError
from coresweep.machine.placement import Plan
from coresweep.measurement.config import TrialConfig
from coresweep.measurement.process import WorkerProcess, failure_reason
from coresweep.measurement.rows import rows_from_events
from coresweep.measurement.run import Run
from coresweep.measurement.store import SCHEMA_VERSION, Store
from coresweep.measurement.trial import PreparedTrial

OLD_RUN = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "v0-quick"


def _thread(tid, cpu_s, allowed="0-1", last_cpu=0):
    return {"tid": tid, "name": "python", "allowed": allowed, "last_cpu": last_cpu,
            "user_s": cpu_s, "sys_s": 0.0, "cpu_s": cpu_s}


def _prep(threads=2, cpus=(0, 1)):
    cfg = TrialConfig(model="tiny", threads=threads, placement="0-1", gen_tokens=3, reps=2)
    plan = Plan("0-1", threads, tuple(cpus), "test plan")
    return PreparedTrial(cfg, cfg.key(), plan, "/models/tiny", 1000)


def _events(affinity=(0, 1), imported_before=False):
    return {
        "hello": {"pid": 4242, "affinity": list(affinity), "env_knobs": {"OMP_NUM_THREADS": None},
                  "onnxruntime_imported_before_affinity": imported_before},
        "loaded": {"load_s": 0.5, "onnxruntime_version": "1.32.0",
                   "threads": [_thread(1, 0.4), _thread(2, 0.01)]},
        "prompt": {"prompt_len": 8},
        "threads": {"before": [_thread(1, 1.0), _thread(2, 0.5, last_cpu=1)],
                    "after": [_thread(1, 2.0), _thread(2, 1.4, last_cpu=1)], "wall_s": 1.0},
        "done": {},
    }


def _rep(i):
    return {"rep": i, "ttft_s": 0.1, "prefill_tok_s": 80.0, "decode_tok_s": 20.0, "e2e_s": 0.2,
            "n_tokens": 3, "peak_rss_bytes": 10**8, "cpu_user_s": 0.3, "cpu_sys_s": 0.0,
            "ctx_vol": 1, "ctx_invol": 2, "cpu_util_pct": 150.0, "checksum": "abc",
            "token_latencies_s": [0.1, 0.05, 0.05]}


def test_rows_from_canned_events():
    prep = _prep()
    rows = rows_from_events(prep, 1, _events(), [_rep(0), _rep(1)], seen={1: {0}, 2: {1}})
    trials, tokens, threads = rows["trials"], rows["tokens"], rows["threads"]
    assert len(trials) == 2 and [t["rep"] for t in trials] == [0, 1]
    t = trials[0]
    assert t["config_key"] == prep.key and t["process"] == 1 and t["pid"] == 4242
    assert t["placement_ok"] and t["busy_threads"] == 2 and t["cpus_used"] == "0-1"
    assert t["affinity"] == "0-1" and t["affinity_first"] and t["prompt_tokens"] == 8
    assert t["onnxruntime_version"] == "1.32.0" and t["decode_tok_s"] == 20.0
    assert [r["phase"] for r in tokens[:3]] == ["prefill", "decode", "decode"]
    assert len(tokens) == 6
    assert {r["when"] for r in threads} == {"after_load", "decode"} and len(threads) == 4
    assert rows["placement"]["placement_ok"] and "rows" not in rows["placement"]


def test_a_mask_read_back_unlike_the_plan_fails_placement():
    rows = rows_from_events(_prep(), 0, _events(affinity=(0,)), [_rep(0)])
    t = rows["trials"][0]
    assert not t["placement_ok"]
    assert "worker's affinity read back as 0, plan 0-1" in t["placement_reasons"]


def test_onnxruntime_imported_before_the_mask_fails_placement():
    rows = rows_from_events(_prep(), 0, _events(imported_before=True), [_rep(0)])
    t = rows["trials"][0]
    assert not t["placement_ok"] and not t["affinity_first"]
    assert "imported before the affinity was set" in t["placement_reasons"]


def test_more_busy_threads_than_cpus_is_oversubscribed():
    events = _events(affinity=(0,))
    for when in ("before", "after"):
        for th in events["threads"][when]:
            th.update(allowed="0", last_cpu=0)
    rows = rows_from_events(_prep(threads=2, cpus=(0,)), 0, events, [_rep(0)])
    t = rows["trials"][0]
    assert t["oversubscribed"] and not t["placement_ok"]
    assert "2 busy threads on 1 CPU: oversubscribed" in t["placement_reasons"]


@pytest.mark.parametrize("kw,expected", [
    (dict(rc=0, error=None, finished=True), None),
    (dict(rc=-9, error=None, finished=False, timed_out=True), ("timeout", "timeout after 5 s")),
    (dict(rc=1, error="ValueError: bad", finished=False), ("failed", "worker error: ValueError")),
    (dict(rc=-signal.SIGSEGV, error=None, finished=False), ("failed", "killed by SIGSEGV")),
    (dict(rc=-9, error=None, finished=False, oom=(3, 4)), ("failed", "out of memory")),
    (dict(rc=-9, error=None, finished=False, oom=(3, 3)), ("failed", "killed by SIGKILL")),
    (dict(rc=3, error=None, finished=False), ("failed", "exited with code 3 before finishing")),
])
def test_one_failure_classification(kw, expected):
    oom = kw.pop("oom", (None, None))
    got = failure_reason(kw.pop("rc"), kw.pop("error"), kw.pop("finished"),
                         timed_out=kw.pop("timed_out", False), timeout_s=5, oom_before=oom[0],
                         oom_after=oom[1])
    if expected is None:
        assert got is None
    else:
        assert got[0] == expected[0] and expected[1] in got[1]


def _stand_in(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_worker_process_streams_events_and_keeps_stderr():
    code = ("import json, sys; sys.stdin.read(); print('noise'); "
            "print(json.dumps({'event': 'hello'})); print(json.dumps({'event': 'done'})); "
            "sys.stderr.write('the end of stderr')")
    with WorkerProcess({"x": 1}, timeout_s=30, command=_stand_in(code)) as w:
        events = [e["event"] for e in w.events()]
    assert events == ["hello", "done"] and w.returncode == 0 and not w.timed_out
    assert w.stderr_tail == "the end of stderr" and w.wall_s > 0


def test_worker_process_timeout_kills_the_whole_group():
    import psutil

    code = ("import subprocess, sys, time; sys.stdin.read(); "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(p.pid, flush=True); time.sleep(60)")
    with WorkerProcess({}, timeout_s=1.5, command=_stand_in(code)) as w:
        assert list(w.events()) == []
    assert w.timed_out and w.returncode == -signal.SIGKILL
    children = [p for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] and "time.sleep(60)" in " ".join(p.info["cmdline"])
                and p.status() != psutil.STATUS_ZOMBIE]
    assert not children, "a grandchild survived the time-out"


def test_an_interrupt_kills_the_worker():
    code = "import sys, time; sys.stdin.read(); print('{\"event\": \"hello\"}', flush=True); " \
           "time.sleep(60)"
    with pytest.raises(KeyboardInterrupt), WorkerProcess({}, 30, command=_stand_in(code)) as w:
        for _ in w.events():
            raise KeyboardInterrupt
    assert w.returncode == -signal.SIGKILL


# -- the versioned run folder --------------------------------------------------------------------


@pytest.fixture
def old_run(tmp_path):
    d = tmp_path / "v0-quick"
    shutil.copytree(OLD_RUN, d)
    return d


def test_release_0_1_run_folder_reads(old_run):
    meta = json.loads((old_run / "run.json").read_text())
    assert "schema_version" not in meta  # written before versions were recorded
    run = Run.load(old_run)
    assert Store(old_run).check_readable() == 1
    keys = {c["key"] for c in meta["configs"]}
    assert set(run.summary["config_key"]) == keys and len(run.trials) == len(keys)
    assert (run.summary["decode_tok_s_median"] > 0).all()
    for c in meta["configs"]:  # `warmups` read as `warmup`, the key unchanged
        assert TrialConfig.from_dict(c["config"]).key() == c["key"]
    assert {(k, 0) for k in keys} <= Store(old_run).completed_units()


def test_new_parts_and_run_json_carry_the_schema_version(tmp_path):
    import pandas as pd

    st = Store(tmp_path)
    st.write_meta({"a": 1})
    st.write_unit("k", 0, {"trials": pd.DataFrame([{"config_key": "k", "x": 1.0}])})
    assert json.loads((tmp_path / "run.json").read_text())["schema_version"] == SCHEMA_VERSION
    part = pq.read_schema(tmp_path / "data" / "trials" / "k__p0.parquet")
    assert part.metadata[b"coresweep_schema_version"] == str(SCHEMA_VERSION).encode()


def test_a_newer_schema_is_refused_with_a_reason(old_run):
    meta = json.loads((old_run / "run.json").read_text())
    (old_run / "run.json").write_text(json.dumps({**meta, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(CoresweepError, match=f"schema version {SCHEMA_VERSION + 1}.*reads "
                                             f"versions 1 to {SCHEMA_VERSION}"):
        Run.load(old_run)


def test_an_unreadable_run_json_is_refused_naming_the_file(old_run):
    (old_run / "run.json").write_text("{not json")
    with pytest.raises(CoresweepError, match=r"run\.json is not valid JSON"):
        Run.load(old_run)


def test_a_sweep_never_appends_to_a_newer_schema(old_run):
    from coresweep.measurement.sweep import sweep

    meta = json.loads((old_run / "run.json").read_text())
    (old_run / "run.json").write_text(json.dumps({**meta, "schema_version": SCHEMA_VERSION + 1}))
    cfg = TrialConfig.from_dict(meta["configs"][0]["config"])
    with pytest.raises(CoresweepError, match="upgrade coresweep"):
        sweep([cfg], out=old_run, processes=1, progress=False, check_mem=False)
    assert json.loads((old_run / "run.json").read_text())["schema_version"] == SCHEMA_VERSION + 1

"""The server on the tiny model: workers pinned to disjoint CPUs (read back from /proc), the
OpenAI SDK parsing its SSE stream, bad requests refused, load levels producing rows, a SIGKILLed
worker replaced on the same CPUs with its requests recorded as errors, and SIGTERM leaving no
process behind. Partitions are tested on captured topologies."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from coresweep.errors import CoresweepError, PlacementError
from coresweep.machine.partition import partition, unused_cpus
from coresweep.machine.topology import read_topology

FIX = Path(__file__).resolve().parent / "fixtures"
PROMPT = list(range(10, 42))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- partitions (no server) ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture,workers,threads", [
    ("laptop-i7-11800h", 2, 8), ("laptop-i7-11800h", 4, 4), ("server-epyc-7313p", 4, 8),
    ("server-2s-xeon-6226r", 2, 32), ("vm-2vcpu", 2, 1), ("container-cgv2-quota", 2, 2),
])
def test_partition_gives_disjoint_whole_core_slices(fixture, workers, threads):
    topo = read_topology(FIX / fixture)
    slices = partition(topo, workers, threads)
    cpus = [c for s in slices for c in s.cpus]
    assert len(cpus) == len(set(cpus)) and set(cpus) <= set(topo.allowed)
    core_of = {c: core.cpus for core in topo.cores for c in core.cpus}
    for s in slices:
        assert len(s.cpus) >= threads
        for c in s.cpus:  # a core's usable siblings stay in its slice
            assert set(core_of[c]) & set(topo.allowed) <= set(s.cpus)


def test_partition_keeps_slices_inside_llc_and_numa_domains():
    epyc = partition(read_topology(FIX / "server-epyc-7313p"), 4, 4)
    assert [len(s.llc_domains) for s in epyc] == [1, 1, 1, 1]
    assert len({s.llc_domains for s in epyc}) == 4
    xeon = partition(read_topology(FIX / "server-2s-xeon-6226r"), 2, 16)
    assert [s.nodes for s in xeon] == [(0,), (1,)]


def test_partition_refuses_what_does_not_fit():
    topo = read_topology(FIX / "laptop-i7-11800h")
    with pytest.raises(PlacementError, match="valid threads per worker: 1..4"):
        partition(topo, 4, 8)
    with pytest.raises(PlacementError, match="valid worker counts: 1..16"):
        partition(topo, 17, 1)
    assert unused_cpus(topo, partition(topo, 3, 2)) == [6, 7, 14, 15]


# -- a real server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_int4, tmp_path_factory):
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.server import ServerProcess

    topo = read_topology()
    slices = [list(s.cpus) for s in partition(topo, 2, 1)] if len(topo.allowed) >= 2 else None
    cfg = ServeConfig(model_dir=str(tiny_int4), workers=2, threads=1, slices=slices,
                      port=free_port(), state_dir=str(tmp_path_factory.mktemp("serve")),
                      model_name="tiny")
    with ServerProcess(cfg, ready_timeout_s=120) as srv:
        yield srv


def test_health_describes_every_worker_read_back(server):
    h = server.health()
    assert h["status"] == "ok" and len(h["workers"]) == 2 and h["placement_ok"]
    pids = {w["pid"] for w in h["workers"]}
    assert len(pids) == 2 and all(w["alive"] for w in h["workers"])
    if server.cfg.slices:
        allowed = [w["allowed_cpus"] for w in h["workers"]]
        assert allowed == [str(s[0]) for s in server.cfg.slices]  # disjoint, from /proc
        for w in h["workers"]:  # every thread of the worker, not just the main one
            assert set(os.sched_getaffinity(w["pid"])) == {int(w["allowed_cpus"])}


def test_openai_sdk_parses_the_stream(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    chunks = list(client.completions.create(model="tiny", prompt=PROMPT, max_tokens=6,
                                            stream=True))
    assert len(chunks) == 7 and chunks[-1].choices[0].finish_reason == "length"
    done = client.completions.create(model="tiny", prompt="hello there", max_tokens=4)
    assert done.usage.completion_tokens == 4 and done.choices[0].finish_reason == "length"


def test_bad_requests_are_refused_before_compute(server):
    import httpx

    url = f"{server.url}/v1/completions"
    assert httpx.post(url, json={"max_tokens": 3}).status_code == 422  # no prompt
    assert httpx.post(url, json={"prompt": "x", "max_tokens": 0}).status_code == 422
    r = httpx.post(url, json={"prompt": [1] * 4090, "max_tokens": 64})
    assert r.status_code == 400 and "exceeds the model's context of 4096" in r.text


def test_load_levels_produce_rows(server):
    from coresweep.serving.load import run_level

    rows = run_level(server.url, mode="closed", level=2, n_requests=6, prompt=PROMPT,
                     max_tokens=8, time_limit_s=60)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    assert {r["worker"] for r in rows} == {0, 1}  # both workers served
    for r in rows:
        assert r["n_tokens"] == 8 and len(r["itl_s"]) == 7 and 0 < r["ttft_s"] < r["e2e_s"]
    open_rows = run_level(server.url, mode="open", level=50.0, n_requests=5, prompt=PROMPT,
                          max_tokens=4, time_limit_s=30, seed=1)
    assert len(open_rows) == 5 and all(r["status"] == "ok" for r in open_rows)


def test_load_refuses_non_loopback_targets():
    from coresweep.serving.load import run_level

    with pytest.raises(CoresweepError, match="not a loopback address"):
        run_level("http://10.0.0.1:8000", mode="closed", level=1, n_requests=1, prompt=[1],
                  max_tokens=1)


def test_a_killed_worker_is_replaced_on_the_same_cpus(small_int4, tmp_path):
    """SIGKILL under load: its in-flight requests end as recorded errors, the load goes on,
    gunicorn forks a replacement, and the replacement gets the same slice. (The 0.5B preset:
    a request takes seconds, so the kill lands mid-generation.)"""
    import threading

    import psutil
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.load import run_level
    from coresweep.serving.server import ServerProcess

    topo = read_topology()
    slices = [list(s.cpus) for s in partition(topo, 2, 1)] if len(topo.allowed) >= 2 else None
    cfg = ServeConfig(model_dir=str(small_int4), workers=2, threads=1, slices=slices,
                      port=free_port(), state_dir=str(tmp_path), model_name="small")
    with ServerProcess(cfg, ready_timeout_s=180) as server:
        before = {w["slot"]: w for w in server.health()["workers"]}
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(rows=run_level(
            server.url, mode="closed", level=2, n_requests=6, prompt=PROMPT, max_tokens=24,
            time_limit_s=150)))
        load.start()
        # the kernel, not round robin, decides which worker accepts: kill one holding a client
        procs = {slot: psutil.Process(w["pid"]) for slot, w in before.items()}
        held = {s: 0 for s in procs}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not max(held.values()):
            held = {s: len([c for c in p.net_connections("tcp") if c.status == "ESTABLISHED"])
                    for s, p in procs.items()}
            time.sleep(0.05)
        busy = max(held, key=held.get)
        time.sleep(0.3)
        os.kill(before[busy]["pid"], signal.SIGKILL)
        load.join(timeout=200)
        rows = result["rows"]
        assert len(rows) == 6, "no request is lost: every one has a row"
        assert any(r["status"] == "error" for r in rows)
        assert any(r["status"] == "ok" for r in rows)
        after = _replaced(server, busy, before[busy]["pid"])
    assert after["pid"] != before[busy]["pid"] and after["alive"]
    assert after["allowed_cpus"] == before[busy]["allowed_cpus"] and after["placement_ok"]


def _replaced(server, slot: int, old_pid: int, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        h = server.health()
        if h and h["status"] == "ok" and h["workers"][slot]["pid"] != old_pid:
            return h["workers"][slot]
        time.sleep(0.3)
    raise AssertionError(f"worker {slot} was not replaced: {server.health()}")


def test_sigterm_leaves_no_process_behind(tiny_int4, tmp_path):
    import psutil
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.server import ServerProcess

    cfg = ServeConfig(model_dir=str(tiny_int4), workers=2, threads=1, slices=None,
                      port=free_port(), state_dir=str(tmp_path), model_name="tiny")
    srv = ServerProcess(cfg, ready_timeout_s=120).__enter__()
    pids = [srv.proc.pid] + [w["pid"] for w in srv.health()["workers"]]
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=30) == 0
    time.sleep(0.5)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"left behind: {alive}"
    srv.stop()


def test_print_config_is_a_runnable_gunicorn_conf(tiny_int4, tmp_path):
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.server import print_config

    cfg = ServeConfig(model_dir=str(tiny_int4), workers=2, threads=1, slices=[[0], [1]])
    text = print_config(cfg)
    ns: dict = {}
    exec(compile(text, "gunicorn.conf.py", "exec"), ns)  # valid Python that gunicorn can load
    assert ns["workers"] == 2 and ns["worker_class"] == "uvicorn_worker.UvicornWorker"
    assert ns["PLAN"]["slices"] == [[0], [1]] and callable(ns["post_fork"])
    assert ns["bind"] == "127.0.0.1:8000" and ns["preload_app"] is False


def _load(**kw):
    from coresweep.serving.sweep import Load

    return Load(**{"prompt": PROMPT, "max_tokens": 4, "concurrency": [1], "poisson_load": [],
                   "requests_per_level": 2, "level_timeout_s": 30, "warmup": 0, **kw})


def test_serve_sweep_stores_units_resumes_and_records_a_failed_plan(tiny_int4, tmp_path):
    from coresweep.serving.plan import ServePlan
    from coresweep.serving.sweep import serve_sweep

    topo = read_topology()
    good = ServePlan(1, 1, True, {"split": "1x1"})
    store = serve_sweep([good], _load(poisson_load=[0.5]), tmp_path, model_dir=str(tiny_int4),
                        topo=topo, progress=False)
    assert len(store.done()) == 2  # the closed level, then the open one at half its peak
    parts = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.parquet")}
    t0 = time.monotonic()
    serve_sweep([good], _load(poisson_load=[0.5]), tmp_path, model_dir=str(tiny_int4),
                topo=topo, progress=False)
    assert time.monotonic() - t0 < 2, "a finished plan starts no server"
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*.parquet")} == parts
    broken = ServePlan(1, 1, False, {"control": "unpinned"})
    store = serve_sweep([broken], _load(), tmp_path, model_dir=str(tmp_path / "no-model"),
                        topo=topo, progress=False)
    fails = store.load("serve_failures")
    assert list(fails["plan_key"]) == [broken.key()]
    assert fails["reason"][0].startswith("server exited")
    assert "Worker failed to boot" in fails["reason"][0]
    assert len(store.load("serve_requests")) == 4  # the earlier plan's rows are all there


def test_a_plan_that_does_not_fit_is_refused_before_any_server(tmp_path):
    from coresweep.serving.plan import ServePlan
    from coresweep.serving.sweep import serve_sweep

    topo = read_topology()
    too_many = ServePlan(len(topo.allowed) + 1, 1, True)
    with pytest.raises(PlacementError, match="valid worker counts"):
        serve_sweep([too_many], _load(), tmp_path, model_dir="unused", topo=topo,
                    progress=False)
    assert not (tmp_path / "data").exists()


# -- serving statistics on constructed tables --------------------------------------------------


def _requests(plan, level, n, ttft, tokens=4, pinned=True):
    import pandas as pd

    return pd.DataFrame([{"plan_key": plan, "plan": plan, "workers": 1, "threads": 2,
                          "pinned": pinned, "mode": "closed", "level": float(level),
                          "request_id": i, "t_send_s": i * 1.0, "status": "ok", "error": "",
                          "n_tokens": tokens, "e2e_s": 1.0, "ttft_s": ttft} for i in range(n)])


def test_level_summary_knees_and_budgets():
    import pandas as pd
    from coresweep.analysis.serving import best_for_budgets, knees, level_summary

    req = pd.concat([_requests("a", 1, 4, 0.1), _requests("a", 2, 4, 0.3),
                     _requests("b", 1, 4, 0.05, tokens=6), _requests("b", 2, 8, 2.0)])
    req.loc[(req["plan"] == "a") & (req["level"] == 2.0), "t_send_s"] *= 0.5  # twice as fast
    s = level_summary(req)
    a1 = s[(s["plan"] == "a") & (s["level"] == 1.0)].iloc[0]
    assert a1["tok_s"] == pytest.approx(16 / 4.0) and a1["req_s"] == pytest.approx(1.0)
    assert a1["ttft_p50_s"] == pytest.approx(0.1) and a1["errors"] == 0
    k = knees(s).set_index("plan")
    assert k.loc["a", "knee_concurrency"] == 2  # level 2 adds 60 %: the knee is later
    assert k.loc["b", "knee_concurrency"] == 1  # level 2 adds nothing but latency
    b = best_for_budgets(s, [200, 1000, 5000])
    assert list(b["plan"]) == ["b", "a", "a"]  # 200 ms: b@1 6 tok/s; then a@2 6.4 tok/s
    assert list(b["concurrency"]) == [1, 2, 2]
    assert list(best_for_budgets(s, [10], ok_plans=["a"])["plan"]) == ["none fits"]

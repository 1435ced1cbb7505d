"""The server on the tiny model: workers pinned to disjoint CPUs (read back from /proc), the
OpenAI SDK parsing its SSE stream, bad requests refused, load levels producing rows, a SIGKILLed
worker replaced on the same CPUs with its requests recorded as errors, and SIGTERM leaving no
process behind. Partitions are tested on captured topologies."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from coresweep.errors import CoresweepError, PlacementError
from coresweep.machine.partition import partition, unused_cpus
from coresweep.machine.topology import read_topology

FIX = Path(__file__).resolve().parents[1] / "fixtures"
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


def needs_haproxy() -> None:
    """Skip without HAProxy (`make tools` installs Debian's), fail when CI requires it."""
    from coresweep.serving.server import HAPROXY_MISSING, haproxy_path

    if haproxy_path() is None:
        if os.environ.get("CORESWEEP_REQUIRE_HAPROXY") == "1":
            pytest.fail(HAPROXY_MISSING)
        pytest.skip(HAPROXY_MISSING)


def serve_cfg(model, state_dir, *, workers=2, dispatch="haproxy", **kw):
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.sweep import free_ports

    if dispatch == "haproxy":
        needs_haproxy()
    topo = read_topology()
    slices = [list(s.cpus) for s in partition(topo, workers, 1)] \
        if len(topo.allowed) >= workers else None
    port, *worker_ports = free_ports(workers + 1)
    return ServeConfig(model_dir=str(model), workers=workers, threads=1, slices=slices,
                       port=port, worker_ports=worker_ports, dispatch=dispatch,
                       state_dir=str(state_dir), model_name="m", **kw)


@pytest.fixture(scope="module")
def server(tiny_int4, tmp_path_factory):
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(tiny_int4, tmp_path_factory.mktemp("serve"))
    with ServerProcess(cfg, ready_timeout_s=120) as srv:
        yield srv


def test_health_describes_every_worker_read_back(server):
    h = server.health()
    assert h["status"] == "ok" and len(h["workers"]) == 2 and h["placement_ok"]
    assert h["dispatch"] == "haproxy" and h["queue"] == 0
    pids = {w["pid"] for w in h["workers"]}
    assert len(pids) == 2 and all(w["alive"] and w["in_rotation"] for w in h["workers"])
    assert {w["state"] for w in h["workers"]} == {"idle"}
    if server.cfg.slices:
        allowed = [w["allowed_cpus"] for w in h["workers"]]
        assert allowed == [str(s[0]) for s in server.cfg.slices]  # disjoint, from /proc
        for w in h["workers"]:  # every thread of the worker, not just the main one
            assert set(os.sched_getaffinity(w["pid"])) == {int(w["allowed_cpus"])}


def test_openai_sdk_parses_the_stream_and_the_whole_answer(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    chunks = list(client.completions.create(model="m", prompt=PROMPT, max_tokens=6,
                                            stream=True))
    assert len(chunks) == 7 and chunks[-1].choices[0].finish_reason == "length"
    done = client.completions.create(model="m", prompt="hello there", max_tokens=4)
    assert done.usage.completion_tokens == 4 and done.choices[0].finish_reason == "length"
    served = server.health()["served"]
    assert served >= 2  # both went through the dispatcher to a worker, which counted them


def test_bad_requests_are_refused_before_compute(server):
    import httpx

    url = f"{server.url}/v1/completions"
    assert httpx.post(url, json={"max_tokens": 3}).status_code == 422  # no prompt
    assert httpx.post(url, json={"prompt": "x", "max_tokens": 0}).status_code == 422
    r = httpx.post(url, json={"prompt": [1] * 4090, "max_tokens": 64})
    assert r.status_code == 400 and "exceeds the model's context of 4096" in r.text


@pytest.mark.parametrize("connection", ["new", "keep-alive"])
def test_load_levels_produce_rows_with_the_server_timing(server, connection):
    from coresweep.serving.load import run_level

    rows = run_level(server.url, mode="closed", level=2, n_requests=6, prompt=PROMPT,
                     max_tokens=8, time_limit_s=60, connection=connection)
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert r["n_tokens"] == 8 and len(r["itl_s"]) == 7 and 0 < r["ttft_s"] < r["e2e_s"]
        assert r["t_send_unix"] <= r["server_t_received"] <= r["server_t_start"] \
            < r["server_t_end"]
        assert r["worker"] in (0, 1)
    rounds = run_level(server.url, mode="rounds", level=2, n_requests=2, prompt=PROMPT,
                       max_tokens=4, time_limit_s=30, connection=connection)
    assert sorted(r["round"] for r in rounds) == [0, 0, 1, 1]
    open_rows = run_level(server.url, mode="open", level=50.0, n_requests=5, prompt=PROMPT,
                          max_tokens=4, time_limit_s=30, seed=1, connection=connection)
    assert len(open_rows) == 5 and all(r["status"] == "ok" for r in open_rows)


def test_a_closed_level_stops_when_told_enough(server):
    from coresweep.serving.load import run_level

    rows = run_level(server.url, mode="closed", level=1, n_requests=50, prompt=PROMPT,
                     max_tokens=2, enough=lambda done: len(done) >= 3)
    assert len(rows) == 3


def test_load_refuses_non_loopback_targets_and_bad_connections():
    from coresweep.serving.load import run_level

    with pytest.raises(CoresweepError, match="not a loopback address"):
        run_level("http://10.0.0.1:8000", mode="closed", level=1, n_requests=1, prompt=[1],
                  max_tokens=1)
    with pytest.raises(CoresweepError, match="valid choices: new, keep-alive"):
        run_level("http://127.0.0.1:8000", mode="closed", level=1, n_requests=1, prompt=[1],
                  max_tokens=1, connection="pooled")


@pytest.mark.parametrize("dispatch", ["shared-socket", "prefork"])
def test_the_other_dispatches_serve_the_same_api(tiny_int4, tmp_path, dispatch):
    import openai
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(tiny_int4, tmp_path, dispatch=dispatch)
    with ServerProcess(cfg, ready_timeout_s=120) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused")
        chunks = list(client.completions.create(model="m", prompt=PROMPT, max_tokens=5,
                                                stream=True))
        done = client.completions.create(model="m", prompt=PROMPT, max_tokens=3)
        h = srv.health()
    assert len(chunks) == 6 and done.usage.completion_tokens == 3
    assert h["dispatch"] == dispatch and h["placement_ok"] and h["served"] >= 2


def test_guidellm_runs_a_concurrent_profile_against_the_server(server, tmp_path):
    """GuideLLM (the optional `guidellm` extra; `make test` installs it) drives the server as it
    would any OpenAI endpoint: a concurrent profile, a handful of requests, no error."""
    import json
    import shutil
    import subprocess
    import sys

    from coresweep.models import inspect_model

    exe = shutil.which("guidellm", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("guidellm is not installed (pip install -e '.[guidellm]')")
    served = server.health()["served"]
    tok = inspect_model(server.cfg.model_dir).tokenizer_dir
    out = tmp_path / "guidellm.json"
    cmd = [exe, "run", "--backend", f"kind=openai_http,target={server.url},"
           "request_format=/v1/completions,model=m", "--tokenizer",
           f"kind=huggingface_auto,model={tok}", "--data",
           "kind=synthetic_text,prompt_tokens=16,output_tokens=8", "--profile",
           "kind=concurrent,streams=2", "--constraint", "kind=max_requests,count=6",
           "--output", f"kind=json,path={out}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    totals = json.loads(out.read_text())["benchmarks"][0]["metrics"]["request_totals"]
    assert totals["successful"] == 6 and totals["errored"] == 0 and totals["incomplete"] == 0
    assert server.health()["served"] >= served + 6  # through HAProxy to the workers


def test_sigterm_leaves_no_process_behind(tiny_int4, tmp_path):
    import psutil
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(tiny_int4, tmp_path)
    srv = ServerProcess(cfg, ready_timeout_s=120).__enter__()
    family = [srv.proc.pid] + [c.pid for c in psutil.Process(srv.proc.pid).children(True)]
    assert len(family) >= 5  # run.sh, gunicorn's master, 2 workers, haproxy
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=60) == 0
    time.sleep(0.5)
    alive = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"left behind: {alive}"
    srv.stop()


def test_deployment_files_are_what_runs_and_name_no_path_of_this_machine(tmp_path):
    import subprocess

    from coresweep.serving.config import ServeConfig
    from coresweep.serving.deploy import deployment_files

    cfg = ServeConfig(model_dir="/models/m", workers=2, threads=1, slices=[[0], [1]],
                      state_dir=str(tmp_path / "measured-here"), max_queue=3)
    files = deployment_files(cfg)
    assert set(files) == {"gunicorn.conf.py", "haproxy.cfg", "run.sh"}
    assert not any(str(tmp_path) in text for text in files.values())
    ns: dict = {}
    exec(compile(files["gunicorn.conf.py"], "gunicorn.conf.py", "exec"), ns)
    assert ns["workers"] == 2 and ns["worker_class"] == "uvicorn_worker.UvicornH11Worker"
    assert ns["PLAN"]["slices"] == [[0], [1]] and callable(ns["post_fork"])
    assert ns["bind"] == ["127.0.0.1:8001", "127.0.0.1:8002"] and ns["preload_app"] is False
    hp = files["haproxy.cfg"]
    assert "balance leastconn" in hp and "maxconn 1" in hp and "queue(workers) ge 3" in hp
    assert "bind 127.0.0.1:8000" in hp and "Retry-After" in hp
    run = files["run.sh"]  # the drain order: HAProxy first, then gunicorn
    assert run.index('kill -USR1 "$haproxy"') < run.index('kill -TERM "$gunicorn"')
    from coresweep.serving.server import haproxy_path

    if haproxy_path():
        (tmp_path / "haproxy.cfg").write_text(hp)
        check = subprocess.run([haproxy_path(), "-c", "-f", str(tmp_path / "haproxy.cfg")],
                               capture_output=True, text=True,
                               env={**os.environ, "CORESWEEP_STATE_DIR": str(tmp_path)})
        assert check.returncode == 0, check.stdout + check.stderr
    study = deployment_files(ServeConfig(model_dir="/m", workers=2, threads=None, slices=None,
                                         dispatch="shared-socket",
                                         env={"OMP_NUM_THREADS": "1"}, max_requests=100))
    assert set(study) == {"gunicorn.conf.py", "run.sh"}
    ns = {}
    exec(compile(study["gunicorn.conf.py"], "gunicorn.conf.py", "exec"), ns)
    assert ns["bind"] == ["127.0.0.1:8000"] and ns["os"].environ["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("flags,message", [
    (["--port", "70000"], "port 70000 is out of range; valid ports: 1..65535"),
    (["--port", "65535"], "worker port 65536 is out of range"),
    (["--port", "x"], "argument --port: 'x' is not a whole number"),
    (["--workers", "0"], "workers must be at least 1"),
    (["--dispatch", "nginx"], "invalid choice: 'nginx'"),
    (["--max-queue", "0"], "--max-queue) must be at least 1"),
    (["--request-timeout", "-1"], "--request-timeout) must be a positive number"),
    (["--drain-timeout", "0"], "--drain-timeout) must be a positive number"),
    (["--max-requests", "-1"], "--max-requests must be 0 or more"),
    (["--threads", "0"], "invalid thread count '0'"),
])
def test_serve_refuses_every_bad_flag_in_one_line(flags, message, capsys):
    from coresweep.cli import main

    try:
        rc = main(["serve", "--model", "tiny", *flags])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and message in err, err


def test_serve_refuses_a_port_in_use(tiny_int4):
    from coresweep.cli import main

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(tiny_int4), "--dispatch", "shared-socket",
                     "--port", str(port)]) == 2


def _consecutive_free_ports(n: int) -> int:
    """A port p with p .. p+n-1 free now (the CLI's workers take the ports after its own)."""
    import random

    for _ in range(50):
        p = random.randint(20000, 60000)
        try:
            with contextlib.ExitStack() as stack:
                for q in range(p, p + n):
                    stack.enter_context(socket.create_server(("127.0.0.1", q)))
            return p
        except OSError:
            continue
    raise AssertionError("no run of free ports")


def test_coresweep_serve_runs_in_the_foreground_and_drains_on_sigterm(tiny_int4, tmp_path):
    import subprocess
    import sys

    import httpx

    needs_haproxy()
    port = _consecutive_free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "coresweep", "serve", "--model",
                             str(tiny_int4), "--workers", "2", "--threads", "1", "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=tmp_path)
    try:
        deadline, h = time.monotonic() + 120, None
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                if h["status"] == "ok":
                    break
            time.sleep(0.2)
        assert h and h["status"] == "ok" and h["dispatch"] == "haproxy", h
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions",
                       json={"prompt": PROMPT, "max_tokens": 3}, timeout=30)
        assert r.status_code == 200 and len(r.json()["choices"][0]["token_ids"]) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    out = proc.stdout.read().decode()
    assert f"port {port + 1}" in out and "dispatch: haproxy" in out


def test_write_config_writes_the_deployment_it_would_run(tiny_int4, tmp_path, capsys):
    from coresweep.cli import main

    assert main(["serve", "--model", str(tiny_int4), "--workers", "2", "--threads", "1",
                 "--write-config", str(tmp_path / "deploy")]) == 0
    assert sorted(p.name for p in (tmp_path / "deploy").iterdir()) == \
        ["gunicorn.conf.py", "haproxy.cfg", "run.sh"]
    assert os.access(tmp_path / "deploy" / "run.sh", os.X_OK)
    assert main(["serve", "--model", str(tiny_int4), "--print-config"]) == 0
    assert "# ==> haproxy.cfg <==" in capsys.readouterr().out


def _load(**kw):
    from coresweep.serving.sweep import Load

    return Load(**{"prompt": PROMPT, "max_tokens": 4, "concurrency": [1], "poisson_load": [],
                   "requests_per_level": 2, "rounds_per_user": 1, "level_timeout_s": 30,
                   "warmup": 0, **kw})


def test_serve_sweep_stores_units_resumes_and_records_a_failed_plan(tiny_int4, tmp_path):
    from coresweep.serving.plan import ServePlan
    from coresweep.serving.sweep import serve_sweep

    needs_haproxy()
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


def test_a_level_adds_requests_until_its_ttft_intervals_are_tight():
    load = _load(requests_per_level=20, rounds_per_user=3, max_requests_per_level=200,
                 ttft_ci_target=0.05)
    assert load.n_requests("closed", 8) == 24 and load.cap("closed", 8) == 200
    done = load.enough("closed", 1)
    same = [{"status": "ok", "ttft_s": 0.5}] * 19
    assert not done(same) and done(same + [{"status": "ok", "ttft_s": 0.5}])
    rng = __import__("numpy").random.default_rng(0)
    wide = [{"status": "ok", "ttft_s": float(x)} for x in rng.lognormal(0, 1, 30)]
    assert not done(wide)


def test_time_estimates_scale_with_requests_and_parallelism():
    from coresweep.serving.plan import ServePlan
    from coresweep.serving.sweep import estimate_level_s

    load = _load(concurrency=[1, 2, 4], poisson_load=[0.5], requests_per_level=20,
                 rounds_per_user=3)
    one, two = ServePlan(1, 2), ServePlan(2, 1)
    assert estimate_level_s(load, one, "closed", 4, 2.0) == pytest.approx(20 * 2.0)
    assert estimate_level_s(load, two, "closed", 4, 2.0) == pytest.approx(20 * 2.0 / 2)
    assert estimate_level_s(load, two, "open", 0.5, 2.0) == pytest.approx(20 * 2.0 / 1.0)


def test_the_serve_store_takes_the_run_lock_and_checks_the_schema(tmp_path):
    import json

    from coresweep.measurement.store import RunLockedError, Store
    from coresweep.serving.sweep import ServeStore

    with Store(tmp_path), pytest.raises(RunLockedError), ServeStore(tmp_path):
        pass
    (tmp_path / "run.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(CoresweepError, match="schema version 99"), ServeStore(tmp_path):
        pass
    with pytest.raises(CoresweepError, match="schema version 99"):
        ServeStore(tmp_path).load("serve_requests")


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

    return pd.DataFrame([{"plan_key": plan, "plan": plan, "dispatch": "haproxy", "workers": 1,
                          "threads": 2, "pinned": pinned, "mode": "closed",
                          "level": float(level), "request_id": i, "t_send_s": i * 1.0,
                          "status": "ok", "error": "", "worker": 0, "n_tokens": tokens,
                          "e2e_s": 1.0, "ttft_s": ttft} for i in range(n)])


def test_level_summary_knees_and_budgets():
    import pandas as pd
    from coresweep.analysis.serving import BUDGET_COLUMNS, best_for_budgets, knees, level_summary

    req = pd.concat([_requests("a", 1, 4, 0.1), _requests("a", 2, 4, 0.3),
                     _requests("b", 1, 4, 0.05, tokens=6), _requests("b", 2, 8, 2.0)])
    req.loc[(req["plan"] == "a") & (req["level"] == 2.0), "t_send_s"] *= 0.5  # twice as fast
    s = level_summary(req)
    a1 = s[(s["plan"] == "a") & (s["level"] == 1.0)].iloc[0]
    assert a1["tok_s"] == pytest.approx(16 / 4.0) and a1["req_s"] == pytest.approx(1.0)
    assert a1["ttft_p50_s"] == pytest.approx(0.1) and a1["errors"] == 0
    assert a1["tok_s_ci_lo"] <= a1["tok_s"] <= a1["tok_s_ci_hi"]
    assert a1["ttft_p99_ci_lo_s"] == pytest.approx(0.1)  # every TTFT is the same
    k = knees(s).set_index("plan")
    assert k.loc["a", "knee_concurrency"] == 2  # level 2 adds 60 %: the knee is later
    assert k.loc["b", "knee_concurrency"] == 1  # level 2 adds nothing but latency
    b = best_for_budgets(s, [200, 1000, 5000])
    assert list(b.columns) == BUDGET_COLUMNS and list(b["fits"]) == [True, True, True]
    assert list(b["plan"]) == ["b", "a", "a"]  # 200 ms: b@1 6 tok/s; then a@2 6.4 tok/s
    assert list(b["concurrency"]) == [1, 2, 2] and list(b["dispatch"]) == ["haproxy"] * 3
    none = best_for_budgets(s, [10], ok_plans=["a"]).iloc[0]
    assert not none["fits"] and pd.isna(none["plan"]) and pd.isna(none["tok_s"])


def _two_workers(sends, starts, ends, workers):
    import pandas as pd

    t0 = 1000.0
    return pd.DataFrame([{"plan_key": "p", "plan": "p", "dispatch": "shared-socket",
                          "workers": 2, "threads": 1, "pinned": True, "mode": "rounds",
                          "level": 2.0, "round": 0, "request_id": i, "t_send_s": s,
                          "t_send_unix": t0 + s, "server_t_start": t0 + a,
                          "server_t_end": t0 + e, "status": "ok", "error": "", "worker": w,
                          "n_tokens": 10, "e2e_s": e - s, "ttft_s": a - s + 0.1}
                         for i, (s, a, e, w) in enumerate(zip(sends, starts, ends, workers,
                                                           strict=True))])


def test_a_request_queued_behind_a_busy_worker_while_another_idles_is_counted():
    from coresweep.analysis.serving import level_summary

    # both sent at 0: one worker takes both in turn, the other idles -> the second waited 1 s
    bad = level_summary(_two_workers([0, 0], [0, 1], [1, 2], [0, 0])).iloc[0]
    assert bad["idle_wait_s"] == pytest.approx(1.0)
    assert bad["idle_wait_pct"] == pytest.approx(100 * 1.0 / 3.0) and bad["idle_wait_flag"]
    assert bad["workers_used"] == 1 and bad["imbalance"] == pytest.approx(2.0)
    assert bad["tok_s"] == pytest.approx(20 / 2.0)
    # three sent at 0 on two workers: the third waits while both are busy -> nothing owed
    good = level_summary(_two_workers([0, 0, 0], [0, 0, 1], [1, 1, 2], [0, 1, 0])).iloc[0]
    assert good["idle_wait_s"] == pytest.approx(0.0) and not good["idle_wait_flag"]
    assert good["workers_used"] == 2 and good["worker_max_requests"] == 2
    # transit: sent at 0, started at 0.2 while both workers idled -> not queueing
    transit = level_summary(_two_workers([0, 0], [0.2, 0.2], [1, 1], [0, 1])).iloc[0]
    assert transit["idle_wait_s"] == pytest.approx(0.0)
    # sent at 0.5 to worker 0, busy until 1, while worker 1 idled from 0.6: 0.4 s owed to nobody
    late = level_summary(_two_workers([0, 0, 0.5], [0, 0, 1], [1, 0.6, 2], [0, 1, 0])).iloc[0]
    assert late["idle_wait_s"] == pytest.approx(0.4)


def test_the_study_control_is_the_motivating_studys_setup():
    from coresweep.serving.plan import ServePlan
    from coresweep.studies.serving import make_plans

    topo = read_topology(FIX / "laptop-i7-11800h")  # 8 cores, 16 CPUs
    values = {"serve_workers": [1, 2], "control_workers": 2,
              "serve_controls": ["study", "shared-socket", "unpinned"]}
    plans = {p.role.get("control", p.role.get("split")): p for p in make_plans(values, topo)}
    assert plans["1x8"].dispatch == plans["2x4"].dispatch == "haproxy" and plans["2x4"].pinned
    study = plans["study"]
    assert (study.workers, study.threads, study.pinned, study.dispatch) == \
        (2, None, False, "shared-socket")
    assert study.env == {"OMP_NUM_THREADS": "4"} and study.max_requests == 100
    cfg = study.config("/m", topo)
    assert cfg.max_requests_jitter == 10 and cfg.slices is None
    assert (plans["shared-socket"].threads, plans["shared-socket"].pinned) == (4, True)
    assert not plans["unpinned"].pinned and plans["unpinned"].dispatch == "haproxy"
    assert len({p.key() for p in plans.values()}) == 5
    batched = make_plans({**values, "serve_batch": [1, 4]}, topo)  # batch 1 is 1x8 already
    extra = [p for p in batched if p.batch > 1]
    assert [(p.workers, p.threads, p.batch, p.label) for p in extra] == [(1, 8, 4, "1x8 batch 4")]
    assert extra[0].key() not in {p.key() for p in plans.values()}
    assert plans["1x8"].key() == ServePlan(1, 8, True).key()  # batch 1 keys are unchanged
    assert extra[0].config("/m", topo).batch == 4


def test_the_study_hands_out_the_deployment_it_measured(tiny_int4):
    from coresweep import studies
    from coresweep.studies.base import Resolved

    st = studies.get("serving")
    topo = read_topology()
    values = {"model": str(tiny_int4), "precision": "int4", "runtime": "ort",
              "serve_workers": [1], "control_workers": 1, "serve_controls": ["study"]}
    res = Resolved(values, topo)
    plans = st.plans(res)
    files = st.deployment_files(plans[0], res)
    assert set(files) == {"gunicorn.conf.py", "haproxy.cfg", "run.sh"}
    assert str(tiny_int4) in files["gunicorn.conf.py"]
    assert set(st.deployment_files(plans[-1], res)) == {"gunicorn.conf.py", "run.sh"}


def test_the_load_shape_the_budget_reads_is_what_the_levels_run():
    from coresweep import studies
    from coresweep.studies.base import Resolved

    st = studies.get("serving")
    values = {**st.defaults(), "gen_tokens": 8, "warmup": 1, "sample_interval_s": 0.1,
              "prompt_text": "", "prompt_tokens": 16, "concurrency": [1, 2, 16],
              "poisson_load": [0.5], "requests_per_level": 20, "rounds_per_user": 3}
    shape = st.load_shape(Resolved(values, read_topology()))
    assert shape == [("closed", 1.0, 20), ("closed", 2.0, 20), ("closed", 16.0, 48),
                     ("open", 0.5, 20)]
    capped = st.load_shape(Resolved({**values, "max_requests_per_level": 100},
                                    read_topology()))
    assert [n for *_, n in capped] == [100, 100, 100, 20]

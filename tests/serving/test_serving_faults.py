"""The HAProxy-dispatched server under load and faults, on the 0.5B preset (a request takes
seconds, so the test can act while generations run): each request of a round reaches an idle
worker, a full queue answers 503 with Retry-After at once, a request that runs out of time is
stopped with an error the openai SDK raises, a client that disconnects frees its worker at the
next token, SIGTERM drains queued and in-flight requests before stopping with nothing left
behind, and a SIGKILLed worker is taken out of rotation and replaced on the same CPUs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from test_serving import PROMPT, serve_cfg

TIMEOUT_S = 8.0  # the fixture's request_timeout_s: far below LONG tokens' generation time
LONG = 2000  # tokens: minutes at 1 thread, so only a stop ends such a request


pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")


@pytest.fixture(scope="module")
def server(small_int4, tmp_path_factory):
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(small_int4, tmp_path_factory.mktemp("faults"), max_queue=1,
                    request_timeout_s=TIMEOUT_S)
    with ServerProcess(cfg, ready_timeout_s=240) as srv:
        yield srv


def _wait_health(srv, ok, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        h = srv.health()
        if h and ok(h):
            return h
        time.sleep(0.05)
    raise AssertionError(f"health never matched: {srv.health()}")


def _all_idle(h):
    return all(w["state"] == "idle" for w in h["workers"]) and h["queue"] == 0


@pytest.mark.parametrize("connection", ["new", "keep-alive"])
def test_each_request_of_a_round_reaches_an_idle_worker(server, connection):
    from coresweep.serving.load import run_level

    rows = run_level(server.url, mode="rounds", level=2, n_requests=3, prompt=PROMPT,
                     max_tokens=8, connection=connection, time_limit_s=120)
    assert [r["status"] for r in rows] == ["ok"] * 6
    for r in range(3):
        assert {row["worker"] for row in rows if row["round"] == r} == {0, 1}


def test_a_full_queue_answers_503_with_retry_after_at_once(server):
    from coresweep.serving.load import run_level

    _wait_health(server, _all_idle)
    rows = run_level(server.url, mode="rounds", level=5, n_requests=1, prompt=PROMPT,
                     max_tokens=8, time_limit_s=120)
    ok = [r for r in rows if r["status"] == "ok"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert len(ok) == 3 and len(rejected) == 2  # 2 workers + 1 queued; the rest refused
    assert all(r["http_status"] == 503 and r["retry_after"] == "1" for r in rejected)
    assert max(r["e2e_s"] for r in rejected) < min(r["e2e_s"] for r in ok)  # before any ended


def test_a_request_past_its_timeout_is_stopped_and_the_sdk_raises(server):
    import httpx
    import openai

    _wait_health(server, _all_idle)
    served = server.health()["served"]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    t0 = time.monotonic()
    with pytest.raises(openai.APIError, match="request_timeout_s"):
        list(client.completions.create(model="m", prompt=PROMPT, max_tokens=LONG, stream=True))
    assert time.monotonic() - t0 < TIMEOUT_S + 5
    r = httpx.post(f"{server.url}/v1/completions", timeout=60,
                   json={"prompt": PROMPT, "max_tokens": LONG})
    assert r.status_code == 504 and "request_timeout_s" in r.text
    h = _wait_health(server, _all_idle)
    assert h["served"] == served + 2


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_frees_its_worker(server, stream):
    import httpx

    _wait_health(server, _all_idle)
    body = {"prompt": PROMPT, "max_tokens": LONG, "stream": stream}
    if stream:
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60) as r:
            events = 0
            for line in r.iter_lines():
                events += line.startswith("data:")
                if events == 3:
                    break
        # the connection closed while the worker generates (deadline: TIMEOUT_S from its start)
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/completions", json=body, timeout=1.5)
    left = time.monotonic()
    _wait_health(server, _all_idle, timeout_s=TIMEOUT_S)
    assert time.monotonic() - left < TIMEOUT_S / 2, "stopped by the timeout, not the disconnect"


def test_sigterm_drains_queued_and_in_flight_requests_then_leaves_nothing(small_int4, tmp_path):
    import psutil
    from coresweep.serving.load import run_level
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(small_int4, tmp_path, max_queue=4)
    srv = ServerProcess(cfg, ready_timeout_s=240).__enter__()
    try:
        family = [srv.proc.pid] + [c.pid for c in psutil.Process(srv.proc.pid).children(True)]
        result: dict = {}
        load = threading.Thread(target=lambda: result.update(rows=run_level(
            srv.url, mode="rounds", level=3, n_requests=1, prompt=PROMPT, max_tokens=16,
            time_limit_s=120)))
        load.start()
        _wait_health(srv, lambda h: h["queue"] == 1 and all(w["state"] == "busy"
                                                             for w in h["workers"]))
        srv.proc.send_signal(signal.SIGTERM)
        load.join(timeout=120)
        assert srv.proc.wait(timeout=120) == 0
    finally:
        srv.stop()
    assert [r["status"] for r in result["rows"]] == ["ok"] * 3, result["rows"]
    time.sleep(0.5)
    alive = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert not alive, f"left behind: {alive}"


def test_a_killed_worker_leaves_rotation_and_is_replaced_on_the_same_cpus(server):
    """SIGKILL under load: its in-flight request ends as a recorded error, HAProxy sends the
    requests that follow to the other worker until gunicorn's replacement (same slot, same CPUs,
    same port) is up, and none of them fails."""
    from coresweep.serving.load import run_level

    before = {w["slot"]: w for w in _wait_health(server, _all_idle)["workers"]}
    result: dict = {}
    load = threading.Thread(target=lambda: result.update(rows=run_level(
        server.url, mode="closed", level=2, n_requests=10, prompt=PROMPT, max_tokens=24,
        time_limit_s=200)))
    load.start()
    _wait_health(server, lambda h: all(w["state"] == "busy" for w in h["workers"]))
    t_kill = time.time()
    os.kill(before[0]["pid"], signal.SIGKILL)
    load.join(timeout=220)
    rows = result["rows"]
    after = _wait_health(server, lambda h: h["status"] == "ok"
                         and h["workers"][0]["pid"] != before[0]["pid"], timeout_s=120)
    new = after["workers"][0]
    assert len(rows) == 10 and sum(r["status"] == "error" for r in rows) == 1
    later = [r for r in rows if r["t_send_unix"] > t_kill]
    assert later and all(r["status"] == "ok" for r in later)
    while_down = [r for r in later if r["server_t_start"] < new["started"]]
    assert all(r["worker"] == 1 for r in while_down)
    assert new["alive"] and new["in_rotation"] and new["placement_ok"]
    assert new["allowed_cpus"] == before[0]["allowed_cpus"]

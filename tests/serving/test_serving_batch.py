"""A batched worker (`coresweep serve --batch B`) behind HAProxy: B concurrent streamed requests
decoded together, each getting exactly the tokens it gets alone, in order, then [DONE]; more
requests than the batch all served (HAProxy sends the worker at most B); a client that
disconnects mid-batch leaves alone while the others finish; the deployment and every bad value
refused before anything starts. The engine's batch decoder itself: sequences joining and leaving
between steps generate what they generate alone."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
from test_serving import serve_cfg


def prompt(seed: int, length: int) -> list[int]:
    return [(seed * 37 + 11 * i) % 1900 + 20 for i in range(length)]


@pytest.fixture(scope="module")
def reference(tiny_int4):
    """Each prompt's tokens alone (the ort engine's batch-1 loop, in this process)."""
    from coresweep.engines import SessionConfig, make_engine

    engine = make_engine("ort", tiny_int4, SessionConfig(threads=1))
    engine.load()
    return lambda ids, n: engine.generate(ids, n).tokens


def test_decoder_sequences_joining_and_leaving_match_batch_one(tiny_int4, reference):
    from coresweep.engines import SessionConfig, make_engine

    engine = make_engine("ort", tiny_int4, SessionConfig(threads=1))
    dec = engine.batch_decoder(3)
    jobs = [(prompt(s, n), g) for s, (n, g) in enumerate([(20, 12), (33, 5), (7, 30), (50, 9),
                                                          (12, 15), (70, 3), (5, 40)])]
    waiting, out, of = list(range(len(jobs))), {}, {}
    step = 0
    while waiting or dec.active:
        while waiting and dec.active < 3 and step % 2 == 0:  # join every other step
            i = waiting.pop(0)
            seq, tok = dec.admit(*jobs[i])
            of[seq], out[i] = i, [tok]
        step += 1
        for seq, tok in dec.step().items():
            out[of[seq]].append(tok)
            if len(out[of[seq]]) == jobs[of[seq]][1]:
                dec.release(seq)
    assert all(out[i] == reference(*jobs[i]) for i in range(len(jobs)))
    assert dec.capacity >= 70 + 3


def _stream(url: str, ids: list[int], n: int, stop_after: int | None = None) -> dict:
    """One streamed completion: its tokens in arrival order, the final timing, whether [DONE]
    came; with ``stop_after`` the client leaves after that many events."""
    import httpx

    out = {"tokens": [], "done": False, "timing": None}
    body = {"prompt": ids, "max_tokens": n, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as r:
        out["status"] = r.status_code
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                out["done"] = True
                break
            ev = json.loads(data)
            out["tokens"] += ev["choices"][0].get("token_ids", [])
            out["timing"] = ev.get("coresweep", out["timing"])
            if stop_after is not None and len(out["tokens"]) >= stop_after:
                break
    return out


def _together(url: str, reqs: list[tuple]) -> list[dict]:
    results: list = [None] * len(reqs)

    def go(i: int) -> None:
        results[i] = _stream(url, *reqs[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return results


@pytest.fixture(scope="module")
def batched(tiny_int4, tmp_path_factory):
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(tiny_int4, tmp_path_factory.mktemp("batched"), workers=1, batch=3,
                    batch_window_s=0.3)
    with ServerProcess(cfg, ready_timeout_s=120) as srv:
        yield srv


def test_b_concurrent_requests_are_decoded_together_each_its_own_tokens(batched, reference):
    reqs = [(prompt(1, 20), 24), (prompt(2, 41), 16), (prompt(3, 9), 30)]
    results = _together(batched.url, reqs)
    for (ids, n), r in zip(reqs, results, strict=True):
        assert r["status"] == 200 and r["done"], r
        assert r["tokens"] == reference(ids, n)
    assert max(r["timing"]["batch"] for r in results) == 3  # decoded together, not in turn
    h = batched.health()
    assert h["workers"][0]["batch"] == 3 and h["workers"][0]["state"] == "idle"


def test_more_requests_than_the_batch_are_all_served(batched, reference):
    reqs = [(prompt(10 + i, 12 + 3 * i), 10 + i) for i in range(7)]
    results = _together(batched.url, reqs)
    for (ids, n), r in zip(reqs, results, strict=True):
        assert r["done"] and r["tokens"] == reference(ids, n)
    assert all(r["timing"]["batch"] <= 3 for r in results)  # HAProxy: maxconn 3 per worker


def test_openai_sdk_reads_a_batched_answer(batched, reference):
    import openai

    client = openai.OpenAI(base_url=f"{batched.url}/v1", api_key="unused")
    done = client.completions.create(model="m", prompt=prompt(5, 16), max_tokens=6)
    assert done.choices[0].token_ids == reference(prompt(5, 16), 6)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_client_that_disconnects_mid_batch_leaves_alone(small_int4, tmp_path):
    """On the 0.5B preset (tens of ms per step): one of three streams leaves after 3 tokens;
    the two others finish with every token, and the worker is idle at once after them."""
    from coresweep.engines import SessionConfig, make_engine
    from coresweep.serving.server import ServerProcess

    cfg = serve_cfg(small_int4, tmp_path, workers=1, batch=3, batch_window_s=0.5,
                    request_timeout_s=60)
    keep = [(prompt(21, 24), 40), (prompt(22, 30), 40)]
    with ServerProcess(cfg, ready_timeout_s=240) as srv:
        results = _together(srv.url, [*keep, (prompt(23, 16), 3000, 3)])
        h = srv.health()
        left = time.monotonic()
        while h["workers"][0]["state"] != "idle" and time.monotonic() - left < 10:
            time.sleep(0.1)
            h = srv.health()
    assert h["workers"][0]["state"] == "idle" and h["workers"][0]["active"] == 0
    gone = results[2]
    assert len(gone["tokens"]) == 3 and not gone["done"]
    engine = make_engine("ort", small_int4, SessionConfig(threads=1))
    for (ids, n), r in zip(keep, results[:2], strict=True):
        assert r["done"] and r["tokens"] == engine.generate(ids, n).tokens
    assert max(r["timing"]["batch"] for r in results[:2]) >= 2  # they shared a batch


def test_batched_deployment_sends_a_worker_up_to_its_batch(tmp_path):
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.deploy import deployment_files

    cfg = ServeConfig(model_dir="/models/m", workers=1, threads=2, slices=[[0, 1]], batch=4,
                      state_dir=str(tmp_path))
    files = deployment_files(cfg)
    assert "default-server maxconn 4 check" in files["haproxy.cfg"]
    assert "each decoding up to 4 requests together" in files["gunicorn.conf.py"]
    ns: dict = {}
    exec(compile(files["gunicorn.conf.py"], "gunicorn.conf.py", "exec"), ns)
    assert ns["PLAN"]["batch"] == 4 and ns["PLAN"]["batching"] == "continuous"


@pytest.mark.parametrize("kw,message", [
    ({"batch": 0}, "batch (--batch) must be a whole number >= 1"),
    ({"batching": "dynamic"}, "valid choices: continuous, static"),
    ({"batch": 2, "dispatch": "prefork"}, "valid dispatches with a batch: haproxy"),
    ({"batch": 2, "runtime": "genai"}, "runtime 'genai' cannot serve batches of requests"),
    ({"batch_window_s": -1.0}, "--batch-window) must be 0 or more"),
])
def test_bad_batch_values_are_refused_before_any_start(kw, message):
    from coresweep.errors import CoresweepError
    from coresweep.serving.config import ServeConfig

    cfg = ServeConfig(model_dir="/m", workers=1, threads=1, slices=None, **kw)
    with pytest.raises(CoresweepError) as err:
        cfg.check()
    assert message in str(err.value)


@pytest.mark.parametrize("flags,message", [
    (["--batch", "0"], "batch (--batch) must be a whole number >= 1"),
    (["--batch", "x"], "argument --batch: 'x' is not a whole number"),
    (["--batching", "dynamic"], "invalid choice: 'dynamic'"),
    (["--batch", "4", "--runtime", "genai"], "runtime 'genai' cannot serve batches"),
])
def test_serve_refuses_bad_batch_flags_in_one_line(flags, message, capsys):
    from coresweep.cli import main

    try:
        rc = main(["serve", "--model", "tiny", *flags])
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and message in err, err

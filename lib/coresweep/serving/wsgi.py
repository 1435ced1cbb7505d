"""The pre-fork candidate's app: the same completions API as WSGI, for gunicorn's sync workers.

A sync worker accepts a connection only when it has finished the previous one, so on a shared
socket only an idle worker takes a request and the rest wait in the kernel's listen backlog
(gunicorn's classic design). Measured against HAProxy dispatch by bench/serving_dispatch.py; the
study's default is HAProxy (docs/architecture.md, "Serving: dispatch" says why). One request
at a time per process, so /health waits while this worker generates.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import HTTPException

from coresweep.serving import health
from coresweep.serving.app import Model, chunk, completion_body, error_event, token_callback
from coresweep.serving.config import SLOT_ENV, ServeConfig

_END = object()


class PreforkWorker:
    def __init__(self, cfg: ServeConfig, slot: int):
        self.cfg, self.slot, self.model, self.served = cfg, slot, Model(cfg), 0
        self.started = time.time()
        self.report("idle")

    def report(self, state: str) -> None:
        health.report_worker(self.cfg, self.slot, {
            "load_s": self.model.load_s, "started": self.started, "state": state, "waiting": 0,
            "served": self.served})

    def tokens(self, ids: list[int], n: int, timing: dict[str, float]) -> Iterator[Any]:
        """Generate in a helper thread; yield each token, then _END or the exception. Closing
        the iterator (the client left) stops the generation at the next token."""
        q: queue.Queue = queue.Queue()
        stop = threading.Event()
        on_token = token_callback(stop, time.monotonic() + self.cfg.request_timeout_s, q.put)

        def run() -> None:
            try:
                self.model.engine.generate(ids, n, on_token=on_token)
                q.put(_END)
            except Exception as exc:  # handed to the response, which says why it stopped
                q.put(exc)

        timing["t_start"] = time.time()
        self.report("busy")
        thread = threading.Thread(target=run, name="coresweep-gen", daemon=True)
        thread.start()
        try:
            while (item := q.get()) is not _END and not isinstance(item, Exception):
                yield item
            yield item
        finally:
            stop.set()
            thread.join()
            timing["t_end"] = time.time()
            self.served += 1
            self.report("idle")


def _stream(w: PreforkWorker, ids: list[int], n: int, rid: str,
            timing: dict[str, float]) -> Iterator[bytes]:
    for item in w.tokens(ids, n, timing):
        if isinstance(item, Exception):
            yield error_event(504, f"generation stopped: {item}", "timeout").encode()
            return
        if item is _END:
            break
        yield chunk(rid, w.model.name, w.model.text([item]), item, None).encode()
    yield chunk(rid, w.model.name, "", None, "length", timing).encode()
    yield b"data: [DONE]\n\n"


def _json(start: Callable, status: str, body: dict, extra: list | None = None) -> list[bytes]:
    start(status, [("content-type", "application/json"), *(extra or [])])
    return [json.dumps(body).encode()]


def create_app(config: ServeConfig | None = None) -> Callable:
    """The WSGI app of one sync worker (the model loads here: after fork, in the pinned worker)."""
    cfg = config or ServeConfig.read()
    w = PreforkWorker(cfg, int(os.environ.get(SLOT_ENV, "0")))

    def app(environ: dict, start: Callable) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if method == "GET" and path == "/ping":
            return _json(start, "200 OK", {"ok": True})
        if method == "GET" and path == "/health":
            return _json(start, "200 OK", health.describe(cfg))
        if method != "POST" or path != "/v1/completions":
            return _json(start, "404 Not Found", {"detail": "not found"})
        try:
            return _completion(w, environ, start)
        except HTTPException as exc:
            return _json(start, f"{exc.status_code} Error", {"detail": exc.detail})

    return app


def _completion(w: PreforkWorker, environ: dict, start: Callable) -> Any:
    timing = {"t_received": time.time(), "worker": w.slot, "pid": os.getpid()}
    size = int(environ.get("CONTENT_LENGTH") or 0)
    req = json.loads(environ["wsgi.input"].read(size) or b"{}")
    if "prompt" not in req or int(req.get("max_tokens", 16)) < 1:
        raise HTTPException(422, "a prompt and max_tokens >= 1 are needed")
    ids, n = w.model.prompt_ids(req["prompt"]), int(req.get("max_tokens", 16))
    w.model.check_fits(ids, n)
    rid = f"cmpl-{uuid.uuid4().hex[:16]}"
    headers = [("x-coresweep-worker", str(w.slot)), ("x-coresweep-pid", str(os.getpid()))]
    if req.get("stream"):
        start("200 OK", [("content-type", "text/event-stream"), *headers])
        return _stream(w, ids, n, rid, timing)
    items = list(w.tokens(ids, n, timing))
    if isinstance(items[-1], Exception):
        raise HTTPException(504, f"generation stopped: {items[-1]}")
    return _json(start, "200 OK", completion_body(rid, w.model, ids, items[:-1], timing), headers)

"""The FastAPI app one worker serves: OpenAI-compatible ``POST /v1/completions`` (greedy; text or
token-id prompts; ``stream: true`` sends one Server-Sent Event per token, then ``data: [DONE]``),
``GET /health`` describing every worker of the server (read back from /proc, with each worker's
state and the queue), and ``GET /ping`` for the dispatcher's health check.

One generation at a time per worker (``batch`` 1): a request waits for the worker's engine (at
most ``request_timeout_s``), and the generation runs in one dedicated thread so the event loop
keeps streaming and answering. With ``batch`` B > 1 the worker decodes up to B requests together
(:mod:`coresweep.serving.batcher`: static or continuous batching), each streaming its own
tokens. The worker counts as busy exactly while its engine runs: a client that
disconnects stops its generation at the next token (``on_token`` raises), and only then is the
worker idle again. Every completion ends with the server's timing of it (``coresweep``: when the
worker received it, started and ended its generation, as Unix times) for the load generator.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from coresweep.serving import health
from coresweep.serving.config import SLOT_ENV, ServeConfig


class CompletionRequest(BaseModel):
    """The fields coresweep honours; others (temperature, top_p, ...) are accepted and ignored:
    decoding is greedy and exactly ``max_tokens`` long (end-of-sequence ignored)."""

    model_config = ConfigDict(extra="ignore")
    prompt: str | list[int] = Field(description="text, or a list of token ids")
    max_tokens: int = Field(16, gt=0)
    stream: bool = False
    model: str | None = None


class GenerationStopped(Exception):
    """Raised from the token callback: the client went away, or the request ran out of time."""


class Model:
    """This process's engine and tokenizer (shared by the ASGI and the pre-fork WSGI app)."""

    def __init__(self, cfg: ServeConfig):
        from coresweep.engines import SessionConfig, make_engine
        from coresweep.models import inspect_model

        self.cfg = cfg
        self.info = inspect_model(cfg.model_dir)
        self.engine = make_engine(cfg.runtime, cfg.model_dir, SessionConfig(threads=cfg.threads))
        self.load_s = self.engine.load()
        self.tokenizer = _tokenizer(self.info)
        self.name = cfg.model_name or os.path.basename(str(cfg.model_dir).rstrip("/"))

    def prompt_ids(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            return [int(t) for t in prompt]
        if self.tokenizer is None:
            raise HTTPException(400, f"model {self.name} has no tokenizer: send the prompt as a "
                                     "list of token ids")
        return [int(t) for t in self.tokenizer.encode(prompt)]

    def check_fits(self, ids: list[int], max_tokens: int) -> None:
        ctx = self.info.max_context
        if not ids:
            raise HTTPException(400, "the prompt is empty; send at least one token")
        if ctx and len(ids) + max_tokens > ctx:
            raise HTTPException(400, f"prompt of {len(ids)} tokens + max_tokens {max_tokens} "
                                     f"exceeds the model's context of {ctx} tokens")

    def text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens) if self.tokenizer is not None else ""


def _tokenizer(info: Any) -> Any:
    if not info.tokenizer_dir:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(info.tokenizer_dir, local_files_only=True)


def token_callback(stop: threading.Event, deadline: float,
                   emit: Callable[[int], None]) -> Callable[[int], None]:
    """The engine's ``on_token``: stops the generation at the next token once ``stop`` is set or
    the deadline (time.monotonic) has passed."""

    def on_token(tok: int) -> None:
        if stop.is_set():
            raise GenerationStopped("the client disconnected")
        if time.monotonic() > deadline:
            raise GenerationStopped("request_timeout_s ran out")
        emit(tok)

    return on_token


def chunk(rid: str, name: str, text: str, token: int | None, finish: str | None,
          timing: dict[str, float] | None = None) -> str:
    body: dict[str, Any] = {
        "id": rid, "object": "text_completion", "created": int(time.time()), "model": name,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                     "token_ids": [] if token is None else [token]}]}
    if timing is not None:
        body["coresweep"] = timing
    return f"data: {json.dumps(body)}\n\n"


def error_event(status: int, message: str, kind: str) -> str:
    """An SSE error after the stream began (its status is already 200): the openai SDK raises."""
    return f"data: {json.dumps({'error': {'message': message, 'type': kind, 'code': status}})}\n\n"


def completion_body(rid: str, m: Model, ids: list[int], tokens: list[int],
                    timing: dict[str, float]) -> dict[str, Any]:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": m.name,
            "choices": [{"index": 0, "text": m.text(tokens), "logprobs": None,
                         "finish_reason": "length", "token_ids": tokens}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(tokens),
                      "total_tokens": len(ids) + len(tokens)}, "coresweep": timing}


class Worker:
    """The model of this worker process, the lock that serialises generations, and the state
    (idle/busy, waiting, served) it reports for /health."""

    def __init__(self, cfg: ServeConfig, slot: int):
        self.model = Model(cfg)
        self.cfg, self.slot = cfg, slot
        self.lock = asyncio.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coresweep-gen")
        self.waiting = self.served = 0
        self.busy = False
        self.started = time.time()  # model loaded: from now on it serves
        self.report()

    def report(self) -> None:
        health.report_worker(self.cfg, self.slot, {
            "load_s": self.model.load_s, "started": self.started,
            "state": "busy" if self.busy else "idle", "waiting": self.waiting,
            "served": self.served})

    async def start(self, ids: list[int], n: int, emit: Callable[[int], None],
                    stop: threading.Event, timing: dict[str, float]) -> asyncio.Future:
        """Wait for the engine (TimeoutError past the request's deadline), start generating in
        the engine thread and return its future; the worker is released when the engine ends."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.cfg.request_timeout_s
        self.waiting += 1
        self.report()
        try:
            await asyncio.wait_for(self.lock.acquire(), self.cfg.request_timeout_s)
        finally:
            self.waiting -= 1
        timing["t_start"] = time.time()
        self.busy = True
        self.report()
        on_token = token_callback(stop, deadline, emit)
        fut = loop.run_in_executor(self.pool, lambda: self.model.engine.generate(
            ids, n, on_token=on_token))
        fut.add_done_callback(lambda _: self._release(timing))
        return fut

    def _release(self, timing: dict[str, float]) -> None:
        timing["t_end"] = time.time()
        self.busy = False
        self.served += 1
        self.lock.release()
        self.report()

    def close(self) -> None:
        self.pool.shutdown(wait=False)


class BatchWorker(Worker):
    """A worker that decodes up to ``cfg.batch`` requests together (serving.batcher): each
    request's tokens stream as its rows of the batch produce them."""

    def __init__(self, cfg: ServeConfig, slot: int):
        from coresweep.serving.batcher import Batcher

        self.model = Model(cfg)
        self.cfg, self.slot = cfg, slot
        self.waiting = self.served = self.active = 0
        self.busy = False
        self.started = time.time()
        self.batcher = Batcher(lambda: self.model.engine.batch_decoder(cfg.batch), cfg.batch,
                               policy=cfg.batching, window_s=cfg.batch_window_s,
                               on_change=self._changed)
        self.report()

    def _changed(self, active: int, waiting: int) -> None:
        self.active, self.waiting, self.busy = active, waiting, active > 0
        self.served = self.batcher.served
        self.report()

    def report(self) -> None:
        health.report_worker(self.cfg, self.slot, {
            "load_s": self.model.load_s, "started": self.started,
            "state": "busy" if self.busy else "idle", "waiting": self.waiting,
            "served": self.served, "active": self.active, "batch": self.cfg.batch})

    async def start(self, ids: list[int], n: int, emit: Callable[[int], None],
                    stop: threading.Event, timing: dict[str, float]) -> asyncio.Future:
        """Queue the request for the batch; its future ends with its last token (or why it
        stopped: a deadline that passed while it waited included)."""
        from coresweep.serving.batcher import Job

        job = Job(ids, n, emit, stop, time.monotonic() + self.cfg.request_timeout_s, timing)
        return asyncio.wrap_future(self.batcher.submit(job))

    def close(self) -> None:
        self.batcher.close()


def headers_of(slot: int) -> dict[str, str]:
    return {"x-coresweep-worker": str(slot), "x-coresweep-pid": str(os.getpid())}


async def _stream(w: Worker, ids: list[int], n: int, rid: str,
                  timing: dict[str, float]) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()
    try:
        fut = await w.start(ids, n, lambda t: loop.call_soon_threadsafe(queue.put_nowait, t),
                            stop, timing)
    except TimeoutError:
        yield error_event(504, f"no worker free within {w.cfg.request_timeout_s:g} s", "timeout")
        return
    fut.add_done_callback(lambda _: queue.put_nowait(None))  # the end, however it came
    try:
        while (tok := await queue.get()) is not None:
            yield chunk(rid, w.model.name, w.model.text([tok]), tok, None)
    except BaseException:  # cancelled: the client disconnected
        stop.set()
        raise
    if fut.exception() is not None:
        yield error_event(504, f"generation stopped: {fut.exception()}", "timeout")
        return
    yield chunk(rid, w.model.name, "", None, "length", timing)
    yield "data: [DONE]\n\n"


async def _complete(w: Worker, request: Request, ids: list[int], n: int, rid: str,
                    timing: dict[str, float]) -> JSONResponse:
    """Non-streamed: the whole completion at once; a client that leaves still stops it."""
    stop = threading.Event()
    try:
        fut = await w.start(ids, n, lambda _: None, stop, timing)
    except TimeoutError:
        raise HTTPException(504, f"no worker free within {w.cfg.request_timeout_s:g} s") from None
    while not fut.done():
        await asyncio.wait({fut}, timeout=0.2)
        if not fut.done() and await request.is_disconnected():
            stop.set()
    if fut.exception() is not None:
        raise HTTPException(504, f"generation stopped: {fut.exception()}")
    body = completion_body(rid, w.model, ids, fut.result().tokens, timing)
    return JSONResponse(body, headers=headers_of(w.slot))


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The app of one worker process (gunicorn calls it after forking and pinning)."""
    cfg = config or ServeConfig.read()
    slot = int(os.environ.get(SLOT_ENV, "0"))
    state: dict[str, Worker] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # the model loads here: after fork, in the pinned worker
        state["w"] = (BatchWorker if cfg.batch > 1 else Worker)(cfg, slot)
        yield
        state["w"].close()

    app = FastAPI(title="coresweep serve", lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict:
        return {"ok": True}

    @app.get("/health")
    async def get_health() -> JSONResponse:
        return JSONResponse(health.describe(cfg))

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": state["w"].model.name, "object": "model"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> Any:
        w = state["w"]
        timing = {"t_received": time.time(), "worker": w.slot, "pid": os.getpid()}
        ids = w.model.prompt_ids(req.prompt)
        w.model.check_fits(ids, req.max_tokens)
        rid = f"cmpl-{uuid.uuid4().hex[:16]}"
        if req.stream:
            return StreamingResponse(_stream(w, ids, req.max_tokens, rid, timing),
                                     media_type="text/event-stream", headers=headers_of(w.slot))
        return await _complete(w, request, ids, req.max_tokens, rid, timing)

    return app

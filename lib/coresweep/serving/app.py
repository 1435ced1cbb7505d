"""The FastAPI app one worker serves: OpenAI-compatible ``POST /v1/completions`` (greedy; text or
token-id prompts; ``stream: true`` sends one Server-Sent Event per token, then ``data: [DONE]``)
and ``GET /health`` describing every worker of the server, read back from /proc.

One generation at a time per worker: requests queue on a lock (the wait shows in TTFT), and the
generation runs in one dedicated thread so the event loop keeps streaming.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
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


class Worker:
    """This process's engine, tokenizer and the lock that serialises generations."""

    def __init__(self, cfg: ServeConfig, slot: int):
        from coresweep.engines import SessionConfig, make_engine
        from coresweep.models import inspect_model

        self.cfg, self.slot = cfg, slot
        self.info = inspect_model(cfg.model_dir)
        self.engine = make_engine(cfg.engine, cfg.model_dir, SessionConfig(threads=cfg.threads))
        self.load_s = self.engine.load()
        self.tokenizer = _tokenizer(self.info)
        self.lock = asyncio.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coresweep-gen")
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

    def text(self, token: int) -> str:
        return self.tokenizer.decode([token]) if self.tokenizer is not None else ""


def _tokenizer(info: Any) -> Any:
    if not info.tokenizer_dir:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(info.tokenizer_dir, local_files_only=True)


def _chunk(rid: str, name: str, text: str, token: int | None, finish: str | None) -> str:
    body = {"id": rid, "object": "text_completion", "created": int(time.time()), "model": name,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish,
                         "token_ids": [] if token is None else [token]}]}
    return f"data: {json.dumps(body)}\n\n"


async def _stream(w: Worker, ids: list[int], n: int, rid: str) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = False

    def on_token(tok: int) -> None:
        if cancelled:  # the client went away: stop at the next token
            raise GenerationCancelled
        loop.call_soon_threadsafe(queue.put_nowait, tok)

    async with w.lock:
        future = loop.run_in_executor(w.pool, lambda: w.engine.generate(ids, n, on_token=on_token))
        try:
            for _ in range(n):
                tok = await queue.get()
                yield _chunk(rid, w.name, w.text(tok), tok, None)
            await future
        except BaseException:
            cancelled = True
            raise
    yield _chunk(rid, w.name, "", None, "length")
    yield "data: [DONE]\n\n"


class GenerationCancelled(Exception):
    """Raised from the token callback to stop a generation whose client disconnected."""


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """The app of one worker process (gunicorn calls it after forking and pinning)."""
    cfg = config or ServeConfig.read()
    slot = int(os.environ.get(SLOT_ENV, "0"))
    state: dict[str, Worker] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["w"] = Worker(cfg, slot)  # the model loads here: after fork, in the pinned worker
        health.report_worker(cfg, slot, state["w"].load_s)
        yield
        state["w"].pool.shutdown(wait=False)

    app = FastAPI(title="coresweep serve", lifespan=lifespan)

    @app.get("/health")
    async def get_health() -> JSONResponse:
        return JSONResponse(health.describe(cfg))

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": state["w"].name, "object": "model"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> Any:
        w = state["w"]
        ids = w.prompt_ids(req.prompt)
        w.check_fits(ids, req.max_tokens)
        rid = f"cmpl-{uuid.uuid4().hex[:16]}"
        headers = {"x-coresweep-worker": str(w.slot), "x-coresweep-pid": str(os.getpid())}
        if req.stream:
            return StreamingResponse(_stream(w, ids, req.max_tokens, rid),
                                     media_type="text/event-stream", headers=headers)
        async with w.lock:
            gen = await asyncio.get_running_loop().run_in_executor(
                w.pool, lambda: w.engine.generate(ids, req.max_tokens))
        text = w.tokenizer.decode(gen.tokens) if w.tokenizer is not None else ""
        return JSONResponse(headers=headers, content={
            "id": rid, "object": "text_completion", "created": int(time.time()), "model": w.name,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length",
                         "token_ids": gen.tokens}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(gen.tokens),
                      "total_tokens": len(ids) + len(gen.tokens)}})

    return app

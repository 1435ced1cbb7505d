"""Load generator: asyncio + httpx (+ httpx-sse) against a server's OpenAI completions API, with
streaming, so every token's arrival is timed at the client.

- ``closed_loop``: ``concurrency`` clients, each sending its next request when the previous one
  ends (the usual "concurrent users" level);
- ``open_loop``: requests arrive as a Poisson process of ``rate`` per second, whatever the server
  does (queueing shows in TTFT).

Both are bounded in requests and in time, and refuse any address but loopback. One row per
request: TTFT (first streamed token), end-to-end, tokens, status, the worker that served it; and
the inter-token latencies of every request.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlparse

from coresweep.errors import CoresweepError
from coresweep.serving.config import is_loopback

MAX_REQUESTS = 10_000  # per level: a bound, never a target


def check_target(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not is_loopback(host):
        raise CoresweepError(f"load target {url!r} is not a loopback address: coresweep sends "
                             "load only to 127.0.0.0/8, ::1 or localhost")


def _check_bounds(n_requests: int, time_limit_s: float) -> None:
    if not 1 <= n_requests <= MAX_REQUESTS:
        raise CoresweepError(f"n_requests must be 1..{MAX_REQUESTS}, got {n_requests}")
    if not 0 < time_limit_s <= 3600:
        raise CoresweepError(f"time_limit_s must be in (0, 3600], got {time_limit_s}")


async def one_request(client: Any, url: str, payload: dict[str, Any], t0: float,
                      request_id: int) -> dict[str, Any]:
    """Send one streaming completion; time its tokens as they arrive."""
    from httpx_sse import aconnect_sse

    sent = time.perf_counter()
    arrivals: list[float] = []
    row: dict[str, Any] = {"request_id": request_id, "t_send_s": sent - t0, "status": "ok",
                           "error": "", "worker": -1, "pid": -1}
    try:
        async with aconnect_sse(client, "POST", f"{url}/v1/completions", json=payload) as es:
            if es.response.status_code != 200:
                body = (await es.response.aread()).decode(errors="replace")
                return _finish(row, sent, arrivals, "error", f"HTTP {es.response.status_code}: "
                               f"{body[:200]}")
            row["worker"] = int(es.response.headers.get("x-coresweep-worker", -1))
            row["pid"] = int(es.response.headers.get("x-coresweep-pid", -1))
            async for sse in es.aiter_sse():
                if sse.data == "[DONE]":
                    break
                if json.loads(sse.data)["choices"][0].get("finish_reason") is None:
                    arrivals.append(time.perf_counter())
    except Exception as exc:  # a dead worker, a reset connection: recorded, never raised
        return _finish(row, sent, arrivals, "error", f"{type(exc).__name__}: {exc}"[:300])
    status = "ok" if len(arrivals) == payload["max_tokens"] else "error"
    why = "" if status == "ok" else f"{len(arrivals)} of {payload['max_tokens']} tokens"
    return _finish(row, sent, arrivals, status, why)


def _finish(row: dict[str, Any], sent: float, arrivals: list[float], status: str,
            error: str) -> dict[str, Any]:
    end = time.perf_counter()
    itl = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    row.update(status=status, error=error, n_tokens=len(arrivals), e2e_s=end - sent,
               ttft_s=(arrivals[0] - sent) if arrivals else float("nan"), itl_s=itl)
    return row


def _client(concurrency: int, timeout_s: float) -> Any:
    import httpx

    # a new connection per request, as independent users make: a kept-alive connection would
    # stay with the worker that accepted it, whatever that worker's queue
    limits = httpx.Limits(max_connections=concurrency + 1, max_keepalive_connections=0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s))


async def _closed(url: str, concurrency: int, n_requests: int, payload: dict[str, Any],
                  time_limit_s: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    next_id = iter(range(n_requests))

    async def user(client: Any) -> None:
        for rid in next_id:  # shared iterator: n_requests in all
            if time.perf_counter() - t0 > time_limit_s:
                return
            rows.append(await one_request(client, url, payload, t0, rid))

    async with _client(concurrency, time_limit_s) as client:
        await asyncio.wait_for(asyncio.gather(*(user(client) for _ in range(concurrency))),
                               timeout=time_limit_s + 60)
    return rows


async def _open(url: str, rate: float, n_requests: int, payload: dict[str, Any],
                time_limit_s: float, seed: int) -> list[dict[str, Any]]:
    import numpy as np

    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n_requests)
    t0 = time.perf_counter()
    async with _client(min(n_requests, 256), time_limit_s) as client:
        tasks = []
        for rid, at in enumerate(np.cumsum(gaps)):
            if at > time_limit_s:
                break
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
            tasks.append(asyncio.create_task(one_request(client, url, payload, t0, rid)))
        return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=time_limit_s + 60))


def run_level(url: str, *, mode: str, level: float, n_requests: int, prompt: list[int] | str,
              max_tokens: int, time_limit_s: float = 120.0, seed: int = 0) -> list[dict]:
    """One load level: ``mode`` "closed" (level = concurrency) or "open" (level = requests/s).
    Returns one row per request (``itl_s``: that request's inter-token latencies)."""
    check_target(url)
    _check_bounds(n_requests, time_limit_s)
    payload = {"prompt": prompt, "max_tokens": int(max_tokens), "stream": True}
    if mode == "closed":
        coro = _closed(url, int(level), n_requests, payload, time_limit_s)
    elif mode == "open":
        coro = _open(url, float(level), n_requests, payload, time_limit_s, seed)
    else:
        raise CoresweepError(f"unknown load mode {mode!r}; valid modes: closed, open")
    return _run(coro)


def _run(coro: Any) -> Any:
    """asyncio.run, also from a notebook (whose kernel already runs an event loop: then the load
    gets a thread and a loop of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="coresweep-load") as pool:
        return pool.submit(asyncio.run, coro).result()

"""Load generator: asyncio + httpx (+ httpx-sse) against a server's OpenAI completions API, with
streaming, so every token's arrival is timed at the client.

- ``closed_loop``: ``concurrency`` users, each sending its next request when the previous one
  ends (the usual "concurrent users" level; several rounds per user);
- ``rounds``: ``concurrency`` requests sent together, all awaited, again (the dispatch bench);
- ``open_loop``: requests arrive as a Poisson process of ``rate`` per second, whatever the server
  does (queueing shows in TTFT).

``connection``: "new" opens a connection per request (independent users); "keep-alive" gives each
user one connection it keeps (a client library's pool), which a dispatcher must still balance
request by request. All are bounded in requests and in time, and refuse any address but loopback.
One row per request: TTFT (first streamed token), end-to-end, tokens, status ("ok", "rejected"
for a 503 from a full queue, "error"), the worker that served it, and the server's own timing
(when the worker started and ended the generation, Unix time) from the stream's last event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from coresweep.errors import CoresweepError
from coresweep.serving.config import is_loopback

MAX_REQUESTS = 10_000  # per level: a bound, never a target
CONNECTIONS = ("new", "keep-alive")
SERVER_TIMES = ("t_received", "t_start", "t_end")  # the worker's clock (Unix time)


def check_target(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not is_loopback(host):
        raise CoresweepError(f"load target {url!r} is not a loopback address: coresweep sends "
                             "load only to 127.0.0.0/8, ::1 or localhost")


def _check_bounds(n_requests: int, time_limit_s: float, connection: str) -> None:
    if not 1 <= n_requests <= MAX_REQUESTS:
        raise CoresweepError(f"n_requests must be 1..{MAX_REQUESTS}, got {n_requests}")
    if not 0 < time_limit_s <= 3600:
        raise CoresweepError(f"time_limit_s must be in (0, 3600], got {time_limit_s}")
    if connection not in CONNECTIONS:
        raise CoresweepError(f"connection {connection!r} is not known; valid choices: "
                             f"{', '.join(CONNECTIONS)}")


async def one_request(client: Any, url: str, payload: dict[str, Any], t0: float,
                      request_id: int, user: int = 0) -> dict[str, Any]:
    """Send one streaming completion; time its tokens as they arrive."""
    from httpx_sse import aconnect_sse

    sent = time.perf_counter()
    arrivals: list[float] = []
    row: dict[str, Any] = {"request_id": request_id, "user": user, "t_send_s": sent - t0,
                           "t_send_unix": time.time(), "status": "ok", "error": "",
                           "http_status": 0, "retry_after": "", "worker": -1, "pid": -1,
                           **{f"server_{k}": float("nan") for k in SERVER_TIMES}}
    try:
        async with aconnect_sse(client, "POST", f"{url}/v1/completions", json=payload) as es:
            row["http_status"] = es.response.status_code
            if es.response.status_code != 200:
                body = (await es.response.aread()).decode(errors="replace")
                row["retry_after"] = es.response.headers.get("retry-after", "")
                status = "rejected" if es.response.status_code == 503 else "error"
                return _finish(row, sent, arrivals, status, f"HTTP {es.response.status_code}: "
                               f"{body[:200]}")
            row["worker"] = int(es.response.headers.get("x-coresweep-worker", -1))
            row["pid"] = int(es.response.headers.get("x-coresweep-pid", -1))
            async for sse in es.aiter_sse():
                if sse.data == "[DONE]":
                    break
                _event(row, json.loads(sse.data), arrivals)
    except Exception as exc:  # a dead worker, a reset connection: recorded, never raised
        return _finish(row, sent, arrivals, "error", f"{type(exc).__name__}: {exc}"[:300])
    if row["error"]:
        return _finish(row, sent, arrivals, "error", row["error"])
    status = "ok" if len(arrivals) == payload["max_tokens"] else "error"
    why = "" if status == "ok" else f"{len(arrivals)} of {payload['max_tokens']} tokens"
    return _finish(row, sent, arrivals, status, why)


def _event(row: dict[str, Any], body: dict[str, Any], arrivals: list[float]) -> None:
    if "error" in body:  # the server stopped the stream (timeout) and said why
        row["error"] = str(body["error"].get("message", body["error"]))[:300]
        return
    if body["choices"][0].get("finish_reason") is None:
        arrivals.append(time.perf_counter())
    for k in SERVER_TIMES:
        if k in body.get("coresweep", {}):
            row[f"server_{k}"] = float(body["coresweep"][k])


def _finish(row: dict[str, Any], sent: float, arrivals: list[float], status: str,
            error: str) -> dict[str, Any]:
    end = time.perf_counter()
    itl = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    row.update(status=status, error=error, n_tokens=len(arrivals), e2e_s=end - sent,
               ttft_s=(arrivals[0] - sent) if arrivals else float("nan"), itl_s=itl)
    return row


def _client(connections: int, timeout_s: float, keep_alive: bool) -> Any:
    import httpx

    # "new": no connection is kept, so each request is a new connection, as independent users
    # make; "keep-alive": the connection stays open for the user's next request
    limits = httpx.Limits(max_connections=connections,
                          max_keepalive_connections=connections if keep_alive else 0)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s))


class _Users:
    """One httpx client per user with keep-alive (its own connection), else one shared client."""

    def __init__(self, n: int, timeout_s: float, connection: str):
        keep = connection == "keep-alive"
        self.clients = [_client(1, timeout_s, True) for _ in range(n)] if keep \
            else [_client(n + 1, timeout_s, False)]

    def of(self, user: int) -> Any:
        return self.clients[user % len(self.clients)]

    async def __aenter__(self) -> _Users:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for c in self.clients:
            await c.aclose()


async def _closed(url: str, concurrency: int, n_requests: int, payload: dict[str, Any],
                  time_limit_s: float, connection: str,
                  enough: Callable[[list], bool] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    next_id = iter(range(n_requests))

    async def user(users: _Users, u: int) -> None:
        for rid in next_id:  # shared iterator: n_requests at most
            if time.perf_counter() - t0 > time_limit_s or (enough and enough(rows)):
                return
            rows.append(await one_request(users.of(u), url, payload, t0, rid, u))

    async with _Users(concurrency, time_limit_s, connection) as users:
        await asyncio.wait_for(asyncio.gather(*(user(users, u) for u in range(concurrency))),
                               timeout=time_limit_s + 60)
    return rows


async def _rounds(url: str, concurrency: int, n_rounds: int, payload: dict[str, Any],
                  time_limit_s: float, connection: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    async with _Users(concurrency, time_limit_s, connection) as users:
        for r in range(n_rounds):
            if time.perf_counter() - t0 > time_limit_s:
                break
            batch = await asyncio.wait_for(asyncio.gather(*(
                one_request(users.of(u), url, payload, t0, r * concurrency + u, u)
                for u in range(concurrency))), timeout=time_limit_s + 60)
            rows += [{**row, "round": r} for row in batch]
    return rows


async def _open(url: str, rate: float, n_requests: int, payload: dict[str, Any],
                time_limit_s: float, seed: int, connection: str) -> list[dict[str, Any]]:
    import numpy as np

    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=n_requests)
    t0 = time.perf_counter()
    async with _Users(min(n_requests, 256), time_limit_s, connection) as users:
        tasks = []
        for rid, at in enumerate(np.cumsum(gaps)):
            if at > time_limit_s:
                break
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
            tasks.append(asyncio.create_task(one_request(users.of(rid), url, payload, t0, rid,
                                                         rid)))
        return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=time_limit_s + 60))


def run_level(url: str, *, mode: str, level: float, n_requests: int, prompt: list[int] | str,
              max_tokens: int, time_limit_s: float = 120.0, seed: int = 0,
              connection: str = "new", enough: Callable[[list], bool] | None = None
              ) -> list[dict]:
    """One load level: ``mode`` "closed" (level = concurrency), "rounds" (level = requests per
    round; ``n_requests`` rounds of them) or "open" (level = requests/s). Returns one row per
    request (``itl_s``: that request's inter-token latencies). A closed loop sends at most
    ``n_requests``, and stops earlier once ``enough(rows so far)`` says so."""
    check_target(url)
    _check_bounds(n_requests, time_limit_s, connection)
    payload = {"prompt": prompt, "max_tokens": int(max_tokens), "stream": True}
    if mode == "closed":
        coro = _closed(url, int(level), n_requests, payload, time_limit_s, connection, enough)
    elif mode == "rounds":
        coro = _rounds(url, int(level), n_requests, payload, time_limit_s, connection)
    elif mode == "open":
        coro = _open(url, float(level), n_requests, payload, time_limit_s, seed, connection)
    else:
        raise CoresweepError(f"unknown load mode {mode!r}; valid modes: closed, rounds, open")
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

"""The serving sweep: per plan, start the server, check every worker's placement, warm it up, run
the load levels (closed-loop concurrency, then open-loop Poisson rates at fractions of the plan's
peak request rate), sample per-CPU utilisation, and store one unit per (plan, level).

Units are written atomically and resumed like trials: a unit is complete when its
``serve_requests`` part exists; the sweep holds the run folder's lock and refuses a folder of a
newer result schema, as a trial sweep does. A plan whose server fails to start (HAProxy missing,
a model that does not load), or a level that fails, is recorded in ``serve_failures`` and the
sweep goes on. `estimate_level_s` says how long a level will take, for the time budget
(coresweep.report.budget).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coresweep.errors import CoresweepError
from coresweep.serving.plan import ServePlan

TABLES = ("serve_itl", "serve_samples", "serve_workers", "serve_requests")  # requests LAST


@dataclass
class Load:
    """What every level sends, how many requests a level runs, and its bounds.

    A closed-loop level runs at least ``requests_per_level`` requests and ``rounds_per_user``
    per user; with ``max_requests_per_level`` above that it goes on until the p50 and p99 TTFT
    intervals are within ± ``ttft_ci_target`` (or the cap, or ``level_timeout_s``)."""

    prompt: list[int] | str
    max_tokens: int
    concurrency: list[int]
    poisson_load: list[float]  # fractions of the plan's peak closed-loop request rate
    requests_per_level: int = 20
    level_timeout_s: float = 300.0
    rounds_per_user: int = 3
    max_requests_per_level: int = 0  # 0: exactly the minimum
    ttft_ci_target: float = 0.10
    connection: str = "new"  # load.CONNECTIONS
    max_queue: int = 64  # the dispatcher's bounded queue (a 503 beyond it is recorded)
    warmup: int = 1  # warm-up requests per worker, untimed
    sample_interval_s: float = 0.1

    def n_requests(self, mode: str, level: float) -> int:
        """The fewest requests the level runs."""
        if mode == "closed":
            return max(self.requests_per_level, self.rounds_per_user * int(level))
        return self.requests_per_level

    def cap(self, mode: str, level: float) -> int:
        """The most requests the level runs (an open-loop level runs exactly its fewest)."""
        if mode != "closed":
            return self.n_requests(mode, level)
        return max(self.n_requests(mode, level), self.max_requests_per_level)

    def enough(self, mode: str, level: float) -> Any:
        """rows → True once the level has what it reports (see the class)."""
        from coresweep.analysis.serving import ttft_intervals_within

        least = self.n_requests(mode, level)

        def done(rows: list[dict]) -> bool:
            if len(rows) < least:
                return False
            ok = [r["ttft_s"] for r in rows if r["status"] == "ok"]
            return ttft_intervals_within(ok, self.ttft_ci_target)

        return done


def estimate_level_s(load: Load, plan: ServePlan, mode: str, level: float,
                     per_request_s: float) -> float:
    """Expected wall time of one level at its request cap, given ``per_request_s``: the time
    one request takes on one worker of this plan at that level (TTFT + the other tokens at its
    decode rate). The plan runs workers × batch requests at once. Closed loop: requests /
    min(those, users) in parallel; open loop at ``level`` as a fraction of the plan's peak rate
    (those / per_request_s)."""
    n = load.cap(mode, level)
    streams = plan.workers * plan.batch
    if mode == "open":
        return n * per_request_s / (level * streams)
    return n * per_request_s / max(1, min(streams, int(level)))


def unit_name(plan: ServePlan, mode: str, level: float) -> str:
    """The one name of a (plan, level) unit's files."""
    return f"{plan.key()}__{mode}{level:g}"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (held together while chosen)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def _plan_columns(plan: ServePlan) -> dict[str, Any]:
    return {"plan_key": plan.key(), "plan": plan.label, "dispatch": plan.dispatch,
            "workers": plan.workers, "threads": -1 if plan.threads is None else plan.threads,
            "pinned": plan.pinned, "batch": plan.batch,
            **{f"role_{k}": v for k, v in plan.role.items()}}


def _frames(plan: ServePlan, mode: str, level: float, rows: list[dict], samples: list[dict],
            health: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    cols = {**_plan_columns(plan), "mode": mode, "level": float(level)}
    itl = [{**cols, "request_id": r["request_id"], "token_index": i + 1, "itl_s": x}
           for r in rows for i, x in enumerate(r["itl_s"])]
    requests = [{**cols, **{k: v for k, v in r.items() if k != "itl_s"}} for r in rows]
    workers = [{**cols, **w} for w in health.get("workers", [])]
    return {"serve_requests": pd.DataFrame(requests), "serve_itl": pd.DataFrame(itl),
            "serve_samples": pd.DataFrame([{**cols, **s} for s in samples]),
            "serve_workers": pd.DataFrame(workers)}


class ServeStore:
    """The serving tables of a run folder: ``data/<table>/<unit>.parquet``, requests part last.
    Writing holds the run folder's lock (``with ServeStore(run) as store``), as a trial sweep
    does, and refuses a folder of a newer result schema; reading checks the schema too."""

    def __init__(self, run_dir: str | Path):
        from coresweep.measurement.store import Store

        self.store = Store(run_dir)
        self.data = self.store.data

    def __enter__(self) -> ServeStore:
        self.store.lock()
        try:
            self.store.check_readable()
        except BaseException:
            self.store.unlock()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.store.unlock()

    def done(self) -> set[str]:
        d = self.data / "serve_requests"
        return {f.stem for f in d.glob("*.parquet")} if d.is_dir() else set()

    def write(self, unit: str, frames: dict[str, Any]) -> None:
        for table in TABLES:
            df = frames.get(table)
            if df is None or not len(df):  # never a leftover of an interrupted attempt
                (self.data / table / f"{unit}.parquet").unlink(missing_ok=True)
                continue
            self.store.write_part(table, unit, df)

    def fail(self, plan: ServePlan, mode: str, level: float, reason: str) -> None:
        import pandas as pd

        from coresweep.measurement.store import now_iso

        d = self.data / "serve_failures"
        n = len(list(d.glob("*.parquet"))) if d.is_dir() else 0
        row = {**_plan_columns(plan), "mode": mode, "level": float(level), "reason": reason,
               "time": now_iso()}
        self.store.write_part("serve_failures", f"{unit_name(plan, mode, level)}__{n}",
                              pd.DataFrame([row]))

    def load(self, table: str) -> Any:
        """One table; only complete units (those with a requests part) for the others."""
        import pandas as pd

        self.store.check_readable()
        d = self.data / table
        parts = sorted(d.glob("*.parquet")) if d.is_dir() else []
        if table not in ("serve_requests", "serve_failures"):
            done = self.done()
            parts = [p for p in parts if p.stem in done]
        frames = [f for f in (pd.read_parquet(p) for p in parts) if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _shorten(text: str, head: int = 300, tail: int = 1200) -> str:
    """What went wrong (the first words) and why (the log's end)."""
    return text if len(text) <= head + tail else f"{text[:head]} … {text[-tail:]}"


def _levels(load: Load, peak_req_s: float | None) -> list[tuple[str, float]]:
    out = [("closed", float(c)) for c in load.concurrency]
    if peak_req_s:
        out += [("open", round(f * peak_req_s, 3)) for f in load.poisson_load]
    return out


def _warm_up(url: str, plan: ServePlan, load: Load) -> None:
    from coresweep.serving.load import run_level

    if load.warmup:
        run_level(url, mode="closed", level=plan.workers, n_requests=load.warmup * plan.workers,
                  prompt=load.prompt, max_tokens=min(load.max_tokens, 8),
                  time_limit_s=load.level_timeout_s)


def _run_level(srv: Any, plan: ServePlan, load: Load, mode: str, level: float,
               store: ServeStore) -> list[dict]:
    from coresweep.measurement.sampler import Sampler
    from coresweep.serving.load import run_level

    with Sampler(None, load.sample_interval_s, time.monotonic(), ["timed"]) as sampler:
        rows = run_level(srv.url, mode=mode, level=level, n_requests=load.cap(mode, level),
                         prompt=load.prompt, max_tokens=load.max_tokens,
                         time_limit_s=load.level_timeout_s, seed=int(level * 1000),
                         connection=load.connection, enough=load.enough(mode, level))
    store.write(unit_name(plan, mode, level),
                _frames(plan, mode, level, rows, sampler.samples, srv.health() or {}))
    return rows


def _peak_req_s(store: ServeStore, plan: ServePlan) -> float | None:
    from coresweep.analysis.serving import level_summary

    req = store.load("serve_requests")
    if not len(req):
        return None
    s = level_summary(req[(req["plan_key"] == plan.key()) & (req["mode"] == "closed")])
    return float(s["req_s"].max()) if len(s) else None


def run_plan(plan: ServePlan, load: Load, store: ServeStore, *, model_dir: str, runtime: str,
             topo: Any, state_dir: Path, progress: Any = None) -> None:
    """Every level of one plan not stored yet, on one server."""
    from coresweep.serving.server import ServerProcess

    wanted = _levels(load, _peak_req_s(store, plan))
    if len(wanted) == len(load.concurrency) + len(load.poisson_load) and all(
            unit_name(plan, m, lv) in store.done() for m, lv in wanted):
        return  # resumed: nothing left for this plan
    port, *worker_ports = free_ports(plan.workers + 1)
    cfg = plan.config(model_dir, topo, runtime=runtime, port=port, worker_ports=worker_ports,
                      max_queue=load.max_queue, request_timeout_s=load.level_timeout_s,
                      state_dir=str(state_dir / plan.key()), model_name=Path(model_dir).name)
    try:
        with ServerProcess(cfg) as srv:
            _warm_up(srv.url, plan, load)
            for mode, level in _levels(load, None):
                _level_once(srv, plan, load, mode, level, store, progress)
            for mode, level in _levels(load, _peak_req_s(store, plan))[len(load.concurrency):]:
                _level_once(srv, plan, load, mode, level, store, progress)
    except CoresweepError as exc:  # the server never came up: recorded, the sweep goes on
        store.fail(plan, "start", 0, _shorten(str(exc)))


def _level_once(srv: Any, plan: ServePlan, load: Load, mode: str, level: float,
                store: ServeStore, progress: Any) -> None:
    if unit_name(plan, mode, level) in store.done():
        return
    try:
        _run_level(srv, plan, load, mode, level, store)
    except (CoresweepError, TimeoutError, OSError) as exc:
        store.fail(plan, mode, level, f"{type(exc).__name__}: {exc}")
    if progress is not None:
        progress.update(1)
        progress.set_postfix_str(f"{plan.label} {mode} {level:g}", refresh=False)


def serve_sweep(plans: Sequence[ServePlan], load: Load, run_dir: str | Path, *, model_dir: str,
                runtime: str = "ort", topo: Any = None, progress: bool = True) -> ServeStore:
    """Run every plan's levels into ``run_dir`` (resumable); returns its ServeStore."""
    from tqdm import tqdm

    from coresweep.machine.topology import read_topology

    topo = topo if topo is not None else read_topology()
    for plan in plans:
        plan.slices(topo)  # a plan that does not fit is refused before any server starts
    n_levels = len(load.concurrency) + len(load.poisson_load)
    bar = tqdm(total=len(plans) * n_levels, unit="level", desc="serving", disable=not progress,
               mininterval=1.0, file=sys.stderr)
    with ServeStore(run_dir) as store:
        try:
            for plan in plans:
                run_plan(plan, load, store, model_dir=model_dir, runtime=runtime, topo=topo,
                         state_dir=Path(run_dir) / "serve", progress=bar)
        finally:
            bar.close()
    return store

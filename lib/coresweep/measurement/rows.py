"""Rows from a worker's protocol events: a pure function of what the worker said (and the CPUs the
parent's sampler saw its threads on), testable on canned events without any process."""

from __future__ import annotations

import json
from typing import Any

from coresweep.machine.cpulist import format_cpulist
from coresweep.measurement.verify import verify_placement

# The version of what a trial measures: bump it whenever the timed loop, what is discarded or how
# a metric is computed changes (engines' generate, the worker's steps, these rows). Every trials
# row carries it; a resumed sweep measures units of an older version again (asv's
# benchmark_version). History: 1 = every run before versions were recorded (the IOBinding loop
# with its buffers written before the clock, per-token timestamps, warm-ups discarded).
MEASUREMENT_VERSION = 1

# per-repetition fields the worker reports, copied into each trials row
REP_FIELDS = ("ttft_s", "prefill_tok_s", "decode_tok_s", "e2e_s", "n_tokens", "peak_rss_bytes",
              "cpu_user_s", "cpu_sys_s", "ctx_vol", "ctx_invol", "cpu_util_pct", "checksum")


def cpu_s_per_token(rep: dict[str, Any]) -> float:
    """CPU seconds (user + system, all threads) the process spent per generated token (a
    batch's: every sequence's tokens)."""
    n = (rep.get("n_tokens") or 0) * (rep.get("batch") or 1)
    return (rep["cpu_user_s"] + rep["cpu_sys_s"]) / n if n else float("nan")


def batch_columns(rep: dict[str, Any]) -> dict[str, Any]:
    """A repetition's batch: each sequence's decode tok/s is ``decode_tok_s`` (the steps are
    shared), the aggregate is batch x it; every sequence's checksum (``checksum`` is the first:
    the same as batch 1's when the batch changes nothing) and whether they all agree."""
    batch = int(rep.get("batch") or 1)
    sums = rep.get("checksums") or [rep["checksum"]]
    return {"agg_decode_tok_s": rep.get("agg_decode_tok_s", batch * rep["decode_tok_s"]),
            "checksums": json.dumps(list(sums)),
            "sequences_agree": bool(rep.get("sequences_agree", len(set(sums)) == 1))}


def _cpu_s(t: dict[str, Any]) -> float:
    return t.get("cpu_s", t["user_s"] + t["sys_s"])


def after_load_rows(key: str, process: int, loaded: dict[str, Any]) -> list[dict[str, Any]]:
    """The worker's threads right after the model loaded (cumulative CPU time)."""
    return [{"config_key": key, "process": process, "when": "after_load", "tid": t["tid"],
             "name": t["name"], "allowed": t.get("allowed", ""), "last_cpu": t["last_cpu"],
             "seen_cpus": str(t["last_cpu"]), "user_s": t["user_s"], "sys_s": t["sys_s"],
             "cpu_s": _cpu_s(t), "busy": _cpu_s(t) > 0.05}
            for t in loaded.get("threads", [])]


def _verdict(prep: Any, events: dict[str, Any], seen: dict | None) -> dict[str, Any]:
    threads_ev, hello = events.get("threads", {}), events.get("hello", {})
    return verify_placement(
        list(prep.plan.cpus), threads_ev.get("before", []), threads_ev.get("after", []),
        wall_s=threads_ev.get("wall_s", 0.0), seen=seen, ort_default=prep.config.threads is None,
        affinity=hello.get("affinity"),
        affinity_first=hello.get("onnxruntime_imported_before_affinity") is False)


# Columns of any table that may be None in every row of a part (a mode not asked, a file not
# readable, another runtime, ort-default's thread count): each part stores them with this type, so
# a folder of parts reads as one dataset (pyarrow takes the first part's schema and cannot cast a
# typed column to "null").
NULLABLE_TYPES = {"numa_policy_ok": "bool", "huge_pages_ok": "bool", "anon_bytes": "int64",
                  "anon_huge_bytes": "int64", "onnxruntime_version": "large_string",
                  "threads": "int64"}


def numa_columns(cfg: Any, numa: dict[str, Any] | None) -> dict[str, Any]:
    """The memory policy asked for, the pages per node the worker held after loading, and
    whether numa_maps shows the policy (None: not readable)."""
    from coresweep.machine.numa_policy import policy_verified

    maps = (numa or {}).get("maps")
    return {"numa_memory": cfg.numa_memory,
            "numa_pages": json.dumps((maps or {}).get("pages", {}), sort_keys=True),
            "numa_policy_ok": policy_verified(cfg.numa_memory, maps)}


def memory_columns(cfg: Any, memory: dict[str, Any] | None) -> dict[str, Any]:
    """The huge pages asked for and what the worker's memory held after loading: anonymous bytes,
    those in transparent huge pages, and whether the mode shows (None: default mode or not
    readable)."""
    after = (memory or {}).get("after_load") or {}
    anon, huge = after.get("Anonymous"), after.get("AnonHugePages")
    asked = cfg.huge_pages != "default"
    return {"huge_pages": cfg.huge_pages, "anon_bytes": anon, "anon_huge_bytes": huge,
            "huge_pages_ok": (bool(huge) if huge is not None else None) if asked else None}


def base_columns(prep: Any, process: int, events: dict[str, Any], verdict: dict[str, Any],
                 pid: int | None) -> dict[str, Any]:
    """The columns every trials row of one worker process shares."""
    cfg, hello, loaded = prep.config, events.get("hello", {}), events.get("loaded", {})
    plan_cpus = list(prep.plan.cpus)
    eff = hello.get("affinity")
    return {
        "config_key": prep.key, "label": cfg.display, "model": cfg.model, "runtime": cfg.runtime,
        "threads": cfg.threads if cfg.threads is not None else -1,
        "ort_default": cfg.threads is None, "placement": cfg.placement,
        "strategy": cfg.plan_strategy(), "cpus": format_cpulist(plan_cpus),
        "n_cpus": len(set(plan_cpus)), "smt": cfg.smt or "asis",
        "prompt_tokens": events.get("prompt", {}).get("prompt_len", cfg.prompt_tokens),
        "gen_tokens": cfg.gen_tokens, "batch": cfg.batch, "pin_threads": cfg.pin_threads,
        "env": json.dumps(hello.get("env_knobs", {}), sort_keys=True),
        "session": json.dumps(cfg.session, sort_keys=True), "process": process,
        "pid": hello.get("pid", pid),
        "affinity_first": hello.get("onnxruntime_imported_before_affinity") is False,
        "ok": True, "measurement_version": MEASUREMENT_VERSION,
        "load_s": loaded.get("load_s", float("nan")),
        "placement_ok": verdict["placement_ok"], "busy_threads": verdict["busy_threads"],
        "oversubscribed": verdict["oversubscribed"], "cpus_used": verdict["cpus_used"],
        "placement_reasons": "; ".join(verdict["reasons"]),
        "onnxruntime_version": loaded.get("onnxruntime_version"),
        "runtime_version": loaded.get("runtime_version"),
        "affinity": format_cpulist(eff) if eff is not None else "",
        **numa_columns(cfg, events.get("numa")),
        **memory_columns(cfg, events.get("memory")),
    }


def timed_thread_rows(key: str, process: int, rows: list[dict], wall_s: float) -> list[dict]:
    """Each thread's CPU time over the timed repetitions and its share of that wall time (100 %:
    on a CPU the whole time, working or spinning)."""
    return [{"config_key": key, "process": process, "when": "decode", **r, "timed_wall_s": wall_s,
             "util_pct": 100.0 * r["cpu_s"] / wall_s if wall_s > 0 else float("nan")}
            for r in rows]


def token_rows(key: str, process: int, rep: dict[str, Any]) -> list[dict[str, Any]]:
    """token_latencies_s[0] is the TTFT (from start), then the gap to the previous token."""
    return [{"config_key": key, "process": process, "rep": rep["rep"], "token_index": i,
             "latency_s": x, "phase": "prefill" if i == 0 else "decode"}
            for i, x in enumerate(rep["token_latencies_s"])]


def rows_from_events(prep: Any, process: int, events: dict[str, Any], reps: list[dict], *,
                     seen: dict[int, set[int]] | None = None, pid: int | None = None,
                     measured: dict[str, Any] | None = None) -> dict:
    """trials / tokens / threads rows and the placement verdict of one finished worker process.
    ``events``: the last event of each kind ("hello", "loaded", "prompt", "threads", ...);
    ``reps``: the "rep" events in order; ``seen``: CPUs the sampler saw each thread on;
    ``measured``: the parent's columns (where it ran, throttling, the sampler's cost, clock)."""
    verdict = _verdict(prep, events, seen)
    base = {**base_columns(prep, process, events, verdict, pid), **(measured or {})}
    return {
        "trials": [{**base, "rep": r["rep"], **{f: r[f] for f in REP_FIELDS},
                    **batch_columns(r), "cpu_s_per_token": cpu_s_per_token(r)} for r in reps],
        "tokens": [row for r in reps for row in token_rows(prep.key, process, r)],
        "threads": after_load_rows(prep.key, process, events.get("loaded", {}))
        + timed_thread_rows(prep.key, process, verdict["rows"],
                            events.get("threads", {}).get("wall_s", 0.0)),
        "placement": {k: v for k, v in verdict.items() if k != "rows"},
    }

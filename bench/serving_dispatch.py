"""Speed bar: does each request reach an idle worker? Dispatch candidates against the study's setup.

Arms (2 workers; the 0.5B preset by default):
- haproxy       2 x 1 thread, pinned, HAProxy leastconn + maxconn 1 per worker port (the default)
- prefork       2 x 1 thread, pinned, gunicorn sync workers on one socket (only idle ones accept)
- shared-socket 2 x 1 thread, pinned, uvicorn workers on one socket (what dispatch alone costs)
- study         the motivating study's setup: uvicorn workers on one socket, OMP_NUM_THREADS=1,
                ORT's default thread count, unpinned, max_requests 100
Each arm runs rounds of 2 and of 4 concurrent streamed requests, on new connections and on
keep-alive connections (one per user). Per arm and case it prints the share of rounds in which
both workers served (target >= 95 % for haproxy), the time requests waited while a worker was idle
(target <= 2 % of request time), the imbalance, aggregate tok/s with its 95 % CI and TTFT p50/p99.
The reference: two in-process generations at once, 1 thread each, pinned to separate CPUs, in the
same rounds, measured in blocks that alternate with haproxy's 2-user rounds on new connections
(the machine's load drifts; alternating keeps both arms under the same drift). Prints, LAST,
haproxy's aggregate tok/s at 2 users (new connections) divided by the reference's, over those
alternating blocks (target >= 0.90).

    python bench/serving_dispatch.py [--preset qwen2.5-0.5b] [--rounds 12] [--prompt 64]
                                     [--gen 32] [--arms haproxy,prefork,shared-socket,study]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any

CASES = [(conn, c) for conn in ("new", "keep-alive") for c in (2, 4)]


def plans() -> dict[str, Any]:
    from coresweep.serving.plan import ServePlan

    return {"haproxy": ServePlan(2, 1, True),
            "prefork": ServePlan(2, 1, True, dispatch="prefork"),
            "shared-socket": ServePlan(2, 1, True, dispatch="shared-socket"),
            "study": ServePlan(2, None, False, dispatch="shared-socket",
                               env={"OMP_NUM_THREADS": "1"}, max_requests=100)}


def served(arm: str, plan: Any, model_dir: str, prompt: list[int], args: Any) -> list[dict]:
    """One server of the arm's plan; one summary row per (connection, users) case (haproxy's
    2-user new-connection case alternates with the in-process reference: ``ratio`` in its row)."""
    import pandas as pd
    from coresweep.analysis.serving import level_summary
    from coresweep.machine.topology import read_topology
    from coresweep.serving.load import run_level
    from coresweep.serving.server import ServerProcess
    from coresweep.serving.sweep import free_ports

    port, *worker_ports = free_ports(3)
    cfg = plan.config(model_dir, read_topology(), port=port, worker_ports=worker_ports,
                      model_name=args.preset)
    out = []
    with ServerProcess(cfg) as srv:
        run_level(srv.url, mode="rounds", level=4, n_requests=1, prompt=prompt, max_tokens=4)
        for conn, users in CASES:
            blocks = args.blocks if (arm, conn, users) == ("haproxy", "new", 2) else 1
            rows, pair = [], []
            for _ in range(blocks):
                if blocks > 1:
                    pair.append(in_process_pair(model_dir, prompt, args.gen,
                                                args.rounds // blocks))
                rows += [{**r, "round": r["round"] + len(rows) // users} for r in run_level(
                    srv.url, mode="rounds", level=users, n_requests=args.rounds // blocks,
                    prompt=prompt, max_tokens=args.gen, connection=conn, time_limit_s=900)]
            df = pd.DataFrame(rows).assign(plan_key=arm, plan=arm, dispatch=plan.dispatch,
                                           workers=plan.workers, threads=plan.threads or -1,
                                           pinned=plan.pinned, mode="rounds", level=float(users))
            ok = df[df["status"] == "ok"]
            s = level_summary(df).iloc[0].to_dict()
            s.update(arm=arm, connection=conn, users=users,
                     both_busy_pct=100 * ok.groupby("round")["worker"].nunique().eq(2).mean())
            if pair:
                ref = sum(t for t, _ in pair) / sum(w for _, w in pair)
                s.update(pair_tok_s=ref, ratio=s["tok_s"] / ref)
            out.append(s)
            print(_line(s), flush=True)
    return out


def _line(s: dict) -> str:
    return (f"{s['arm']:13s} {s['connection']:10s} {s['users']} users: both workers busy in "
            f"{s['both_busy_pct']:5.1f} % of rounds, idle-while-queued {s['idle_wait_pct']:5.2f} %"
            f", imbalance {s['imbalance']:.2f}, {s['tok_s']:5.1f} tok/s [{s['tok_s_ci_lo']:.1f}-"
            f"{s['tok_s_ci_hi']:.1f}], TTFT p50 {s['ttft_p50_s'] * 1000:5.0f} ms p99 "
            f"{s['ttft_p99_s'] * 1000:5.0f} ms, errors {s['errors']}")


def _pair_worker(cpu: int, model_dir: str, prompt: list[int], gen: int, rounds: int,
                 barrier: Any, out: Any) -> None:
    os.sched_setaffinity(0, {cpu})  # before onnxruntime is imported: its thread inherits it
    from coresweep.engines import SessionConfig, make_engine

    engine = make_engine("ort", model_dir, SessionConfig(threads=1))
    engine.load()
    engine.generate(prompt, 4)  # warm-up
    for r in range(rounds):
        barrier.wait()
        t0 = time.time()
        n = len(engine.generate(prompt, gen).tokens)
        out.put((r, cpu, t0, time.time(), n))


def in_process_pair(model_dir: str, prompt: list[int], gen: int,
                    rounds: int) -> tuple[int, float]:
    """Two 1-thread generations at once on CPUs of their own, in rounds: tokens, wall time."""
    from coresweep.machine.topology import read_topology

    cpus = sorted(read_topology().allowed)[:2]
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_pair_worker, args=(c, model_dir, prompt, gen, rounds, barrier,
                                                     out)) for c in cpus]
    for p in procs:
        p.start()
    rows = [out.get(timeout=600) for _ in range(2 * rounds)]
    for p in procs:
        p.join()
    wall = sum(max(e for k, _, _, e, _ in rows if k == r) - min(s for k, _, s, _, _ in rows
                                                                 if k == r)
               for r in range(rounds))
    return sum(r[4] for r in rows), wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--rounds", type=int, default=12, help="rounds per (connection, users) case")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=3,
                    help="alternating blocks of the reference and haproxy's 2-user rounds")
    ap.add_argument("--arms", default="haproxy,prefork,shared-socket,study")
    args = ap.parse_args()
    from coresweep.engines import make_prompt
    from coresweep.models import resolve_model

    model_dir = str(resolve_model(args.preset, "int4", build=True))
    prompt = make_prompt(model_dir, args.prompt)
    arms = args.arms.split(",")
    unknown = set(arms) - set(plans())
    if unknown or "haproxy" not in arms:
        raise SystemExit(f"--arms: unknown {sorted(unknown)} or no haproxy; valid: "
                         f"{', '.join(plans())}")
    if args.blocks < 2 or args.rounds < args.blocks:
        raise SystemExit("--blocks must be at least 2 and at most --rounds")
    results = [s for arm in arms for s in served(arm, plans()[arm], model_dir, prompt, args)]
    lb = [s for s in results if s["arm"] == "haproxy"]
    two = next(s for s in lb if s["users"] == 2 and s["connection"] == "new")
    print(f"{args.preset}, prompt {args.prompt}, {args.gen} tokens, {args.rounds} rounds per "
          f"case; in-process pair (1 thread each, CPUs of their own), alternating with "
          f"haproxy's 2-user rounds: {two['pair_tok_s']:.1f} tok/s")
    print(f"haproxy: both workers busy in {min(s['both_busy_pct'] for s in lb):.1f} % of rounds "
          f"at worst (target >= 95 %), idle-while-queued {max(s['idle_wait_pct'] for s in lb):.2f}"
          " % at worst (target <= 2 %)")
    print(f"haproxy 2 users / in-process pair: {two['ratio']:.3f} (target >= 0.90)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

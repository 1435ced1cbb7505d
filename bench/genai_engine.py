"""Reference: onnxruntime-genai's own batching (og.Engine / og.Request, 0.18) against coresweep's
batch decode on the same model, threads and CPUs.

For each number of concurrent requests B, a fresh pinned process per repetition loads the model
(genai's session options set through its config overlay, as the genai engine does) and, after a
warm-up round, times `--reps` rounds of B requests submitted at once, `--gen` tokens each
(greedy; genai: min = max new tokens), the same prompt for every request:
- `og-engine`: B og.Request objects on one og.Engine, `engine.run` until every request finished
  (genai schedules them itself: on CPU a static batch of at most `configured_max_batch_size`);
- `coresweep`: the ort engine's `generate_batch` (B copies of the prompt in the graph's batch
  dimension, one forward pass per step).
Throughput is end-to-end: B x gen tokens / (last token - submission), prefill included (og.Engine
interleaves prompts and steps by itself, so decode alone is not separable there); TTFT is each
request's first token after submission (median over requests). Per (runtime, B): the median over
processes x rounds with the range; LAST, og-engine / coresweep throughput at B = 4.

    python bench/genai_engine.py [--preset deepseek-r1-distill-qwen-1.5b] [--threads 2]
                                 [--cpus 0-1] [--batches 1,2,4,8] [--processes 2] [--reps 2]
                                 [--prompt 64] [--gen 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

RUNTIMES = ("og-engine", "coresweep")


def og_round(model, prompt: list[int], batch: int, gen: int) -> tuple[float, list[float]]:
    """One round on og.Engine: (seconds to the last token, each request's TTFT)."""
    import numpy as np
    import onnxruntime_genai as og

    engine, t0 = og.Engine(model), time.perf_counter()
    reqs, first = [], {}
    for _ in range(batch):
        opts = og.RequestOptions()
        opts.set_max_session_tokens(len(prompt) + gen)
        r = engine.create_request(options=opts)
        turn = og.TurnOptions(r)
        turn.set_do_sample(False)
        turn.set_max_generated_tokens(gen)
        turn.set_min_generated_tokens(gen)
        r.begin_turn(np.asarray(prompt, dtype=np.int32), turn)
        reqs.append(r)
    buf = engine.create_event_buffer(64)
    counts = [0] * batch
    while engine.has_pending_requests():
        for ev in engine.run(buf) or []:
            if int(ev.flags) & int(og.EngineEventFlags.TOKEN):
                i = next(k for k, r in enumerate(reqs) if r == ev.request)
                counts[i] += 1
                first.setdefault(i, time.perf_counter() - t0)
    assert counts == [gen] * batch, counts
    return time.perf_counter() - t0, [first[i] for i in range(batch)]


def coresweep_round(engine, prompt: list[int], batch: int, gen: int) -> tuple[float, list[float]]:
    """One round of the ort engine's batch decode: (seconds to the last token, TTFT each)."""
    t0 = time.perf_counter_ns()
    g = engine.generate_batch(prompt, gen, batch)
    ttft = (g.token_ns[0] - t0) / 1e9
    return (g.token_ns[-1] - t0) / 1e9, [ttft] * batch


def child(args) -> None:
    """One process: load, warm up, time the rounds; one JSON line per round."""
    from coresweep.machine.cpulist import parse_cpulist

    os.sched_setaffinity(0, parse_cpulist(args.cpus))  # before onnxruntime is imported
    from coresweep.engines import SessionConfig, make_engine, make_prompt
    from coresweep.models import resolve_model

    model = str(resolve_model(args.preset, "int4"))
    prompt = make_prompt(model, args.prompt, seed=3)
    name = "genai" if args.child == "og-engine" else "ort"
    e = make_engine(name, model, SessionConfig(threads=args.threads))
    e.load()
    if args.child == "og-engine":
        def one():
            return og_round(e.model, prompt, args.batch, args.gen)
    else:
        def one():
            return coresweep_round(e, prompt, args.batch, args.gen)
    one()  # warm-up, discarded
    for _ in range(args.reps):
        wall, ttft = one()
        print(json.dumps({"wall_s": wall, "ttft_s": ttft}), flush=True)


def run_child(args, runtime: str, batch: int) -> list[dict]:
    cmd = [sys.executable, __file__, "--child", runtime, "--batch", str(batch)]
    for k in ("preset", "threads", "cpus", "reps", "prompt", "gen"):
        cmd += [f"--{k}", str(getattr(args, k))]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="deepseek-r1-distill-qwen-1.5b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpus", default="0-1")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--child", choices=RUNTIMES, default=None)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    batches = [int(b) for b in args.batches.split(",")]
    rows: dict[tuple[str, int], list[dict]] = {}
    for p in range(args.processes):  # interleaved: every runtime and batch once per pass
        for b in batches:
            for rt in (RUNTIMES if p % 2 == 0 else RUNTIMES[::-1]):
                rows.setdefault((rt, b), []).extend(run_child(args, rt, b))
    print(f"{args.preset}, {args.threads} thread(s) on CPUs {args.cpus}, prompt {args.prompt}, "
          f"{args.gen} tokens per request; {args.processes} processes x {args.reps} rounds")
    print(f"{'runtime':10} {'B':>3} {'tok/s (end to end)':>22} {'TTFT ms median':>15}")
    tput: dict[tuple[str, int], float] = {}
    for (rt, b), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        t = [b * args.gen / r["wall_s"] for r in rs]
        ttft = statistics.median(x for r in rs for x in r["ttft_s"])
        tput[(rt, b)] = statistics.median(t)
        print(f"{rt:10} {b:>3} {statistics.median(t):9.2f} [{min(t):.2f}-{max(t):.2f}] "
              f"{1000 * ttft:15.0f}")
    if ("og-engine", 4) in tput:
        print(f"og.Engine / coresweep batch decode, end-to-end tok/s at 4 requests: "
              f"{tput[('og-engine', 4)] / tput[('coresweep', 4)]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

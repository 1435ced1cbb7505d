"""Cross-check: Microsoft's benchmark_e2e.py method beside `coresweep trial` on the same model.

onnxruntime-genai's `benchmark/python/benchmark_e2e.py` is the usual way people quote genai's CPU
speed. Its timing loop is reproduced below (`e2e_child`; the loop follows benchmark_e2e.py at
microsoft/onnxruntime-genai commit 5dd1c932, MIT License, Copyright (c) Microsoft Corporation):
one process loads the model with `og.Model`, runs `--e2e-warmup` untimed generations, then
`--e2e-reps` timed ones, each with a fresh `og.Generator`:

- prompt processing = `append_tokens(prompt)`; sampling = the first `generate_next_token()`;
  TTFT = prompt processing + sampling;
- token generation = each later `generate_next_token()` (with `is_done()`), one latency per token;
- every figure aggregated with the mean over all repetitions (the script's default `-a mean`;
  the median is printed too), token generation throughput = 1 / aggregated latency.

Like the script with `max_lengths` unset, max_length = min_length = prompt + generated tokens.
Sampling follows the script's defaults (`--top-k 50`, top_p 1, temperature 1: sampled, not
greedy); `--top-k 1` makes it greedy like coresweep. The prompt is the ids coresweep uses for
`prompt_tokens` (the script's `--use_random_tokens` analogue), threads through the config overlay.

Beside it, `coresweep trial` (the CLI, as a user runs it) on the same model, thread count, prompt
and length; the two alternate per thread count. Prints a table and, LAST, the decode ratio
coresweep / benchmark_e2e per thread count.

    python bench/genai_e2e.py [--preset deepseek-r1-distill-qwen-1.5b] [--threads 1 2]
                              [--prompt 64] [--gen 32] [--e2e-reps 5] [--e2e-warmup 5]
                              [--processes 2] [--reps 3] [--top-k 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def e2e_child(args: argparse.Namespace) -> int:
    """benchmark_e2e.py's timing loop (see the module docstring); prints one JSON line."""
    import onnxruntime  # noqa: F401  (genai dlopens the library of this package)
    import onnxruntime_genai as og
    from coresweep.engines import make_prompt

    config = og.Config(args.model)
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": args.threads}}}, "search": {"batch_size": 1}}))
    model = og.Model(config)
    tokens = make_prompt(args.model, args.prompt)
    max_length = args.prompt + args.gen
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=args.top_k > 1, top_k=args.top_k, top_p=1.0,
                              temperature=1.0, max_length=max_length, min_length=max_length,
                              batch_size=1)
    for _ in range(args.e2e_warmup):
        gen = og.Generator(model, params)
        gen.append_tokens(tokens)
        target = gen.token_count() + args.gen
        while not gen.is_done() and gen.token_count() < target:
            gen.generate_next_token()
        del gen
    prompt_times, sampling_times, token_gen_times = [], [], []
    for _ in range(args.e2e_reps):
        gen = og.Generator(model, params)
        t0 = time.perf_counter()
        gen.append_tokens(tokens)
        prompt_times.append(time.perf_counter() - t0)
        target = gen.token_count() + args.gen
        t0 = time.perf_counter()
        gen.generate_next_token()
        done = gen.is_done()
        sampling_times.append(time.perf_counter() - t0)
        while not done and gen.token_count() < target:
            t0 = time.perf_counter()
            gen.generate_next_token()
            done = gen.is_done()
            token_gen_times.append(time.perf_counter() - t0)
        del gen
    ttft = [p + s for p, s in zip(prompt_times, sampling_times, strict=True)]
    print(json.dumps({agg: {"ttft_ms": 1000 * f(ttft), "decode_tok_s": 1 / f(token_gen_times)}
                      for agg, f in (("mean", statistics.fmean), ("median", statistics.median))}))
    return 0


def run_e2e(model: str, threads: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--model", model,
           "--threads", str(threads), "--prompt", str(args.prompt), "--gen", str(args.gen),
           "--e2e-reps", str(args.e2e_reps), "--e2e-warmup", str(args.e2e_warmup),
           "--top-k", str(args.top_k)]
    return _json_out(cmd)


def run_coresweep(model: str, threads: int, args: argparse.Namespace) -> dict:
    """`coresweep trial` as a user runs it (its default placement for the thread count)."""
    cmd = [sys.executable, "-m", "coresweep", "trial", "--model", model, "--threads",
           str(threads), "--prompt-tokens", str(args.prompt), "--gen-tokens", str(args.gen),
           "--processes", str(args.processes), "--reps", str(args.reps), "--json"]
    stats = json.loads(_stdout(cmd))["statistics"]
    return {"ttft_ms": 1000 * stats["ttft_s_median"], "decode_tok_s": stats["decode_tok_s_median"],
            "ci": (stats["decode_tok_s_ci_lo"], stats["decode_tok_s_ci_hi"])}


def _stdout(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"failed ({' '.join(cmd)}):\n{res.stderr[-3000:]}")
    return res.stdout


def _json_out(cmd: list[str]) -> dict:
    return json.loads(_stdout(cmd).strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="deepseek-r1-distill-qwen-1.5b")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--model", default=None, help="model dir (default: build/resolve --preset)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--e2e-reps", type=int, default=5, help="benchmark_e2e -r")
    ap.add_argument("--e2e-warmup", type=int, default=5, help="benchmark_e2e -w")
    ap.add_argument("--top-k", type=int, default=50, help="benchmark_e2e -k (1: greedy)")
    ap.add_argument("--processes", type=int, default=2, help="coresweep trial --processes")
    ap.add_argument("--reps", type=int, default=3, help="coresweep trial --reps")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.threads = args.threads[0]
        return e2e_child(args)

    from coresweep.models import resolve_model

    model = str(args.model or resolve_model(args.preset, args.precision))
    print(f"model {model}; prompt {args.prompt}, {args.gen} generated; benchmark_e2e method: "
          f"{args.e2e_warmup} warm-up + {args.e2e_reps} reps, top_k {args.top_k}; coresweep "
          f"trial: {args.processes} processes x {args.reps} reps (greedy)", flush=True)
    rows = []
    for n, threads in enumerate(args.threads):
        arms = ("e2e", "coresweep") if n % 2 == 0 else ("coresweep", "e2e")
        res = {arm: (run_e2e if arm == "e2e" else run_coresweep)(model, threads, args)
               for arm in arms}
        rows.append((threads, res))
        print(f"  {threads} thread(s): done", flush=True)
    print(f"\n{'threads':>7} | {'e2e TTFT ms':>11} {'e2e tok/s':>9} {'(median agg)':>12} | "
          f"{'coresweep TTFT ms':>17} {'tok/s':>7} {'95 % CI':>15}")
    for threads, r in rows:
        e, c = r["e2e"], r["coresweep"]
        print(f"{threads:>7} | {e['mean']['ttft_ms']:>11.0f} {e['mean']['decode_tok_s']:>9.2f} "
              f"{e['median']['decode_tok_s']:>12.2f} | {c['ttft_ms']:>17.0f} "
              f"{c['decode_tok_s']:>7.2f} {c['ci'][0]:>7.2f}-{c['ci'][1]:<7.2f}")
    ratios = ", ".join(f"{t} thread(s) {r['coresweep']['decode_tok_s'] / r['e2e']['mean']['decode_tok_s']:.3f}"
                       for t, r in rows)
    print(f"decode tok/s coresweep trial / benchmark_e2e method: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

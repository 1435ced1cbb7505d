"""Speed bar: coresweep's OrtEngine against onnxruntime-genai on the same model.

Each generation runs in a fresh process; the two engines alternate (pair k runs ort first when k is
even, genai first when odd). Per point (threads x prompt length) at least 5 process pairs. Every
child loads the model, runs one warm-up generation (--warmup full: the same prompt and 8 tokens;
short: 16 prompt tokens and 4) and then the measured one. Per point the ratio ort/genai is taken
per pair; the table gives its median, range and the 95 % bootstrap CI of the median (resampling
pairs), for decode tok/s and for the "fastest-token" speed (1 / the 10th percentile of the decode
token latencies: the tokens no other process interrupted, which a shared machine disturbs least).
Prints, LAST, the worst decode ratio coresweep/genai with its CI (target >= 1.00, or a CI that
holds 1.00 where the rest is noise).

    python bench/engine_parity.py [--preset qwen2.5-0.5b|deepseek-r1-distill-qwen-1.5b]
                                  [--model DIR] [--threads 1 2] [--prompts 64 1024] [--gen 64]
                                  [--pairs 5] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from coresweep.analysis.stats import bootstrap_median_ci


def child(args: argparse.Namespace) -> int:
    from coresweep.engines import SessionConfig, make_engine, make_prompt

    eng = make_engine(args.engine, args.model, SessionConfig(threads=args.threads))
    load_s = eng.load()
    prompt = make_prompt(args.model, args.prompt, seed=7)
    # warm-up, discarded: the same prompt and 8 tokens ("full"), or 16 prompt tokens ("short")
    eng.generate(prompt if args.warmup == "full" else prompt[:16], 8 if args.warmup == "full" else 4)
    g = eng.generate(prompt, args.gen)
    gaps = sorted(g.token_latencies_s[1:])
    p10 = gaps[len(gaps) // 10]
    print(json.dumps({"engine": args.engine, "threads": args.threads, "prompt": args.prompt,
                      "load_s": load_s, "ttft_s": g.ttft_s, "decode_tok_s": g.decode_tok_s,
                      "fast_tok_s": 1 / p10, "checksum": g.checksum}))
    return 0


def run_child(engine: str, model: str, threads: int, prompt: int, gen: int,
              warmup: str = "full") -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, "--model", model,
           "--threads", str(threads), "--prompts", str(prompt), "--gen", str(gen),
           "--warmup", warmup]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({' '.join(cmd)}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--model", default=None, help="model dir (default: build/resolve --preset)")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompts", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--warmup", choices=["full", "short"], default="full",
                    help="warm-up generation per process: full prompt + 8 tokens, or 16 + 4")
    ap.add_argument("--json", default=None, help="write all raw results here")
    ap.add_argument("--child", default=None, choices=["ort", "genai"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.engine, args.threads, args.prompt = args.child, args.threads[0], args.prompts[0]
        return child(args)
    if args.pairs < 1:
        ap.error("--pairs must be >= 1")

    from coresweep.models import resolve_model

    model = str(args.model or resolve_model(args.preset, args.precision, cache_dir=args.cache))
    print(f"model {model}", flush=True)
    raw: list[dict] = []
    rows = []
    t_start = time.time()
    for threads in args.threads:
        for prompt in args.prompts:
            pairs = []
            for k in range(args.pairs):
                order = ("ort", "genai") if k % 2 == 0 else ("genai", "ort")
                res = {e: run_child(e, model, threads, prompt, args.gen, args.warmup)
                       for e in order}
                raw += [res["ort"], res["genai"]]
                pairs.append(res)
                print(f"  threads={threads} prompt={prompt} pair {k}: "
                      f"ort {res['ort']['decode_tok_s']:.2f} tok/s ttft {res['ort']['ttft_s']:.3f}s | "
                      f"genai {res['genai']['decode_tok_s']:.2f} tok/s "
                      f"ttft {res['genai']['ttft_s']:.3f}s", flush=True)
            dr = [p["ort"]["decode_tok_s"] / p["genai"]["decode_tok_s"] for p in pairs]
            fr = [p["ort"]["fast_tok_s"] / p["genai"]["fast_tok_s"] for p in pairs]
            tr = [p["ort"]["ttft_s"] / p["genai"]["ttft_s"] for p in pairs]
            med = statistics.median
            rows.append({
                "threads": threads, "prompt": prompt,
                "ttft_ort": med(p["ort"]["ttft_s"] for p in pairs),
                "ttft_genai": med(p["genai"]["ttft_s"] for p in pairs),
                "dec_ort": med(p["ort"]["decode_tok_s"] for p in pairs),
                "dec_genai": med(p["genai"]["decode_tok_s"] for p in pairs),
                "dec_ratio": med(dr), "dec_ratio_min": min(dr), "dec_ratio_max": max(dr),
                "dec_ratio_ci": bootstrap_median_ci([dr]), "fast_ratio": med(fr),
                "fast_ratio_ci": bootstrap_median_ci([fr]),
                "ttft_ratio": med(tr), "ttft_ratio_min": min(tr), "ttft_ratio_max": max(tr),
                "same_tokens": all(p["ort"]["checksum"] == p["genai"]["checksum"] for p in pairs),
            })
    print(f"\n{len(raw)} processes in {time.time() - t_start:.0f} s; medians over {args.pairs} "
          "process pairs; ratio = coresweep(ort) / genai (per pair, median [min-max])")
    head = (f"{'thr':>3} {'prompt':>6} | {'TTFT ort':>9} {'TTFT genai':>10} {'ratio':>18} | "
            f"{'dec ort':>8} {'dec genai':>9} {'ratio':>18} {'95 % CI':>11} | "
            f"{'fastest-token ratio, CI':>23} | same")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['threads']:>3} {r['prompt']:>6} | {r['ttft_ort']:>8.3f}s {r['ttft_genai']:>9.3f}s "
              f"{r['ttft_ratio']:>6.3f} [{r['ttft_ratio_min']:.2f}-{r['ttft_ratio_max']:.2f}] | "
              f"{r['dec_ort']:>8.2f} {r['dec_genai']:>9.2f} "
              f"{r['dec_ratio']:>6.3f} [{r['dec_ratio_min']:.2f}-{r['dec_ratio_max']:.2f}] "
              f"{r['dec_ratio_ci'][0]:.3f}-{r['dec_ratio_ci'][1]:.3f} | "
              f"{r['fast_ratio']:>6.3f} {r['fast_ratio_ci'][0]:.3f}-{r['fast_ratio_ci'][1]:.3f}"
              f"       | {'yes' if r['same_tokens'] else 'NO'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": model, "rows": rows, "raw": raw}, f, indent=2)
    worst = min(rows, key=lambda r: r["dec_ratio"])
    lo, hi = worst["dec_ratio_ci"]
    print(f"worst decode ratio coresweep/genai: {worst['dec_ratio']:.3f} (95 % CI {lo:.3f}-"
          f"{hi:.3f}, {worst['threads']} thread(s), prompt {worst['prompt']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

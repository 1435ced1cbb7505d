"""Speed bar: coresweep's llamacpp engine against llama-bench, on the same GGUF, threads and CPUs.

llama-bench is built from the very llama.cpp source the llama-cpp-python wheel was built from
(`make llama-bench`: the sdist's vendor/llama.cpp, Release, native flags, OpenMP). Per thread count
and pair, in fresh processes, alternating which goes first:

- coresweep: one `coresweep trial` unit (the pinned worker: mask set before llama_cpp is
  imported, one warm-up generation, then `--reps` timed generations of `--gen` tokens after a
  `--prompt`-token prompt); its decode tok/s is the median over the repetitions (the tokens after
  the first, over the time from the first to the last);
- llama-bench: `-p 0 -n GEN-1 -d PROMPT -r REPS`, started with the same CPU mask (the plan's CPUs,
  set on the child before it runs; llama-bench's own --cpu-mask left at its default, no mask): its
  `tg` decodes the same GEN-1 tokens after the same PROMPT positions (its depth prompt untimed, a
  one-token warm-up), reporting the mean tokens/s of its repetitions.

The ratio coresweep / llama-bench is taken per pair; the table gives its median [min-max] and the
95 % bootstrap CI of the median (resampling pairs). Prints, LAST, the worst ratio (target >= 0.97).

    python bench/llamacpp_parity.py [--preset deepseek-r1-distill-qwen-1.5b] [--precision int4]
        [--model FILE.gguf] [--threads 1 2] [--prompt 64] [--gen 32] [--reps 3] [--pairs 4]
        [--llama-bench PATH] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from coresweep.analysis.stats import bootstrap_median_ci


def llama_bench_path(given: str | None) -> Path:
    from coresweep.models.gguf import source_dir

    path = Path(given or os.environ.get("LLAMA_BENCH")
                or source_dir() / "build-coresweep" / "bin" / "llama-bench")
    if not path.is_file():
        raise SystemExit(f"llama-bench not found at {path}: build it with `make llama-bench` (the "
                         "same llama.cpp source as the installed llama-cpp-python)")
    return path


def coresweep_decode(model: str, threads: int, args: argparse.Namespace, topo) -> dict:
    """One fresh pinned worker (what `coresweep trial` runs): its median decode tok/s."""
    from coresweep.measurement.config import TrialConfig
    from coresweep.measurement.trial import prepare, run_trial

    cfg = TrialConfig(model=model, runtime="llamacpp", threads=threads, placement="physical",
                      prompt_tokens=args.prompt, gen_tokens=args.gen, reps=args.reps, warmup=1)
    (prep,) = prepare([cfg], topo=topo)
    res = run_trial(prep, 0, sample_interval_s=None)
    if not res.ok:
        raise SystemExit(f"coresweep trial failed: {res.reason}\n{res.stderr_tail}")
    rows = res.trials
    return {"decode_tok_s": statistics.median(r["decode_tok_s"] for r in rows),
            "ttft_s": statistics.median(r["ttft_s"] for r in rows),
            "placement_ok": all(r["placement_ok"] for r in rows), "cpus": rows[0]["cpus"],
            "checksum": rows[0]["checksum"]}


def llama_bench_tg(bench: Path, gguf: str, threads: int, cpus: list[int],
                   args: argparse.Namespace) -> dict:
    """One llama-bench process on the plan's CPUs: tg of GEN-1 tokens at depth PROMPT."""
    cmd = [str(bench), "-m", gguf, "-t", str(threads), "-p", "0", "-n", str(args.gen - 1),
           "-d", str(args.prompt), "-r", str(args.reps), "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800,
                         preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    if out.returncode != 0:
        raise SystemExit(f"llama-bench failed ({' '.join(cmd)}):\n{out.stderr[-3000:]}")
    (test,) = [t for t in json.loads(out.stdout) if t["n_gen"] > 0]
    return {"tg_tok_s": float(test["avg_ts"]), "tg_stdev": float(test["stddev_ts"]),
            "build": f"{test.get('build_commit')} ({test.get('build_number')})",
            "cpu_info": test.get("cpu_info")}


def one_point(threads: int, model: str, gguf: str, bench: Path, args, topo) -> dict:
    from coresweep.machine.placement import make_plan

    cpus = list(make_plan(topo, threads, "physical").cpus)
    pairs = []
    for k in range(args.pairs):
        first_cs = k % 2 == 0
        a = coresweep_decode(model, threads, args, topo) if first_cs else None
        b = llama_bench_tg(bench, gguf, threads, cpus, args)
        a = a or coresweep_decode(model, threads, args, topo)
        pairs.append({"coresweep": a, "llama_bench": b,
                      "ratio": a["decode_tok_s"] / b["tg_tok_s"]})
        print(f"  threads={threads} pair {k}: coresweep {a['decode_tok_s']:.2f} tok/s "
              f"(placement {'ok' if a['placement_ok'] else 'NOT ok'}, CPUs {a['cpus']}) | "
              f"llama-bench tg {b['tg_tok_s']:.2f} ± {b['tg_stdev']:.2f} tok/s | ratio "
              f"{pairs[-1]['ratio']:.3f}", flush=True)
    ratios = [p["ratio"] for p in pairs]
    return {"threads": threads, "cpus": cpus, "pairs": pairs,
            "coresweep": statistics.median(p["coresweep"]["decode_tok_s"] for p in pairs),
            "llama_bench": statistics.median(p["llama_bench"]["tg_tok_s"] for p in pairs),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "ratio_ci": bootstrap_median_ci([ratios])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="deepseek-r1-distill-qwen-1.5b")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--model", default=None, help="a .gguf file or folder (default: the preset's)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--llama-bench", default=None, help="default: $LLAMA_BENCH, else the build "
                    "of `make llama-bench`")
    ap.add_argument("--json", default=None, help="write every pair here")
    args = ap.parse_args()
    if args.pairs < 1 or args.gen < 2:
        ap.error("--pairs must be >= 1 and --gen >= 2")

    from coresweep.machine.topology import read_topology
    from coresweep.models import resolve_model
    from coresweep.models.gguf import find_gguf

    topo = read_topology()
    bench = llama_bench_path(args.llama_bench)
    model = str(args.model or resolve_model(args.preset, args.precision, fmt="gguf"))
    gguf = str(find_gguf(model))
    print(f"model {gguf}\nllama-bench {bench}", flush=True)
    t0 = time.time()
    rows = [one_point(t, model, gguf, bench, args, topo) for t in args.threads]
    print(f"\n{2 * args.pairs * len(rows)} processes in {time.time() - t0:.0f} s; prompt "
          f"{args.prompt}, {args.gen} generated (llama-bench: tg{args.gen - 1} at depth "
          f"{args.prompt}), {args.reps} reps each; ratio = coresweep / llama-bench per pair")
    print(f"{'thr':>3} {'CPUs':>6} | {'coresweep':>9} {'llama-bench':>11} | {'ratio':>6} "
          f"{'[min-max]':>11} {'95 % CI':>11}")
    for r in rows:
        lo, hi = r["ratio_ci"]
        print(f"{r['threads']:>3} {','.join(map(str, r['cpus'])):>6} | {r['coresweep']:>9.2f} "
              f"{r['llama_bench']:>11.2f} | {r['ratio']:>6.3f} [{r['ratio_min']:.2f}-"
              f"{r['ratio_max']:.2f}] {lo:.3f}-{hi:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": gguf, "rows": rows}, indent=2,
                                              default=str))
    worst = min(rows, key=lambda r: r["ratio"])
    lo, hi = worst["ratio_ci"]
    print(f"worst decode ratio coresweep/llama-bench: {worst['ratio']:.3f} (95 % CI {lo:.3f}-"
          f"{hi:.3f}, {worst['threads']} thread(s); target >= 0.97)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

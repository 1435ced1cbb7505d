"""Cost of the parent's CPU/thread sampler on decode speed (target: < 1 %).

Runs the same trial config in fresh worker processes with the sampler on (default period 100 ms)
and off, alternating on/off (order flipped every round so neither mode always goes first), and
compares decode tok/s: per process the median over its repetitions, then the median over
processes per mode. overhead % = (off - on) / off * 100, with a bootstrap 95 % CI over processes.
Also prints the sampler thread's own CPU time per sample. The figure is printed last.

    .venv/bin/python bench/sampler_overhead.py [--model tiny] [--threads 1] [--processes 8]
"""

from __future__ import annotations

import argparse

import numpy as np
from coresweep.trial import TrialConfig, prepare, run_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--placement", default="auto")
    ap.add_argument("--processes", type=int, default=8, help="processes per mode")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--gen-tokens", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=0.1, help="sampling period, s")
    args = ap.parse_args()

    cfg = TrialConfig(model=args.model, threads=args.threads, placement=args.placement,
                      prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens,
                      reps=args.reps, warmups=1)
    (prep,) = prepare([cfg])
    per: dict[str, list[float]] = {"on": [], "off": []}
    samples, sampler_cpu = 0, 0.0
    timed_s = 0.0
    for p in range(args.processes):
        order = ("on", "off") if p % 2 == 0 else ("off", "on")
        for mode in order:
            res = run_trial(prep, p, sample_interval_s=args.interval if mode == "on" else None)
            if not res.ok:
                raise SystemExit(f"trial failed: {res.reason}\n{res.stderr_tail}")
            dec = float(np.median([r["decode_tok_s"] for r in res.trials]))
            per[mode].append(dec)
            if mode == "on":
                s = res.info.get("sampler", {})
                samples += s.get("n", 0)
                sampler_cpu += s.get("cpu_s", 0.0)
                timed_s += res.wall_s
            print(f"process {p:2d} sampler {mode:3s}: decode {dec:9.2f} tok/s", flush=True)
    on, off = np.array(per["on"]), np.array(per["off"])
    rng = np.random.default_rng(0)
    boots = []
    for _ in range(4000):
        a = rng.choice(on, on.size)
        b = rng.choice(off, off.size)
        boots.append((np.median(b) - np.median(a)) / np.median(b) * 100)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    overhead = (np.median(off) - np.median(on)) / np.median(off) * 100
    print(f"model {args.model}, {args.threads} thread(s), {args.processes} processes per mode, "
          f"{args.reps} reps x {args.gen_tokens} tokens, sampling every {args.interval * 1e3:.0f} ms")
    print(f"decode median: sampler on {np.median(on):.2f} tok/s, off {np.median(off):.2f} tok/s")
    if samples:
        print(f"sampler thread: {sampler_cpu / samples * 1e3:.3f} ms CPU per sample "
              f"({samples} samples, {100 * sampler_cpu / max(timed_s, 1e-9):.2f} % of one CPU "
              "over the worker lifetimes)")
    print(f"between-process CV: on {np.std(on, ddof=1) / np.mean(on) * 100:.1f} %, "
          f"off {np.std(off, ddof=1) / np.mean(off) * 100:.1f} %")
    print(f"sampler overhead on decode tok/s: {overhead:.2f} % (95 % CI {lo:.2f} .. {hi:.2f} %; "
          "target < 1 %)")


if __name__ == "__main__":
    main()

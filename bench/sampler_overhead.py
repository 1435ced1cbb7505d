"""Cost of the parent's CPU/thread sampler on decode speed (target: < 1 %).

Paired design: on a shared machine the spread between processes (often 10-40 %) swamps a 1 %
effect, so the sampler is switched on and off *between repetitions of the same worker process*
(alternating; the starting state flips from one process to the next). Per process the overhead is
(median decode tok/s with sampling off − with it on) / off; the figure is the median over
processes with a bootstrap 95 % CI. Also prints the sampler thread's own CPU time per sample.
The overhead figure is printed last.

    .venv/bin/python bench/sampler_overhead.py [--model tiny] [--threads 1] [--processes 8]
"""

from __future__ import annotations

import argparse

import numpy as np
from coresweep.measurement.trial import TrialConfig, prepare, run_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--placement", default="auto")
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--reps", type=int, default=12, help="timed reps per process (half on, half off)")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--gen-tokens", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=0.1, help="sampling period, s")
    args = ap.parse_args()

    cfg = TrialConfig(model=args.model, threads=args.threads, placement=args.placement,
                      prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens,
                      reps=args.reps, warmup=1)
    (prep,) = prepare([cfg])
    overheads, on_all, off_all = [], [], []
    samples, sampler_cpu, wall = 0, 0.0, 0.0
    for p in range(args.processes):
        def state(rep: int, p: int = p) -> bool:
            return (rep + p) % 2 == 0

        current = [state(0)]

        def on_event(e: dict, p: int = p, current: list = current) -> None:
            if e["event"] == "rep":  # rep k ended: rep k+1 starts now
                current[0] = state(e["rep"] + 1, p)

        res = run_trial(prep, p, sample_interval_s=args.interval, on_event=on_event,
                        sample_gate=lambda current=current: current[0])
        if not res.ok:
            raise SystemExit(f"trial failed: {res.reason}\n{res.stderr_tail}")
        on = [r["decode_tok_s"] for r in res.trials if state(r["rep"], p)]
        off = [r["decode_tok_s"] for r in res.trials if not state(r["rep"], p)]
        oh = (np.median(off) - np.median(on)) / np.median(off) * 100
        overheads.append(oh)
        on_all += on
        off_all += off
        s = res.info.get("sampler", {})
        samples += s.get("n", 0)
        sampler_cpu += s.get("cpu_s", 0.0)
        wall += res.wall_s
        print(f"process {p:2d}: decode on {np.median(on):9.2f} tok/s, off {np.median(off):9.2f} "
              f"tok/s, overhead {oh:+.2f} %", flush=True)
    oh = np.array(overheads)
    rng = np.random.default_rng(0)
    boots = [np.median(rng.choice(oh, oh.size)) for _ in range(4000)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    print(f"model {args.model}, {args.threads} thread(s), {args.processes} processes x "
          f"{args.reps} reps x {args.gen_tokens} tokens, sampling every {args.interval * 1e3:.0f} ms")
    print(f"decode median over all reps: sampler on {np.median(on_all):.2f} tok/s, "
          f"off {np.median(off_all):.2f} tok/s")
    if samples:
        print(f"sampler thread: {sampler_cpu / samples * 1e3:.3f} ms CPU per sample "
              f"({samples} samples; {100 * sampler_cpu / samples / args.interval:.2f} % of one CPU "
              "while sampling)")
    print(f"sampler overhead on decode tok/s: {np.median(oh):.2f} % (95 % CI {lo:.2f} .. "
          f"{hi:.2f} %; target < 1 %)")


if __name__ == "__main__":
    main()

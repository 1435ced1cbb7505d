"""Speed figure: aggregate decode tok/s against the batch size, one worker process per point.

Each batch size B runs as a coresweep trial (`coresweep trial --batch B`): a fresh pinned worker,
B copies of the prompt decoded together in one session (one forward pass per step for all of
them), exactly `--gen` tokens each, warm-up discarded, `--processes` processes interleaved with the
other batch sizes. The aggregate is B x each sequence's decode tok/s (the sequences share every
step), its 95 % interval B x the per-sequence one (hierarchical bootstrap over processes). The
thread count is the one the decision recommends for decode in `--run` (a coresweep run folder),
else the physical cores (what 01 recommends on the 2-vCPU machines measured so far).

The run folder `--out` resumes: each batch size can be measured in its own command (under a CPU
lock of a few minutes each) and a last call with every batch size only prints.

It prints per batch: aggregate tok/s [CI], per-sequence tok/s, TTFT, the step time, CPU ms per
token and whether every sequence (and batch 1) generated the same tokens; LAST, the ratio of
batch 4's aggregate to batch 1's with the interval the two CIs allow.

    python bench/batching.py [--preset deepseek-r1-distill-qwen-1.5b] [--threads auto]
                             [--run RUN_DIR] [--batches 1,2,4,8] [--processes 3] [--reps 2]
                             [--prompt 64] [--gen 32] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import Any


def decided_threads(run_dir: str | None, topo: Any) -> tuple[int, str]:
    """The decode thread count the run folder's decision recommends, else the physical cores."""
    if run_dir:
        from coresweep.recommend.points import run_decisions

        d = run_decisions(run_dir).get("decode_tok_s")
        if d is not None and d.pick is not None:
            return d.threads, f"recommended for decode in {run_dir} ({d.status})"
    return topo.physical_core_count(), "the physical cores (no run folder given)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="deepseek-r1-distill-qwen-1.5b")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--runtime", default="ort")
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--run", default=None, help="run folder whose decode decision sets threads")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--out", default=None, help="run folder (resumed); default: a new temp dir")
    args = ap.parse_args()

    from coresweep.analysis.batching import AGG, ratio, with_aggregate
    from coresweep.machine.topology import read_topology
    from coresweep.measurement.config import TrialConfig
    from coresweep.measurement.sweep import sweep

    topo = read_topology()
    threads, why = ((int(args.threads), "given") if args.threads != "auto"
                    else decided_threads(args.run, topo))
    batches = [int(b) for b in args.batches.split(",")]
    configs = [TrialConfig(model=args.preset, precision=args.precision, runtime=args.runtime,
                           threads=threads, placement="cores-first", prompt_tokens=args.prompt,
                           gen_tokens=args.gen, reps=args.reps, warmup=1, batch=b,
                           role={"batch": b}, label=f"batch {b}") for b in batches]
    out = args.out or tempfile.mkdtemp(prefix="coresweep-batching-")
    print(f"{args.preset} {args.precision} ({args.runtime}), {threads} thread(s): {why}; prompt "
          f"{args.prompt}, {args.gen} tokens per sequence; run folder {out}", flush=True)
    run = sweep(configs, out=out, processes=args.processes, topo=topo, progress=False)
    s = with_aggregate(run.summary).set_index("label")
    trials = run.trials
    print(f"{'batch':>5} {'aggregate tok/s [95% CI]':>27} {'per seq':>8} {'TTFT ms':>8} "
          f"{'step ms':>8} {'CPU ms/tok':>10} {'procs':>5}  tokens")
    base_sum = None
    for b in batches:
        r = s.loc[f"batch {b}"]
        t = trials[trials["config_key"] == r["config_key"]]
        sums = set(t["checksum"])
        base_sum = sums if b == 1 else base_sum
        same = ("same in every sequence" if t["sequences_agree"].all() else "sequences differ")
        if base_sum is not None and b != 1:
            same += ", = batch 1" if sums == base_sum else ", ≠ batch 1"
        print(f"{b:>5} {r[f'{AGG}_median']:9.2f} [{r[f'{AGG}_ci_lo']:6.2f}, "
              f"{r[f'{AGG}_ci_hi']:6.2f}] {r['decode_tok_s_median']:8.2f} "
              f"{1000 * r['ttft_s_median']:8.0f} {r['step_ms']:8.1f} "
              f"{r['cpu_ms_per_token']:10.1f} {int(r['n_processes']):>5}  {same}")
    if "batch 4" in s.index and "batch 1" in s.index:
        m, lo, hi = ratio(s.loc["batch 4"], s.loc["batch 1"])
        print(f"aggregate decode batch 4 / batch 1 at {threads} thread(s): {m:.2f} "
              f"[{lo:.2f}-{hi:.2f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

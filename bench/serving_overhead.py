"""Speed bar: what serving over HTTP + SSE costs against the same engine in-process.

Same model, threads and CPUs on both arms; the arms alternate process by process (round k runs
in-process first when k is even). In-process: one fresh pinned worker process (`coresweep.sweep`,
the trials' protocol: warm-up discarded, `--reps` timed generations). Served: one gunicorn worker
pinned to the same CPUs, a warm-up request, then `--reps` streamed requests at concurrency 1,
timed at the client (TTFT = first streamed token; decode = (n-1) / (last - first token)).
Targets: serving costs <= 3 % of decode tok/s and <= 5 ms of TTFT. Prints, LAST, the decode
ratio served / in-process.

    python bench/serving_overhead.py [--preset qwen2.5-0.5b] [--threads 1] [--cpus 0]
                                     [--rounds 3] [--reps 3] [--prompt 64] [--gen 64]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile


def in_process(model: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    from coresweep.measurement.config import TrialConfig
    from coresweep.measurement.sweep import sweep

    cfg = TrialConfig(model=model, threads=args.threads, placement=args.cpus,
                      prompt_tokens=args.prompt, gen_tokens=args.gen, reps=args.reps, warmup=1)
    run = sweep([cfg], out=tempfile.mkdtemp(prefix="serving-bench-"), processes=1,
                progress=False, sample_interval_s=None)
    t = run.trials
    return list(t["decode_tok_s"]), list(t["ttft_s"])


def served(model_dir: str, prompt: list[int], args: argparse.Namespace) -> tuple[list, list]:
    from coresweep.machine.cpulist import parse_cpulist
    from coresweep.serving.config import ServeConfig
    from coresweep.serving.load import run_level
    from coresweep.serving.server import ServerProcess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServeConfig(model_dir=model_dir, workers=1, threads=args.threads,
                      slices=[parse_cpulist(args.cpus)], port=port)
    with ServerProcess(cfg) as srv:
        run_level(srv.url, mode="closed", level=1, n_requests=1, prompt=prompt, max_tokens=8)
        rows = run_level(srv.url, mode="closed", level=1, n_requests=args.reps, prompt=prompt,
                         max_tokens=args.gen, time_limit_s=600)
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"served requests failed: {bad[0]['error']}")
    return ([(len(r["itl_s"])) / sum(r["itl_s"]) for r in rows], [r["ttft_s"] for r in rows])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpus", default="0", help="the CPUs of both arms (kernel list syntax)")
    ap.add_argument("--rounds", type=int, default=3, help="process pairs (one of each arm)")
    ap.add_argument("--reps", type=int, default=3, help="timed generations per process")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=64)
    args = ap.parse_args()
    from coresweep.engines import make_prompt
    from coresweep.models import resolve_model

    model_dir = str(resolve_model(args.preset, "int4", build=True))
    prompt = make_prompt(model_dir, args.prompt)  # the ids the in-process trial uses (seed 0)
    arms: dict[str, tuple[list, list]] = {"in-process": ([], []), "served": ([], [])}
    for k in range(args.rounds):
        order = ("in-process", "served") if k % 2 == 0 else ("served", "in-process")
        for arm in order:
            dec, ttft = in_process(model_dir, args) if arm == "in-process" \
                else served(model_dir, prompt, args)
            arms[arm][0].extend(dec)
            arms[arm][1].extend(ttft)
            print(f"round {k} {arm:10s} decode {statistics.median(dec):7.2f} tok/s  TTFT "
                  f"{statistics.median(ttft) * 1000:8.2f} ms", flush=True)
    (d_in, t_in), (d_sv, t_sv) = arms["in-process"], arms["served"]
    ratio = statistics.median(d_sv) / statistics.median(d_in)
    ttft_ms = (statistics.median(t_sv) - statistics.median(t_in)) * 1000
    print(f"{args.preset}, {args.threads} thread(s) on CPUs {args.cpus}, prompt {args.prompt}, "
          f"gen {args.gen}, {args.rounds} rounds x {args.reps} reps")
    print(f"TTFT served - in-process: {ttft_ms:+.2f} ms (target <= 5 ms)")
    print(f"decode ratio served / in-process: {ratio:.3f} (target >= 0.97)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`coresweep trial`: measure one config in K fresh processes and print its statistics."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from coresweep.errors import CoresweepError


def _threads(s: str) -> int | None:
    if s in ("default", "ort-default"):
        return None
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid thread count {s!r}: a positive integer or 'ort-default'"
        ) from None


def _env(items: list[str] | None) -> dict[str, str]:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise CoresweepError(f"--env {it!r}: expected NAME=VALUE")
        k, v = it.split("=", 1)
        out[k] = v
    return out


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trial",
        help="measure one config (threads, placement) in several fresh processes",
        description="Measure one config: each process is fresh, pinned before onnxruntime is "
        "imported, warmed up, then timed; placement is verified from /proc.",
    )
    p.add_argument("--model", default="tiny", help="preset name or model dir/.onnx (default: tiny)")
    p.add_argument("--precision", default="int4", help="preset precision (default: int4)")
    p.add_argument("--threads", type=_threads, required=True,
                   help="intra-op threads, or 'ort-default' for ORT's own choice")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cpus", help="explicit CPU list, e.g. 0-3,8")
    where.add_argument("--placement", default="auto",
                       help="strategy: physical, smt, compact, scatter, numa:N, llc:N, pcore, "
                       "ecore, all, none (default: auto = physical)")
    p.add_argument("--engine", default="ort", help="ort or genai (default: ort)")
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--prompt-text", default=None,
                   help="prompt text through the model's tokenizer (chat template) instead of "
                        "--prompt-tokens synthetic ids")
    p.add_argument("--gen-tokens", type=int, default=32)
    p.add_argument("--processes", type=int, default=3, help="fresh worker processes (default 3)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per process (default 3)")
    p.add_argument("--warmup", "--warmups", dest="warmup", type=int, default=1, help="discarded warm-up runs (default 1)")
    p.add_argument("--smt", choices=["on", "off"], default=None)
    p.add_argument("--smt-mode", choices=["placement", "sysfs"], default="placement")
    p.add_argument("--env", action="append", metavar="NAME=VALUE", help="environment knob (repeat)")
    p.add_argument("--pin-threads", action="store_true", help="pin each ORT pool thread too")
    p.add_argument("--oversubscribe", action="store_true", help="allow more threads than CPUs")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per process (default 600)")
    p.add_argument("--sample-interval", type=float, default=0.1, help="CPU sampling period, s")
    p.add_argument("--out", default=None, help="run folder (default: a new temp dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def run(args: argparse.Namespace) -> int:
    from coresweep.measurement.sweep import sweep
    from coresweep.measurement.trial import TrialConfig

    cfg = TrialConfig(
        model=args.model,
        precision=args.precision,
        threads=args.threads,
        placement=args.cpus if args.cpus else args.placement,
        engine=args.engine,
        prompt_tokens=args.prompt_tokens,
        prompt_text=args.prompt_text,
        gen_tokens=args.gen_tokens,
        reps=args.reps,
        warmup=args.warmup,
        smt=args.smt,
        smt_mode=args.smt_mode,
        env=_env(args.env),
        pin_threads=args.pin_threads,
        oversubscribe=args.oversubscribe,
    )
    run_ = sweep(
        [cfg],
        out=args.out,
        processes=args.processes,
        timeout_s=args.timeout,
        sample_interval_s=args.sample_interval,
        progress=not args.json and sys.stderr.isatty(),
    )
    s = run_.summary
    stats = {k: _clean(v) for k, v in s.iloc[0].items()} if len(s) else {}
    fails = []
    if run_.failures is not None and len(run_.failures):
        fails = [
            {k: _clean(v) for k, v in r.items() if k != "stderr_tail"}
            for r in run_.failures.to_dict("records")
        ]
    placement = {}
    if run_.trials is not None and len(run_.trials):
        t = run_.trials
        placement = {
            "placement_ok": bool(t["placement_ok"].all()),
            "oversubscribed": bool(t["oversubscribed"].any()),
            "busy_threads": sorted({int(x) for x in t["busy_threads"]}),
            "cpus": t["cpus"].iloc[0],
            "cpus_used": sorted(set(t["cpus_used"])),
            "reasons": sorted({r for r in t["placement_reasons"] if r}),
        }
    flags = {k: v for k, v in stats.items() if k == "noisy" or k.endswith(("_noisy", "_disagree"))}
    if args.json:
        print(json.dumps(
            {"config": cfg.to_dict(), "key": cfg.key(), "run": str(run_.path),
             "statistics": stats, "placement": placement, "flags": flags, "failures": fails},
            indent=2, default=str,
        ))
    else:
        print(f"config   {cfg.display}  (key {cfg.key()})")
        print(f"run      {run_.path}")
        if stats:
            print(f"samples  {stats['n_processes']} processes, {stats['n_reps']} timed repetitions")
            for m, unit in (("ttft_s", "s"), ("decode_tok_s", "tok/s"), ("prefill_tok_s", "tok/s"),
                            ("load_s", "s")):
                print(f"{m:<14} median {stats[f'{m}_median']:.4g} {unit}  95% CI "
                      f"[{stats[f'{m}_ci_lo']:.4g}, {stats[f'{m}_ci_hi']:.4g}]  p10-p90 "
                      f"{stats[f'{m}_p10']:.4g}-{stats[f'{m}_p90']:.4g}  CV "
                      f"{100 * (stats[f'{m}_cv'] or 0):.1f}%")
            print(f"token latency  p50 {stats.get('token_latency_p50_s', float('nan')) * 1e3:.2f} ms"
                  f"  p99 {stats.get('token_latency_p99_s', float('nan')) * 1e3:.2f} ms")
        if placement:
            print(f"placement {'OK' if placement['placement_ok'] else 'MISMATCH'}: CPUs "
                  f"{placement['cpus']}, busy threads {placement['busy_threads']}, ran on "
                  f"{placement['cpus_used']}")
            for r in placement["reasons"]:
                print(f"  - {r}")
        if flags.get("noisy"):
            print("noisy: " + ", ".join(k for k, v in flags.items() if v and k != "noisy"))
        for f in fails:
            print(f"failed process {f['process']}: {f['status']}: {f['reason']}")
    return 0 if stats else 1

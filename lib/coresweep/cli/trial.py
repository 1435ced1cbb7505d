"""`coresweep trial`: measure one config in K fresh processes and print its statistics."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from coresweep.cli import argtypes
from coresweep.errors import CoresweepError, PlacementError
from coresweep.parameters import PROTOCOL, SESSION, SMT_MODE, WORKLOAD, add_argument

# earlier spellings of some flags, still accepted
_ALIASES = {"warmup": ("--warmups",), "timeout_s": ("--timeout",),
            "sample_interval_s": ("--sample-interval",)}


def threads_arg(s: str, *, auto: bool = False) -> int | str | None:
    """A thread count flag: a positive integer, 'ort-default' (None: ORT's own count), and
    'auto' where the command has one."""
    if s in ("default", "ort-default"):
        return None
    if auto and s == "auto":
        return s
    try:
        value = int(s)
    except ValueError:
        value = 0
    if value < 1:
        choices = "a positive integer, 'ort-default'" + (" or 'auto'" if auto else "")
        raise argparse.ArgumentTypeError(f"invalid thread count {s!r}: {choices}")
    return value


def placement_arg(s: str) -> str:
    """--placement: 'auto', a strategy name, numa:N / llc:N or a CPU list (whether the machine
    has it is checked later, against its topology)."""
    from coresweep.machine.placement import STRATEGIES

    name = s.strip().lower()
    if name == "auto" or name in STRATEGIES:
        return name
    if name[:1].isdigit():  # a CPU list, as --cpus takes
        return argtypes.cpu_list(name)
    head, sep, tail = name.partition(":")
    if sep and f"{head}:N" in STRATEGIES and tail.isdigit():
        return name
    raise argparse.ArgumentTypeError(
        f"unknown strategy {s!r}; valid: auto, {', '.join(STRATEGIES)} (N a node or LLC "
        "number), or a CPU list such as 0-3")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trial",
        help="measure one config (threads, placement) in several fresh processes",
        description="Measure one config: each process is fresh, pinned before onnxruntime is "
        "imported, warmed up, then timed; placement is verified from /proc.",
    )
    for name in WORKLOAD:
        add_argument(p, WORKLOAD[name], *_ALIASES.get(name, ()))
    for name in PROTOCOL:
        add_argument(p, PROTOCOL[name], *_ALIASES.get(name, ()))
    p.add_argument("--threads", type=threads_arg, required=True,
                   help="intra-op threads, or 'ort-default' for ORT's own choice")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cpus", type=argtypes.cpu_list, help="explicit CPU list, e.g. 0-3,8")
    where.add_argument("--placement", default="auto", type=placement_arg,
                       help="strategy: physical, smt, compact, scatter, numa:N, llc:N, pcore, "
                       "ecore, all, none (default: auto = physical)")
    p.add_argument("--smt", choices=["on", "off"], default=None)
    add_argument(p, SMT_MODE)
    p.add_argument("--env", action="append", metavar="NAME=VALUE", type=argtypes.env_item,
                   help="environment knob (repeat)")
    for name in SESSION:
        add_argument(p, SESSION[name])
    p.add_argument("--oversubscribe", action="store_true", help="allow more threads than CPUs")
    p.add_argument("--out", default=None, type=argtypes.RUN_OUT,
                   help="run folder: new, empty, or an earlier trial's to resume (default: a new "
                   "temp dir)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _config(args: argparse.Namespace) -> Any:
    from coresweep.measurement.config import TrialConfig

    for name, what in (("prompt_tokens", "prompt length"), ("runtime", "runtime")):
        value = getattr(args, name)
        if isinstance(value, list):
            raise CoresweepError(f"--{name.replace('_', '-')} {','.join(map(str, value))}: "
                                 f"coresweep trial measures one config, so one {what}; sweep "
                                 f"several with coresweep run (the threads study) or "
                                 f"sweep.grid({name}=[...])")
    return TrialConfig(
        **{k: getattr(args, k) for k in WORKLOAD if k != "prompt_text"},
        prompt_text=args.prompt_text or None,
        threads=args.threads,
        placement=args.cpus if args.cpus else args.placement,
        smt=args.smt,
        smt_mode=args.smt_mode,
        env=dict(args.env or []),
        session=TrialConfig.session_knobs(vars(args)),
        pin_threads=args.pin_threads,
        numa_memory=args.numa_memory,
        oversubscribe=args.oversubscribe,
    )


def _placement(trials: Any) -> dict[str, Any]:
    if trials is None or not len(trials):
        return {}
    return {
        "placement_ok": bool(trials["placement_ok"].all()),
        "oversubscribed": bool(trials["oversubscribed"].any()),
        "busy_threads": sorted({int(x) for x in trials["busy_threads"]}),
        "cpus": trials["cpus"].iloc[0],
        "cpus_used": sorted(set(trials["cpus_used"])),
        "reasons": sorted({r for r in trials["placement_reasons"] if r}),
    }


def _outcome(run_: Any) -> dict[str, Any]:
    s = run_.summary
    stats = {k: _clean(v) for k, v in s.iloc[0].items()} if len(s) else {}
    fails = []
    if run_.failures is not None and len(run_.failures):
        fails = [{k: _clean(v) for k, v in r.items() if k != "stderr_tail"}
                 for r in run_.failures.to_dict("records")]
    flags = {k: v for k, v in stats.items() if k == "noisy" or k.endswith(("_noisy", "_disagree"))}
    return {"statistics": stats, "placement": _placement(run_.trials), "flags": flags,
            "failures": fails}


def _print_text(cfg: Any, run_: Any, out: dict[str, Any]) -> None:
    stats, placement, flags = out["statistics"], out["placement"], out["flags"]
    print(f"config   {cfg.display}  (key {cfg.key()})")
    print(f"run      {run_.path}")
    if stats:
        print(f"samples  {stats['n_processes']} processes, {stats['n_reps']} timed repetitions"
              f" (stopped: {stats['stop_reason']})")
        for m, unit in (("ttft_s", "s"), ("decode_tok_s", "tok/s"), ("prefill_tok_s", "tok/s"),
                        ("load_s", "s")):
            print(f"{m:<14} median {stats[f'{m}_median']:.4g} {unit}  95% CI "
                  f"[{stats[f'{m}_ci_lo']:.4g}, {stats[f'{m}_ci_hi']:.4g}]  p10-p90 "
                  f"{stats[f'{m}_p10']:.4g}-{stats[f'{m}_p90']:.4g}  CV "
                  f"{100 * (stats[f'{m}_cv'] or 0):.1f}%")
        batch = int(stats.get("batch") or 1)
        if batch > 1:  # decode_tok_s is each sequence's: the batch shares every step
            print(f"{'aggregate':<14} median {batch * stats['decode_tok_s_median']:.4g} tok/s  "
                  f"95% CI [{batch * stats['decode_tok_s_ci_lo']:.4g}, "
                  f"{batch * stats['decode_tok_s_ci_hi']:.4g}]  ({batch} sequences x decode)")
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
    for f in out["failures"]:
        print(f"failed process {f['process']}: {f['status']}: {f['reason']}")


def _check_placement(cfg: Any, args: argparse.Namespace) -> None:
    """The plan on this machine, before any process: an error names the flags that made it."""
    from coresweep.machine.topology import read_topology
    from coresweep.measurement.trial import plan_for

    where = f"--cpus {args.cpus}" if args.cpus else f"--placement {args.placement}"
    try:
        plan_for(cfg, read_topology())
    except PlacementError as exc:
        threads = "ort-default" if args.threads is None else args.threads
        raise PlacementError(f"--threads {threads} with {where}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from coresweep.measurement import adaptive
    from coresweep.measurement.sweep import sweep

    cfg = _config(args)
    _check_placement(cfg, args)
    run_ = sweep([cfg], out=args.out, processes=args.processes, timeout_s=args.timeout_s,
                 sample_interval_s=args.sample_interval_s, adaptive=adaptive.settings(vars(args)),
                 progress=not args.json and sys.stderr.isatty())
    out = _outcome(run_)
    if args.json:
        print(json.dumps({"config": cfg.to_dict(), "key": cfg.key(), "run": str(run_.path), **out},
                         indent=2, default=str))
    else:
        _print_text(cfg, run_, out)
    return 0 if out["statistics"] else 1

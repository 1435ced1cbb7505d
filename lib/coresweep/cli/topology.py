"""`coresweep topology`: print the machine model (readable, or JSON), from this machine or a tree."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from coresweep.cli import argtypes
from coresweep.errors import CoresweepError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "topology",
        help="show CPUs, cores, SMT siblings, caches, NUMA, hybrid parts and cgroup limits",
        description=(
            "Show the machine model coresweep places threads on: one row per logical CPU with its "
            "package, core, SMT siblings, L2/L3 domain, NUMA node and kind (P/E), after a header "
            "with counts, caches, SMT state and cgroup limits. See docs/topology.md."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the whole model as JSON")
    p.add_argument(
        "--sysfs",
        metavar="DIR",
        default="/",
        type=argtypes.folder_to_read,
        help="read a captured tree laid out like / (DIR/sys/..., DIR/proc/...) instead of this machine",
    )
    p.add_argument(
        "--fingerprint",
        action="store_true",
        help="with --json: print the full machine fingerprint (versions, env, THP, load average)",
    )
    p.add_argument(
        "--capture",
        metavar="DEST",
        type=argtypes.captured_tree_dest,
        help="copy the files the model is read from into DEST (a tree usable with --sysfs)",
    )
    p.add_argument(
        "--plan",
        metavar="STRATEGY",
        help="also show the placement plan for STRATEGY (needs --threads), e.g. physical or 0-3",
    )
    p.add_argument("--threads", type=argtypes.positive_int, help="thread count for --plan")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # `coresweep topology | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _check_combination(args: argparse.Namespace) -> None:
    """Flags that only mean something with another one: an error, never silently ignored."""
    if args.plan is not None and args.threads is None:
        raise CoresweepError("--plan needs --threads N (a positive integer)")
    if args.threads is not None and args.plan is None:
        raise CoresweepError("--threads is the thread count of --plan STRATEGY: give --plan too")
    if args.fingerprint and not args.json:
        raise CoresweepError("--fingerprint prints JSON: add --json")
    if args.capture and (args.json or args.plan or args.fingerprint):
        raise CoresweepError("--capture DEST only copies the files (use --sysfs DEST later); "
                             "drop --json, --plan and --fingerprint")


def _plan(topo: Any, args: argparse.Namespace) -> Any:
    from coresweep.machine.placement import make_plan

    try:
        return make_plan(topo, args.threads, args.plan)
    except CoresweepError as exc:
        raise CoresweepError(f"--plan {args.plan} --threads {args.threads}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from coresweep.machine.capture import capture_tree
    from coresweep.machine.fingerprint import fingerprint
    from coresweep.machine.topology import read_topology

    _check_combination(args)
    root = Path(args.sysfs)
    if args.capture:
        files = capture_tree(args.capture, root)
        print(f"captured {len(files)} files into {args.capture}")
        return 0
    try:
        topo = read_topology(root)
    except CoresweepError as exc:
        raise CoresweepError(f"--sysfs {args.sysfs}: {exc}") from None
    plan = _plan(topo, args) if args.plan is not None else None
    if args.json:
        data = fingerprint(topo) if args.fingerprint else topo.to_dict()
        if plan is not None:
            data = dict(data, plan=plan.to_dict())
        json.dump(data, sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
        return 0
    from coresweep.machine.describe import describe

    print(describe(topo))
    if plan is not None:
        print()
        print(f"Plan:       {plan.description}")
        print(f"Mask:       {plan.cpulist}")
        print(f"ORT:        session.intra_op_thread_affinities = {plan.ort_affinity_string()!r}")
    return 0

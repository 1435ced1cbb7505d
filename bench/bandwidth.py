"""Speed bar: the portable ORT read-bandwidth measurement against likwid-bench, same placement.

For threads 1..N (N = usable CPUs) on the first N usable CPUs, `--rounds` rounds; in each round
both methods run at every thread count, the order alternating round by round (ort first when the
round is even), each call `--reps` reps on `--size-mib` MiB (default max(1 GiB, 8 × LLC)).
Targets: ORT's pool scales (the N-thread ORT figure is not below the 1-thread one) and the
portable figure is within 20 % of likwid-bench (0.80 <= ratio <= 1.20). Prints a table (ratio:
median ort / median likwid; paired: median of the per-round ratios), the targets, and LAST the
median over thread counts of ort/likwid.

    python bench/bandwidth.py [--rounds 3] [--reps 3] [--size-mib 1024] [--max-threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

from coresweep.machine.cpulist import format_cpulist
from coresweep.measurement.bandwidth_probe import measure_bandwidth


def measure(cpus: list[int], threads: int, method: str, args: argparse.Namespace) -> dict:
    size = None if args.size_mib is None else args.size_mib << 20
    (row,) = measure_bandwidth(cpus, threads, method=method, size_bytes=size, reps=args.reps)
    if not row["ok"]:
        raise SystemExit(f"{method} at {threads} threads on CPUs {row['cpus']}: {row['reason']}")
    return row


def run(args: argparse.Namespace) -> dict[tuple[int, str], list[dict]]:
    usable = sorted(os.sched_getaffinity(0))
    top = min(len(usable), args.max_threads or len(usable))
    rows: dict[tuple[int, str], list[dict]] = {}
    for rnd in range(args.rounds):
        order = ("ort", "likwid") if rnd % 2 == 0 else ("likwid", "ort")
        for threads in range(1, top + 1):
            for method in order:
                row = measure(usable[:threads], threads, method, args)
                rows.setdefault((threads, method), []).append(row)
                print(f"  round {rnd} threads {threads} {method:6s} {row['gb_s']:6.2f} GB/s",
                      file=sys.stderr, flush=True)
    return rows


def table(rows: dict[tuple[int, str], list[dict]]) -> list[float]:
    """Print one line per thread count; returns the ort/likwid ratio of each."""
    print(f"{'threads':>7} {'cpus':>6} {'ort GB/s':>9} {'(min-max)':>13} {'busy':>5} "
          f"{'likwid GB/s':>11} {'(min-max)':>13} {'ratio':>6} {'paired':>6}")
    ratios = []
    for threads in sorted({t for t, _ in rows}):
        o, lk = rows[(threads, "ort")], rows[(threads, "likwid")]
        om = statistics.median(r["gb_s"] for r in o)
        lm = statistics.median(r["gb_s"] for r in lk)
        busy = statistics.median(r["busy_cpus"] for r in o)
        ratios.append(om / lm)
        # the two arms of one round ran seconds apart: their ratio is blind to slow drift
        paired = statistics.median(a["gb_s"] / b["gb_s"] for a, b in zip(o, lk, strict=True))
        print(f"{threads:>7} {o[0]['cpus']:>6} {om:9.2f} "
              f"{min(r['gb_s_min'] for r in o):6.2f}-{max(r['gb_s_max'] for r in o):<6.2f} "
              f"{busy:5.2f} {lm:11.2f} "
              f"{min(r['gb_s_min'] for r in lk):6.2f}-{max(r['gb_s_max'] for r in lk):<6.2f} "
              f"{om / lm:6.2f} {paired:6.2f}")
    return ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=None, help="default max(1 GiB, 8 x LLC)")
    ap.add_argument("--max-threads", type=int, default=None)
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    rows = run(args)
    first = next(iter(rows.values()))[0]
    print(f"size {first['size_bytes'] / 2**20:.0f} MiB; {args.rounds} rounds x {args.reps} reps; "
          f"ort: {first['kernel']} ({first['tool_version']}); "
          f"likwid: {rows[(1, 'likwid')][0]['kernel']} ({rows[(1, 'likwid')][0]['tool_version']}); "
          f"usable CPUs {format_cpulist(os.sched_getaffinity(0))}; "
          f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    print("busy = ORT worker CPU time / wall while timed (below the thread count: it shared its "
          "CPUs)")
    ratios = table(rows)
    top = max(t for t, _ in rows)
    ort1 = statistics.median(r["gb_s"] for r in rows[(1, "ort")])
    ortn = statistics.median(r["gb_s"] for r in rows[(top, "ort")])
    ratio = statistics.median(ratios)
    scales = ortn >= ort1
    close = 0.8 <= ratio <= 1.2 and math.isfinite(ratio)
    print(f"target: ORT scales ({top} threads {ortn:.2f} >= 1 thread {ort1:.2f} GB/s): "
          f"{'PASS' if scales else 'FAIL'}")
    print(f"target: 0.80 <= ort/likwid <= 1.20: {'PASS' if close else 'FAIL'}")
    print(f"ort/likwid bandwidth ratio: {ratio:.2f}")
    return 0 if scales and close else 1


if __name__ == "__main__":
    sys.exit(main())

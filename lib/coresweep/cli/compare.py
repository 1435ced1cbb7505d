"""`coresweep compare RUN_DIR RUN_DIR... [--out DIR]`: runs of the same work side by side."""

from __future__ import annotations

import argparse


def _compare(args: argparse.Namespace) -> int:
    from coresweep.compare import compare_runs

    print(compare_runs(args.run_dirs, out=args.out))
    return 0


def register(subparsers) -> None:
    c = subparsers.add_parser(
        "compare", help="compare run folders (other machines' too) in one self-contained page",
        description="Overlay the thread sweeps of several run folders (decode tok/s, TTFT, CPU "
        "%), normalised per physical core used, against each machine's measured memory "
        "bandwidth and against 1 thread; the study's table, the recommendations and the "
        "machine fingerprints side by side. Only runs of the same work (model graph, prompt and "
        "generated length: the token checksum) are compared; the page names the others and "
        "what differs. Writes DIR/compare.html (offline) and lists it in the reports index.")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="two or more run folders (e.g. reports/<machine>-<time>)")
    c.add_argument("--out", metavar="DIR",
                   help="comparison folder (default reports/compare-<time>)")
    c.set_defaults(func=_compare)

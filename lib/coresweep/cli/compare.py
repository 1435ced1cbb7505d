"""`coresweep compare RUN_DIR RUN_DIR... [--out DIR]`: runs of the same work side by side."""

from __future__ import annotations

import argparse

from coresweep.cli import argtypes


def _compare(args: argparse.Namespace) -> int:
    from coresweep.compare import compare_runs
    from coresweep.report.index import index_of, no_index_note
    from coresweep.report.paths import reports_root

    if args.out is None:
        argtypes.default_folder(reports_root(), "--out")
    page = compare_runs(args.run_dirs, out=args.out)
    print(page)
    print(index_of(page.parent) or no_index_note(page.parent))
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
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", type=argtypes.run_folder,
                   help="two or more run folders (e.g. reports/<machine>-<time>)")
    c.add_argument("--out", metavar="DIR", type=argtypes.COMPARE_OUT,
                   help="comparison folder: new, empty or an earlier comparison's (default "
                   "reports/compare-<time>)")
    c.set_defaults(func=_compare)

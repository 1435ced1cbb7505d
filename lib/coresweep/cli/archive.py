"""`coresweep export RUN_DIR [--out FILE]` and `coresweep import ARCHIVE [--reports DIR]`: a run
folder moved between machines as one .tar.gz."""

from __future__ import annotations

import argparse


def _export(args: argparse.Namespace) -> int:
    from coresweep.compare import export_run

    path = export_run(args.run_dir, out=args.out)
    print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from coresweep.compare import import_run
    from coresweep.measurement.store import SCHEMA_VERSION, Store

    run_dir = import_run(args.archive, reports=args.reports)
    version = Store(run_dir).check_readable()
    if version < SCHEMA_VERSION:
        print(f"note: written by an older coresweep (result schema {version}); read as such")
    print(run_dir)
    print(run_dir.parent / "index.html")
    return 0


def register(subparsers) -> None:
    e = subparsers.add_parser(
        "export", help="pack a run folder into one .tar.gz to share it",
        description="Pack a run folder (data/, run.json, batch.json, HTML reports, summaries) "
        "into <run>.tar.gz; `coresweep import` unpacks it on another machine.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    e.add_argument("--out", metavar="FILE", help="archive file or folder (default: "
                   "./<run>.tar.gz)")
    e.set_defaults(func=_export)

    i = subparsers.add_parser(
        "import", help="unpack a run archive under reports/ and re-render the index",
        description="Unpack a .tar.gz made by `coresweep export` into reports/<run>/ and "
        "re-render reports/index.html. Archives with links, absolute or '..' paths, no "
        "run.json, a newer result schema, or that are truncated are refused with nothing "
        "written.")
    i.add_argument("archive", metavar="ARCHIVE", help="the .tar.gz")
    i.add_argument("--reports", metavar="DIR", help="reports folder (default reports/)")
    i.set_defaults(func=_import)

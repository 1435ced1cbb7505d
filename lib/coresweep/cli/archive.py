"""`coresweep export RUN_DIR [--out FILE]` and `coresweep import ARCHIVE [--reports DIR]`: a run
folder moved between machines as one .tar.gz."""

from __future__ import annotations

import argparse

from coresweep.cli import argtypes


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coresweep.compare import export_run

    if args.out is None:
        argtypes.default_folder(Path.cwd(), "--out")
    path = export_run(args.run_dir, out=args.out)
    print(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


def _import(args: argparse.Namespace) -> int:
    from coresweep.compare import import_run
    from coresweep.measurement.store import SCHEMA_VERSION, Store
    from coresweep.report.paths import reports_root

    if args.reports is None:
        argtypes.default_folder(reports_root(), "--reports")
    run_dir = import_run(args.archive, reports=args.reports, max_bytes=args.max_size)
    version = Store(run_dir).check_readable()
    if version < SCHEMA_VERSION:
        print(f"note: written by an older coresweep (result schema {version}); read as such")
    print(run_dir)
    print(run_dir.parent / "index.html")
    return 0


def register(subparsers) -> None:
    from coresweep.compare.archive import MAX_IMPORT_BYTES

    e = subparsers.add_parser(
        "export", help="pack a run folder into one .tar.gz to share it",
        description="Pack a run folder (data/, run.json, batch.json, HTML reports, summaries) "
        "into <run>.tar.gz; `coresweep import` unpacks it on another machine.")
    e.add_argument("run_dir", metavar="RUN_DIR", type=argtypes.run_folder, help="the run folder")
    e.add_argument("--out", metavar="FILE", type=argtypes.file_to_write,
                   help="archive file (replaced if it exists) or folder (default: "
                   "./<run>.tar.gz)")
    e.set_defaults(func=_export)

    i = subparsers.add_parser(
        "import", help="unpack a run archive under reports/ and re-render the index",
        description="Unpack a .tar.gz made by `coresweep export` into reports/<run>/ and "
        "re-render reports/index.html. Archives with links, absolute or '..' paths, no "
        "run.json, a newer result schema, over the size limit, or that are truncated are "
        "refused with nothing written.")
    i.add_argument("archive", metavar="ARCHIVE", type=argtypes.file_to_read, help="the .tar.gz")
    i.add_argument("--reports", metavar="DIR", type=argtypes.folder_to_write,
                   help="reports folder (default reports/)")
    i.add_argument("--max-size", metavar="SIZE", type=argtypes.byte_size,
                   default=MAX_IMPORT_BYTES,
                   help="refuse an archive larger than SIZE on disk or unpacked, e.g. 500M, 8G "
                   f"(default {MAX_IMPORT_BYTES >> 30}G)")
    i.set_defaults(func=_import)

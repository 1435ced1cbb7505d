"""`coresweep run PARAMS.yaml [-p key=value ...] [--out DIR] [--notebooks ...]`,
`coresweep report [RUN_DIR ...]` and `coresweep params [PARAMS.yaml]`."""

from __future__ import annotations

import argparse
import json

from coresweep.cli import argtypes
from coresweep.errors import CoresweepError


def _run(args: argparse.Namespace) -> int:
    from coresweep.report import run_batch
    from coresweep.report.index import index_of, no_index_note
    from coresweep.report.paths import reports_root

    if args.plan:
        return _plan(args)
    if args.out is None:
        argtypes.default_folder(reports_root(), "--out")
    run_dir = run_batch(args.params, args.p or [], out=args.out, notebooks=args.notebooks,
                        html_reports=not args.no_html, progress=not args.quiet,
                        started=args.started_at)
    index = index_of(run_dir)
    print(index if index else f"{run_dir}\n{no_index_note(run_dir)}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from coresweep.report.batch import plan_only

    _, cal = plan_only(args.params, args.p or [], notebooks=args.notebooks,
                       topology_root=args.sysfs, calibration=args.calibration)
    if args.save_calibration and cal is not None:
        from pathlib import Path

        Path(args.save_calibration).write_text(json.dumps(cal.to_dict(), indent=1) + "\n")
    return 0


def _epoch(text: str) -> float:
    """--started-at: seconds since the epoch, not in the future."""
    import time

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time in seconds since the epoch "
                                         "(e.g. $(date +%s))") from None
    if not 0 < value <= time.time() + 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a past time in seconds since the "
                                         "epoch (e.g. $(date +%s))")
    return value


def _report(args: argparse.Namespace) -> int:
    from coresweep.report import rerender
    from coresweep.report.index import no_index_note
    from coresweep.report.paths import reports_root, run_file

    root = reports_root()
    if not args.run_dirs and not any(run_file(d, "batch").is_file() for d in root.glob("*")):
        raise CoresweepError(f"no run folder under {root} to re-render; give RUN_DIR (a folder "
                             "written by coresweep run)")
    index = rerender(args.run_dirs)
    print(index if index else "\n".join(f"{d}: {no_index_note(d)}" for d in args.run_dirs))
    return 0


def _params(args: argparse.Namespace) -> int:
    from coresweep import studies
    from coresweep.parameters import describe

    if args.markdown:
        if args.params or args.p:
            raise CoresweepError("--markdown prints the whole reference: give no PARAMS and no -p")
        print(studies.reference_markdown(), end="")
        return 0
    if args.params or args.p:  # -p alone: the defaults with those overrides
        v = studies.validate(studies.load(args.params, args.p or []))
        print(json.dumps(v.to_dict(), indent=1))
        return 0
    for s in studies.all_studies():
        own = {k: p for k, p in s.schema().items() if k in s.params}
        print(f"# {s.id}: {s.title}\n{describe(own) if own else '(no parameters of its own)'}\n")
    shared = {k: p for k, p in studies.schema().items()
              if not any(k in s.params for s in studies.all_studies())}
    print(f"# every study\n{describe(shared)}")
    return 0


def _study_ids() -> str:
    from coresweep import studies

    return ", ".join(s.id for s in studies.all_studies())


def _study_list() -> str:
    from coresweep import studies

    return ", ".join(f"{s.id} ({s.title})" for s in studies.all_studies())


def register(subparsers) -> None:
    r = subparsers.add_parser(
        "run", help="run every study's notebook with papermill into reports/<machine>-<timestamp>/",
        description="Validate the parameters and every trial first, build the model if it is a "
        "missing preset, run the notebooks with papermill, render self-contained HTML, the "
        "summary (markdown + CSV) and reports/index.html. Re-running with --out on the same "
        f"folder reuses finished trials. Studies: {_study_list()}.")
    r.add_argument("params", type=argtypes.file_to_read,
                   help="parameter file (YAML), e.g. params/quick.yaml")
    r.add_argument("-p", action="append", metavar="KEY=VALUE", type=argtypes.override,
                   help="override a parameter (repeatable), e.g. -p threads=1,2,4 -p reps=3")
    r.add_argument("--out", metavar="DIR", type=argtypes.RUN_OUT,
                   help="run folder: new, empty, or an earlier run to resume (default "
                   "reports/<machine>-<time>)")
    r.add_argument("--notebooks", nargs="+", metavar="STUDY", type=argtypes.study,
                   help=f"only these studies, by id, name or number: {_study_ids()}")
    r.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    r.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress bars")
    r.add_argument("--plan", action="store_true",
                   help="print the plan within the budget (studies, points, processes, serving "
                   "levels, estimated time of each) and exit; builds the model if missing and "
                   "calibrates with a few short trials, runs no study")
    r.add_argument("--started-at", type=_epoch, metavar="EPOCH",
                   help="when the budget started counting, seconds since the epoch (make report "
                   "passes the moment make began, so the venv and model build count)")
    r.add_argument("--sysfs", metavar="DIR",
                   help="with --plan: plan for a captured machine (a tree laid out like /, see "
                   "`coresweep topology --capture`); needs --calibration")
    r.add_argument("--calibration", metavar="FILE",
                   help="with --plan: the calibration to plan with (JSON from --save-calibration)")
    r.add_argument("--save-calibration", metavar="FILE",
                   help="with --plan: write this machine's calibration as JSON")
    r.set_defaults(func=_run)

    rep = subparsers.add_parser(
        "report", help="re-render HTML, summaries and reports/index.html of run folders")
    rep.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", type=argtypes.batch_folder,
                     help="run folders (default: every run under reports/)")
    rep.set_defaults(func=_report)

    pp = subparsers.add_parser("params", help="list the parameters by study, or validate a "
                               "parameter file")
    pp.add_argument("params", nargs="?", type=argtypes.file_to_read,
                    help="parameter file to validate and resolve")
    pp.add_argument("-p", action="append", metavar="KEY=VALUE", type=argtypes.override,
                    help="override a parameter (without PARAMS: over the defaults)")
    pp.add_argument("--markdown", action="store_true",
                    help="print the parameter reference as markdown (docs/parameters.md)")
    pp.set_defaults(func=_params)

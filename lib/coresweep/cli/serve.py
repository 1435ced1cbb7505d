"""`coresweep serve --model M --workers W --threads T [--batch B] [--dispatch haproxy|...]`:
W pinned worker processes (gunicorn + uvicorn + FastAPI, OpenAI completions API) behind a
load-aware dispatcher (HAProxy), in the foreground; with --batch B each worker decodes up to B
requests together (HAProxy sends it up to B at once). Every bad flag is a one-line error (exit 2)
before anything starts."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from coresweep.cli.trial import threads_arg
from coresweep.parameters import WORKLOAD, add_argument, scalar_param

PLACEMENTS = ("partition", "none")


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None


def _one_line_error(parser: argparse.ArgumentParser) -> Any:
    """argparse's errors in one line, as every other bad flag of `serve` (exit 2)."""

    def error(message: str) -> NoReturn:
        parser.exit(2, f"coresweep serve: error: {message} (see coresweep serve --help)\n")

    return error


def register(subparsers: Any) -> None:
    from coresweep.serving.batcher import POLICIES
    from coresweep.serving.config import DISPATCHES

    p = subparsers.add_parser(
        "serve", help="serve a model with W pinned worker processes (OpenAI completions API)",
        description="W gunicorn workers (uvicorn, FastAPI), each pinned to its own slice of the "
        "usable CPUs (whole cores, one LLC/NUMA domain when it fits) before it imports "
        "onnxruntime, loading the model with T intra-op threads; HAProxy in front sends each "
        "request to an idle worker (leastconn, one request per worker, one bounded queue: 503 "
        "with Retry-After beyond it). POST /v1/completions (stream: true for SSE), GET /health "
        "(every worker's CPUs read back from /proc, its state and requests served; the queue). "
        "SIGTERM drains queued and in-flight requests, then stops.")
    p.error = _one_line_error(p)  # type: ignore[method-assign]
    add_argument(p, WORKLOAD["model"])
    add_argument(p, WORKLOAD["precision"])
    add_argument(p, scalar_param(WORKLOAD["runtime"]))
    p.add_argument("--workers", type=_int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", type=lambda s: threads_arg(s, auto=True), default="auto",
                   help="intra-op threads per worker, 'ort-default', or auto: the physical cores "
                   "of each worker's slice (default auto)")
    choices = (  # flag, choices, default, what the choices mean
        ("--placement", PLACEMENTS, "partition",
         "partition: disjoint CPU slices; none: workers unpinned"),
        ("--dispatch", DISPATCHES, "haproxy",
         "haproxy: load-aware; shared-socket: the study's setup, every worker accepts on one "
         "socket (not load-aware); prefork: gunicorn sync workers, only an idle one accepts (no "
         "queue limit)"),
        ("--batching", POLICIES, "continuous",
         "with --batch: continuous (a request joins the running batch at the next step, a "
         "finished one frees its slot at once) or static (requests that arrive during a batch "
         "wait until it ends)"))
    for flag, valid, default, meaning in choices:
        p.add_argument(flag, choices=valid, default=default, help=f"{meaning} (default {default})")
    p.add_argument("--batch", type=_int, default=1,
                   help="requests each worker decodes together (one forward pass per step for "
                   "all; HAProxy sends a worker up to this many); 1: one at a time (default 1)")
    p.add_argument("--batch-window", type=_float, default=0.02,
                   help="seconds an empty batch waits for more requests to join (default 0.02)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=_int, default=8000,
                   help="port of the server (default 8000); with HAProxy the workers use the "
                   "next W ports")
    p.add_argument("--max-queue", type=_int, default=16,
                   help="requests that may wait for a worker; more get 503 (default 16)")
    p.add_argument("--request-timeout", type=_float, default=600.0,
                   help="seconds a request may wait in the queue, and generate (default 600)")
    p.add_argument("--drain-timeout", type=_float, default=60.0,
                   help="seconds SIGTERM waits for queued and in-flight requests (default 60)")
    p.add_argument("--max-requests", type=_int, default=0,
                   help="recycle a worker after this many requests (gunicorn; 0 = never)")
    p.add_argument("--print-config", action="store_true",
                   help="print the deployment (gunicorn.conf.py, haproxy.cfg, run.sh) and exit")
    p.add_argument("--write-config", metavar="DIR",
                   help="write the deployment's files into DIR and exit")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from coresweep.errors import CoresweepError
    from coresweep.serving.plan import serve_config

    if args.max_requests < 0:
        raise CoresweepError(f"--max-requests must be 0 or more, got {args.max_requests}")
    return serve_config(args.model, args.precision, workers=args.workers, threads=args.threads,
                        pinned=args.placement == "partition", runtime=args.runtime,
                        host=args.host, port=args.port, dispatch=args.dispatch,
                        max_queue=args.max_queue, request_timeout_s=args.request_timeout,
                        drain_timeout_s=args.drain_timeout, max_requests=args.max_requests,
                        max_requests_jitter=args.max_requests // 10, batch=args.batch,
                        batching=args.batching, batch_window_s=args.batch_window)


def run(args: argparse.Namespace) -> int:
    from coresweep.serving.config import is_loopback
    from coresweep.serving.deploy import deployment_files
    from coresweep.serving.server import check_can_serve, check_ports_free, serve, write_deployment

    cfg = _config(args)
    if args.print_config:
        for name, text in deployment_files(cfg).items():
            print(f"# ==> {name} <==\n{text}")
        return 0
    if args.write_config:
        run_sh = write_deployment(cfg, args.write_config)
        print(f"wrote {', '.join(deployment_files(cfg))} into {run_sh.parent}: start with "
              f"{run_sh}", file=sys.stderr)
        return 0
    check_can_serve(cfg)
    check_ports_free(cfg)
    if not is_loopback(args.host):
        print(f"coresweep serve: warning: binding {args.host}, which is not a loopback address: "
              "the server is reachable from the network", file=sys.stderr)
    for i, cpus in enumerate(cfg.slices or []):
        print(f"worker {i}: CPUs {cpus}, {cfg.threads or 'ORT-default'} thread(s)"
              + (f", port {cfg.port_of(i)}" if cfg.dispatch == "haproxy" else ""),
              file=sys.stderr)
    batching = f", batch {cfg.batch} ({cfg.batching})" if cfg.batch > 1 else ""
    print(f"serving {cfg.url} (dispatch: {cfg.dispatch}{batching})", file=sys.stderr)
    serve(cfg)
    return 0

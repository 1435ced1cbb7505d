"""`coresweep serve --model M --workers W --threads T [--placement ...]`: several pinned worker
processes behind gunicorn + uvicorn + FastAPI (OpenAI completions API), in the foreground."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from coresweep.cli.trial import threads_arg
from coresweep.parameters import WORKLOAD, add_argument

PLACEMENTS = ("partition", "none")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve a model with W pinned worker processes (OpenAI completions API)",
        description="gunicorn with uvicorn workers and a FastAPI app: each worker is pinned to "
        "its own slice of the usable CPUs (whole cores, one LLC/NUMA domain when it fits) before "
        "it imports onnxruntime, and loads the model with T intra-op threads. POST "
        "/v1/completions (stream: true for SSE), GET /health (every worker, read back from "
        "/proc). Stops cleanly on SIGTERM/SIGINT.")
    add_argument(p, WORKLOAD["model"])
    add_argument(p, WORKLOAD["precision"])
    add_argument(p, WORKLOAD["engine"])
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--threads", type=lambda s: threads_arg(s, auto=True), default="auto",
                   help="intra-op threads per worker, 'ort-default', or auto: the physical cores "
                   "of each worker's slice (default auto)")
    p.add_argument("--placement", choices=PLACEMENTS, default="partition",
                   help="partition: disjoint CPU slices; none: workers unpinned (default "
                   "partition)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-requests", type=int, default=0,
                   help="recycle a worker after this many requests (gunicorn; 0 = never)")
    p.add_argument("--print-config", action="store_true",
                   help="print a ready-to-use gunicorn.conf.py for this plan and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from coresweep.serving.config import is_loopback
    from coresweep.serving.plan import serve_config

    cfg = serve_config(args.model, args.precision, workers=args.workers, threads=args.threads,
                       pinned=args.placement == "partition", engine=args.engine,
                       host=args.host, port=args.port)
    cfg.max_requests = args.max_requests
    cfg.max_requests_jitter = args.max_requests // 10
    if args.print_config:
        from coresweep.serving.server import print_config

        print(print_config(cfg), end="")
        return 0
    if not is_loopback(args.host):
        print(f"coresweep serve: warning: binding {args.host}, which is not a loopback address: "
              "the server is reachable from the network", file=sys.stderr)
    for i, cpus in enumerate(cfg.slices or []):
        print(f"worker {i}: CPUs {cpus}, {cfg.threads or 'ORT-default'} thread(s)",
              file=sys.stderr)
    from coresweep.serving.server import serve

    serve(cfg)
    return 0

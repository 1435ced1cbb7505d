"""`coresweep` command line: each command group registers itself from its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from coresweep.errors import CoresweepError

# module name -> registers one or more sub-commands via register(subparsers)
_COMMAND_MODULES = ("topology", "model", "trial", "run", "serve", "compare", "archive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coresweep",
        description="Sweep threads, affinity and SMT for LLM inference on ONNX Runtime's CPU provider.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"coresweep.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"coresweep.cli.{name}":
                continue  # command group not present in this build
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CoresweepError as exc:
        print(f"coresweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coresweep: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

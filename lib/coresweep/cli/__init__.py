"""`coresweep` command line: each command group registers itself from its own module.

Every bad input ends the command with one line on stderr, ``coresweep COMMAND: error: ...``,
and exit status 2: argparse's own errors (a flag's type or choices, checked as it is read; see
:mod:`coresweep.cli.argtypes`), CoresweepError from the library, and the operating system
refusing a path (the last resort: the flags' types check paths first)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from coresweep.errors import CoresweepError

# module name -> registers one or more sub-commands via register(subparsers)
_COMMAND_MODULES = ("topology", "model", "trial", "run", "serve", "compare", "archive")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and where help is."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _command_name(args: argparse.Namespace) -> str:
    """`coresweep run`, `coresweep model build`: what an error line is about."""
    parts = ["coresweep", getattr(args, "command", None), getattr(args, "model_command", None)]
    return " ".join(p for p in parts if p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else 2
    who = _command_name(args)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `coresweep params | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CoresweepError as exc:
        print(f"{who}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the checks could not foresee (full disk, a race)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{who}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{who}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

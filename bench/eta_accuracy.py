"""How good is `coresweep run`'s ETA? Runs a command (e.g. `make report`), stamps each line it
prints with the time, and compares every ETA the run printed once 10 % of the run (after its plan)
had passed with when the run really ended: error = (time of the line + ETA − actual end) ÷ the
run's length after the plan. Also prints the plan's total against the actual wall time.

    python bench/eta_accuracy.py make report            # from a clean clone: the issue's case
    python bench/eta_accuracy.py --log run.log          # a log written by an earlier call

Target: every ETA from 10 % on within ±20 %. Last line: the worst error.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ETA = re.compile(r"ETA (\d+):(\d\d) left")
TOTAL = re.compile(r"^\s*(?:coresweep run:)?\s*total\s+≈ (\d+):(\d\d)")
DONE = re.compile(r"done in (\d+):(\d\d)")


def stamped_run(cmd: list[str], log: Path) -> list[tuple[float, str]]:
    """Run ``cmd`` (stdout and stderr merged), echo and keep each line with its time."""
    lines = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as p, log.open("w") as f:
        for line in p.stdout:
            t = time.time()
            lines.append((t, line.rstrip("\n")))
            f.write(f"{t:.3f} {line}")
            print(line, end="", flush=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed with {p.returncode}")
    return lines


def read_log(path: Path) -> list[tuple[float, str]]:
    out = []
    for raw in path.read_text().splitlines():
        stamp, _, text = raw.partition(" ")
        out.append((float(stamp), text))
    return out


def errors(lines: list[tuple[float, str]]) -> tuple[list[tuple[float, float]], float, float]:
    """[(progress, error)] of every ETA from the plan on; the plan's total; the actual wall."""
    plan_t = next(t for t, s in lines if TOTAL.search(s))
    planned = next(60 * int(m.group(1)) + int(m.group(2))
                   for _, s in lines if (m := TOTAL.search(s)))
    end = max(t for t, s in lines if DONE.search(s))
    start = lines[0][0]
    length = end - plan_t
    out = []
    for t, s in lines:
        m = ETA.search(s)
        if m and t >= plan_t:
            eta = 60 * int(m.group(1)) + int(m.group(2))
            out.append(((t - plan_t) / length, (t + eta - end) / length))
    return out, planned, end - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", type=Path, help="read a stamped log instead of running a command")
    p.add_argument("--keep", type=Path, default=Path("eta-accuracy.log"),
                   help="where to write the stamped log of a command (default eta-accuracy.log)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, e.g. make report")
    a = p.parse_args()
    if bool(a.log) == bool(a.cmd):
        p.error("give either --log FILE or a command to run")
    lines = read_log(a.log) if a.log else stamped_run(a.cmd, a.keep)
    errs, planned, wall = errors(lines)
    late = [e for prog, e in errs if prog >= 0.10]
    print(f"plan total {planned // 60}:{planned % 60:02d} (venv, model and calibration included "
          f"as spent), actual {int(wall) // 60}:{int(wall) % 60:02d}")
    for prog, e in errs:
        print(f"  at {100 * prog:5.1f} % of the run: ETA off by {100 * e:+6.1f} %")
    if not late:
        print("no ETA printed after 10 % of the run")
        return 1
    worst = max(late, key=abs)
    print(f"worst ETA error from 10 % on: {100 * worst:+.1f} % (target within ±20 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

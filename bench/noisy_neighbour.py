"""A noisy neighbour: one busy-looping process that works and sleeps in random bursts, to make
this machine behave like a shared VM while a run measures (how tests/fixtures/runs/noisy-t12 was
made). Bounded in time; stops on Ctrl-C or SIGTERM.

    python bench/noisy_neighbour.py --seconds 600 --duty 0.5 --burst 0.8 &
    coresweep run ...
"""

from __future__ import annotations

import argparse
import random
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    p.add_argument("--duty", type=float, default=0.5, help="share of the time spent busy")
    p.add_argument("--burst", type=float, default=0.8, help="mean length of a busy burst, s")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if not (0 < a.duty < 1 and a.burst > 0 and 0 < a.seconds <= 24 * 3600):
        p.error("--duty in (0, 1), --burst > 0, --seconds in (0, 86400]")
    rng = random.Random(a.seed)
    end = time.monotonic() + a.seconds
    busy_s = 0.0
    while time.monotonic() < end:
        burst = rng.expovariate(1 / a.burst)
        stop = time.monotonic() + burst
        while time.monotonic() < stop:
            pass
        busy_s += burst
        time.sleep(rng.expovariate(1 / (a.burst * (1 - a.duty) / a.duty)))
    print(f"busy {busy_s:.0f} s of {a.seconds:.0f} s")


if __name__ == "__main__":
    main()

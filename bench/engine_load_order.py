"""Is the parity gap the engine, or where the process put the weights? Several engines in ONE
process, generations alternating, so that machine drift cancels out.

`--engines ort,genai,ort` loads an `ort` session, then a genai model, then a second `ort` session of
the same model in one pinned process, warms each up, then runs `--rounds` rounds of one generation
each (order reversed every other round). Speed is the "fastest-token" speed: 1 / the 10th
percentile of the decode token latencies, the tokens no other process interrupted (a shared machine
disturbs it least). Per engine instance it prints the median speed and the ratio to the first one
loaded, round by round; LAST, the ratio of the last-loaded instance to the first-loaded one (two
`ort` sessions: 1.00 when load order does not matter).

    python bench/engine_load_order.py [--engines ort,genai,ort] [--preset qwen2.5-0.5b]
                                      [--threads 1] [--cpus 1] [--prompt 64] [--gen 64]
                                      [--rounds 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys


def fast_speed(gen) -> float:
    gaps = sorted(gen.token_latencies_s[1:])
    return 1 / gaps[len(gaps) // 10]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--engines", default="ort,genai,ort")
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cpus", default="1", help="CPUs of the process (kernel list syntax)")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()

    from coresweep.machine.cpulist import parse_cpulist

    os.sched_setaffinity(0, parse_cpulist(args.cpus))  # before onnxruntime is imported
    from coresweep.engines import SessionConfig, make_engine, make_prompt
    from coresweep.models import resolve_model

    model = str(resolve_model(args.preset, args.precision))
    engines = []
    for n, name in enumerate(args.engines.split(",")):
        e = make_engine(name.strip(), model, SessionConfig(threads=args.threads))
        e.load()
        engines.append((f"{n}:{e.name}", e))
    prompt = make_prompt(model, args.prompt, seed=7)
    for _, e in engines:
        e.generate(prompt, 8)
    speeds: dict[str, list[float]] = {label: [] for label, _ in engines}
    for k in range(args.rounds):
        for label, e in (engines if k % 2 == 0 else engines[::-1]):
            speeds[label].append(fast_speed(e.generate(prompt, args.gen)))
        print(f"round {k}: " + ", ".join(f"{lab} {v[-1]:.2f}" for lab, v in speeds.items()),
              flush=True)
    first = engines[0][0]
    for label in speeds:
        r = [a / b for a, b in zip(speeds[label], speeds[first], strict=True)]
        print(f"{label:10} fastest-token speed {statistics.median(speeds[label]):7.2f} tok/s, "
              f"ratio to {first}: {statistics.median(r):.3f} [{min(r):.3f}-{max(r):.3f}]")
    last = engines[-1][0]
    r = [a / b for a, b in zip(speeds[last], speeds[first], strict=True)]
    print(f"last-loaded / first-loaded ({last} / {first}): {statistics.median(r):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

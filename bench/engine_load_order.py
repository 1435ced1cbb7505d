"""Is the parity gap the engine, or where the process put the weights? Several engines in ONE
process, generations alternating, so that machine drift cancels out — and what each session's
memory is made of (the first-session effect: docs/protocol.md, "Which state a trial measures").

`--engines ort,genai,ort` loads an `ort` session, then a genai model, then a second `ort` session of
the same model in one pinned process, warms each up, then runs `--rounds` rounds of one generation
each (order reversed every other round). Speed is the "fastest-token" speed: 1 / the 10th
percentile of the decode token latencies, the tokens no other process interrupted (a shared machine
disturbs it least). Per engine instance it prints the median speed and the ratio to the first one
loaded, round by round; LAST, the ratio of the last-loaded instance to the first-loaded one (two
`ort` sessions: 1.00 when load order does not matter).

What may explain a difference, each switchable:
- `--memory`: after each load, the anonymous memory the session added (new or grown private
  mappings of this process, from /proc/self/smaps): bytes, how much sits in transparent huge
  pages (AnonHugePages), how much in the heap (brk) against mmap'd regions, and the alignment of
  the largest region;
- `--huge-pages malloc`: the process runs with GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (it
  re-executes itself with it: glibc reads it at start-up); `madvise`: MADV_HUGEPAGE +
  MADV_COLLAPSE on every large anonymous mapping after the loads (machine.hugepages);
- `--arena off`: onnxruntime's CPU memory arena off; `--prepacking off`: weights are used as
  stored (session.disable_prepacking), not repacked into the kernels' layout at load;
- `--discard-first`: load one more `ort` session first and never use it (the deployment trick:
  is the effect "the second session", or "the first one pays"?).

    python bench/engine_load_order.py [--engines ort,genai,ort] [--preset qwen2.5-0.5b]
                                      [--threads 1] [--cpus 1] [--prompt 64] [--gen 64]
                                      [--rounds 8] [--memory] [--huge-pages default|malloc|madvise]
                                      [--arena on|off] [--prepacking on|off] [--discard-first]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys


def fast_speed(gen) -> float:
    gaps = sorted(gen.token_latencies_s[1:])
    return 1 / gaps[len(gaps) // 10]


def private_mappings() -> dict[tuple[int, str], dict[str, int]]:
    """(start, name) -> size, Anonymous and AnonHugePages bytes of every private mapping."""
    out: dict = {}
    cur = None
    for line in open("/proc/self/smaps"):
        head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$", line)
        if head:
            start, end = int(head.group(1), 16), int(head.group(2), 16)
            cur = {"size": end - start, "Anonymous": 0, "AnonHugePages": 0}
            if head.group(3)[3] == "p":
                out[(start, head.group(4).strip())] = cur
            continue
        m = re.match(r"^(Anonymous|AnonHugePages):\s+(\d+) kB", line)
        if m and cur is not None:
            cur[m.group(1)] = int(m.group(2)) * 1024
    return out


def added(before: dict, after: dict) -> str:
    """What a load added: anonymous bytes, in huge pages, in the heap, in mmap'd regions."""
    new = {k: v for k, v in after.items()
           if v["Anonymous"] > before.get(k, {}).get("Anonymous", 0)}
    anon = sum(v["Anonymous"] - before.get(k, {}).get("Anonymous", 0) for k, v in new.items())
    huge = sum(v["AnonHugePages"] - before.get(k, {}).get("AnonHugePages", 0)
               for k, v in new.items())
    heap = sum(v["Anonymous"] - before.get(k, {}).get("Anonymous", 0)
               for k, v in new.items() if k[1] == "[heap]")
    big = max(new, key=lambda k: new[k]["size"]) if new else None
    where = (f"; largest region {new[big]['size'] / 2**20:.0f} MiB at 0x{big[0]:x} "
             f"({'2 MiB' if big[0] % (2 << 20) == 0 else '4 KiB'}-aligned)") if big else ""
    return (f"+{anon / 2**20:.0f} MiB anonymous in {len(new)} mappings, {huge / 2**20:.0f} MiB "
            f"in huge pages, {heap / 2**20:.0f} MiB in the heap{where}")


def load(name: str, model: str, args, extra: str = "") -> object:
    """An engine loaded with the bench's session switches."""
    from coresweep.engines import SessionConfig, make_engine
    from coresweep.engines.session import OrtOptions

    e = make_engine(name, model, SessionConfig(args.threads,
                                               OrtOptions(memory_arena=args.arena == "on")))
    if args.prepacking == "off" and name == "ort":
        import onnxruntime as ort
        from coresweep.engines.ort import session_options

        so = session_options(e.session_config)
        so.add_session_config_entry("session.disable_prepacking", "1")
        e.session = ort.InferenceSession(e.info.onnx_path, so, providers=["CPUExecutionProvider"])
    else:
        e.load()
    return e


def reexec_with_tunable(args) -> None:
    """glibc reads GLIBC_TUNABLES when the process starts: run again with it."""
    from coresweep.machine.hugepages import TUNABLE, spawn_env

    if args.huge_pages == "malloc" and TUNABLE not in os.environ.get("GLIBC_TUNABLES", ""):
        env = spawn_env("malloc", dict(os.environ))
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


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
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--huge-pages", choices=("default", "malloc", "madvise"), default="default")
    ap.add_argument("--arena", choices=("on", "off"), default="on")
    ap.add_argument("--prepacking", choices=("on", "off"), default="on")
    ap.add_argument("--discard-first", action="store_true")
    args = ap.parse_args()
    reexec_with_tunable(args)

    from coresweep.machine.cpulist import parse_cpulist

    os.sched_setaffinity(0, parse_cpulist(args.cpus))  # before onnxruntime is imported
    from coresweep.engines import make_prompt
    from coresweep.machine.hugepages import advise_huge, memory_of
    from coresweep.models import resolve_model

    model = str(resolve_model(args.preset, args.precision))
    print(f"{args.preset}, {args.threads} thread(s) on CPUs {args.cpus}; huge pages "
          f"{args.huge_pages} (GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}), arena "
          f"{args.arena}, prepacking {args.prepacking}", flush=True)
    discarded = load("ort", model, args) if args.discard_first else None  # noqa: F841
    engines = []
    for n, name in enumerate(args.engines.split(",")):
        before = private_mappings()
        e = load(name.strip(), model, args)
        engines.append((f"{n}:{e.name}", e))
        if args.memory:
            print(f"loaded {n}:{e.name}: {added(before, private_mappings())}", flush=True)
    if args.huge_pages == "madvise":
        r = advise_huge()
        print(f"madvise: {r['advised_bytes'] / 2**20:.0f} MiB advised in {r['seconds']:.2f} s, "
              f"huge pages {(r['anon_huge_before'] or 0) / 2**20:.0f} -> "
              f"{(r['anon_huge_after'] or 0) / 2**20:.0f} MiB, refused: {r['errors']}")
    mem = memory_of()
    print(f"process: {mem.get('Anonymous', 0) / 2**20:.0f} MiB anonymous, "
          f"{mem.get('AnonHugePages', 0) / 2**20:.0f} MiB in huge pages", flush=True)
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

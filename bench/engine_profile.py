"""Where the decode time goes, per operator, in coresweep's `ort` engine and in onnxruntime-genai.

Each engine runs in its own fresh process (alternating, `--pairs` pairs) with onnxruntime's
profiler switched on (SessionOptions.enable_profiling for `ort`; genai's `enable_profiling` session
option): a warm-up generation, then one measured generation of `--gen` tokens. From each
profile the script takes the decode runs (every model_run after the measured generation's
prefill) and sums the kernel times per operator type; it prints, per operator, the median per-token
milliseconds of both engines and their ratio, then the time outside the kernels (model_run wall
time minus the sum of its kernels) and, LAST, the ratio ort/genai of the kernel time per decoded
token (1.00 = the same work at the same speed inside onnxruntime).

    python bench/engine_profile.py [--preset qwen2.5-0.5b] [--threads 1] [--prompt 64] [--gen 32]
                                   [--pairs 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict


def child(args: argparse.Namespace) -> int:
    from coresweep.engines import SessionConfig, make_engine, make_prompt

    prefix = os.path.join(args.out, args.child)
    eng = make_engine(args.child, args.model, SessionConfig(threads=args.threads))
    if args.child == "ort":
        opts = eng.session_config.ort_session_options()
        opts.enable_profiling = True
        opts.profile_file_prefix = prefix
        eng.session_config.ort_session_options = lambda: opts  # the engine's load() uses these
    else:
        base = eng.overlay

        def overlay() -> dict:
            o = base()
            o["model"]["decoder"]["session_options"]["enable_profiling"] = prefix
            return o
        eng.overlay = overlay
    eng.load()
    prompt = make_prompt(args.model, args.prompt, seed=7)
    eng.generate(prompt, 8)  # warm-up: 8 model runs
    g = eng.generate(prompt, args.gen)
    if args.child == "ort":
        eng.session.end_profiling()
    else:
        del eng  # genai writes its profile when the session is released
    print(json.dumps({"engine": args.child, "decode_tok_s": g.decode_tok_s,
                      "warmup_runs": 8, "gen": args.gen}))
    return 0


def decode_profile(path: str, skip_runs: int) -> dict:
    """Per-token kernel ms by op type, and the per-token ms outside kernels, over the decode runs
    of the measured generation (runs after `skip_runs` + its prefill)."""
    events = json.load(open(path))
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    runs.sort(key=lambda e: e["ts"])
    decode = runs[skip_runs + 1:]
    if not decode:
        raise SystemExit(f"{path}: no decode runs found ({len(runs)} model_run events)")
    lo, hi = decode[0]["ts"], decode[-1]["ts"] + decode[-1]["dur"]
    nodes = [e for e in events if e.get("cat") == "Node" and lo <= e["ts"] <= hi
             and str(e.get("name", "")).endswith("_kernel_time")]
    by_op: dict[str, float] = defaultdict(float)
    for e in nodes:
        by_op[e["args"].get("op_name", "?")] += e["dur"]
    n = len(decode)
    kernels = sum(by_op.values())
    wall = sum(e["dur"] for e in decode)
    return {"ops": {k: v / n / 1000 for k, v in by_op.items()}, "kernel_ms": kernels / n / 1000,
            "wall_ms": wall / n / 1000, "outside_ms": (wall - kernels) / n / 1000, "runs": n}


def run_child(engine: str, model: str, args: argparse.Namespace) -> dict:
    out = tempfile.mkdtemp(prefix=f"prof-{engine}-")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", engine, "--model", model,
           "--threads", str(args.threads), "--prompt", str(args.prompt), "--gen", str(args.gen),
           "--out", out]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"child failed ({' '.join(cmd)}):\n{res.stderr[-3000:]}")
    meta = json.loads(res.stdout.strip().splitlines()[-1])
    files = glob.glob(os.path.join(out, "*.json"))
    if len(files) != 1:
        raise SystemExit(f"expected one profile in {out}, found {files}")
    return {**meta, **decode_profile(files[0], meta["warmup_runs"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--precision", default="int4")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", default=None, choices=["ort", "genai"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.pairs < 1 or args.gen < 2:
        ap.error("--pairs must be >= 1 and --gen >= 2")

    from coresweep.models import resolve_model

    model = str(args.model or resolve_model(args.preset, args.precision))
    res: dict[str, list[dict]] = {"ort": [], "genai": []}
    for k in range(args.pairs):
        for e in (("ort", "genai") if k % 2 == 0 else ("genai", "ort")):
            r = run_child(e, model, args)
            res[e].append(r)
            print(f"pair {k} {e:5}: {r['decode_tok_s']:.2f} tok/s, kernels {r['kernel_ms']:.2f} "
                  f"ms/token, outside kernels {r['outside_ms']:.3f} ms/token", flush=True)
    med = statistics.median
    ops = sorted({o for e in res.values() for r in e for o in r["ops"]},
                 key=lambda o: -med(r["ops"].get(o, 0) for r in res["genai"]))
    print(f"\nper decoded token, median of {args.pairs} processes each "
          f"({args.threads} thread(s), prompt {args.prompt})")
    print(f"{'op':32} {'ort ms':>8} {'genai ms':>9} {'ratio':>6}")
    for o in ops:
        a, b = (med(r["ops"].get(o, 0) for r in res[e]) for e in ("ort", "genai"))
        print(f"{o:32} {a:8.3f} {b:9.3f} {a / b if b else float('nan'):6.3f}")
    for what in ("kernel_ms", "outside_ms", "wall_ms"):
        a, b = (med(r[what] for r in res[e]) for e in ("ort", "genai"))
        print(f"{what:32} {a:8.3f} {b:9.3f} {a / b if b else float('nan'):6.3f}")
    ratio = med(r["kernel_ms"] for r in res["ort"]) / med(r["kernel_ms"] for r in res["genai"])
    print(f"kernel time per decoded token ort/genai: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

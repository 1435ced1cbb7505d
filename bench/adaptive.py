"""Speed bar: the adaptive sweep against the full grid over the same configurations.

The configurations are those of the thread, affinity and SMT studies for a parameter file on this
machine (default: params/seed-article.yaml with the qwen2.5-0.5b preset), each study swept as
`coresweep run` sweeps it: its own configs, `processes` processes per config in the grid; in the
adaptive sweep one process per round until each config reaches the target, is dropped as worse or
reaches `processes` (the cap), the study's kept points never dropped. The two arms alternate study
by study (grid, adaptive, then adaptive, grid for the next study) so that the machine's drift does
not favour one. Each arm gets its own run folder.

Per study it prints each configuration's processes and stop in both arms, the best configuration
of each arm (the highest median decode tok/s among points a recommendation may pick: explicit
thread count, placement verified) and whether both arms pick the same one (the same config, or
the adaptive pick's grid median within 2 % of the grid pick's); LAST, the adaptive/grid wall-time
ratio (target <= 0.30).

    python bench/adaptive.py [--params params/seed-article.yaml] [-p key=value ...]
                             [--studies threads affinity smt] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

SAME_BEST = 0.02  # the adaptive pick's grid median within 2 % of the grid pick's


def best(summary: Any) -> Any:
    """The row with the highest median decode tok/s among recommendable points, or None."""
    s = summary[(summary["threads"].astype(int) > 0) & summary["placement_ok"].astype(bool)]
    return None if s.empty else s.loc[s["decode_tok_s_median"].idxmax()]


def measure(study: Any, resolved: Any, configs: list, out: Path, adaptive: bool) -> tuple:
    """One arm on one study: (summary, wall seconds)."""
    from coresweep.measurement import adaptive as adaptive_mod
    from coresweep.measurement.sweep import sweep

    v = resolved.values
    t0 = time.perf_counter()
    run = sweep(configs, out=out, processes=v["processes"], timeout_s=v["timeout_s"],
                sample_interval_s=v["sample_interval_s"], topo=resolved.topology,
                params={**v, "adaptive": adaptive},
                adaptive=adaptive_mod.Adaptive(v["adaptive_target"]) if adaptive else None,
                keep=study.keep(configs))
    return run.summary, time.perf_counter() - t0


def compare(name: str, grid: Any, adapt: Any) -> bool:
    """Print both arms' processes, stops and picks for one study; True when the picks agree."""
    g, a = grid.set_index("config_key"), adapt.set_index("config_key")
    print(f"\n{name}: {'config':28} {'grid n':>6} {'grid tok/s':>10} | {'adaptive n':>10} "
          f"{'tok/s':>7}  stop")
    for key, row in g.iterrows():
        ar = a.loc[key] if key in a.index else None
        an = int(ar["n_processes"]) if ar is not None else 0
        amed = f"{ar['decode_tok_s_median']:7.2f}" if ar is not None else "      -"
        why = ar["stop_reason"] if ar is not None else "no trials"
        print(f"  {row['label'][:34]:34} {int(row['n_processes']):>6} "
              f"{row['decode_tok_s_median']:10.2f} | {an:>10} {amed}  {why}")
    bg, ba = best(grid), best(adapt)
    if bg is None or ba is None:
        print(f"  best: grid {None if bg is None else bg['label']}, adaptive "
              f"{None if ba is None else ba['label']}: no comparison")
        return False
    ga = g.loc[ba["config_key"], "decode_tok_s_median"]
    gap = abs(ga - bg["decode_tok_s_median"]) / bg["decode_tok_s_median"]
    same = ba["config_key"] == bg["config_key"] or gap <= SAME_BEST
    print(f"  best: grid {bg['label']} ({bg['decode_tok_s_median']:.2f} tok/s), adaptive "
          f"{ba['label']} (grid median {ga:.2f} tok/s, {100 * gap:.1f} % from the grid's pick): "
          f"{'same best' if same else 'DIFFERENT best'}")
    return same


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", default="params/seed-article.yaml")
    ap.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--studies", nargs="+", default=["threads", "affinity", "smt"])
    ap.add_argument("--out", default=None, help="folder for the run folders (default: temp)")
    args = ap.parse_args()

    from coresweep import studies
    from coresweep.studies.common import check_model

    values = studies.load(args.params, ["model=qwen2.5-0.5b", *args.overrides])
    resolved = studies.validate(values, names=args.studies)
    check_model(resolved["model"], resolved["precision"], build=True)
    out = Path(args.out or tempfile.mkdtemp(prefix="adaptive-bench-"))
    v = resolved.values
    print(f"{args.params} {' '.join(args.overrides)}: model {v['model']}, processes "
          f"{v['processes']}, reps {v['reps']}, gen {v['gen_tokens']}, target "
          f"±{100 * v['adaptive_target']:g} %; run folders in {out}", flush=True)
    wall = {"grid": 0.0, "adaptive": 0.0}
    agree = []
    for n, name in enumerate(args.studies):
        study = studies.get(name)
        configs = study.configs(resolved)
        if not configs:
            print(f"\n{name}: no configurations on this machine")
            continue
        arms = ("grid", "adaptive") if n % 2 == 0 else ("adaptive", "grid")
        res = {}
        for arm in arms:
            res[arm], secs = measure(study, resolved, configs, out / f"{study.id}-{arm}",
                                     arm == "adaptive")
            wall[arm] += secs
            print(f"{name} {arm}: {secs:.0f} s", flush=True)
        agree.append(compare(name, res["grid"], res["adaptive"]))
    print(f"\nwall time: grid {wall['grid']:.0f} s, adaptive {wall['adaptive']:.0f} s")
    print(f"same best config in every study (within {100 * SAME_BEST:g} %): "
          f"{'yes' if agree and all(agree) else 'no'}")
    print(f"adaptive/grid wall-time ratio: {wall['adaptive'] / wall['grid']:.2f} "
          "(target <= 0.30)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Writes notebooks/NN_*.ipynb (output-stripped) from the cell sources below.

The notebooks are thin: imports → ONE cell tagged `parameters` (typed literals, one comment each,
no derived values: papermill replaces the cell) → a validation call into the library that fails
right there on a bad parameter → library calls → figures. Edit here, then run
`.venv/bin/python notebooks/_make_notebooks.py`; the .ipynb files are committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

from coresweep import params as P  # noqa: E402


def _literal(value) -> str:
    return repr(value)


def parameters_cell(notebook: str) -> str:
    lines = []
    for key in P.keys_for(notebook):
        p = P.SCHEMA[key]
        typ = p.kind.replace("_list", " list")
        choices = f"; one of {', '.join(map(str, p.choices))}" if p.choices else ""
        lines.append(f"{key} = {_literal(p.default)}  # {typ}{choices}: {p.help}")
    return "\n".join(lines)


def validate_cell(notebook: str) -> str:
    keys = P.keys_for(notebook)
    body = "\n".join(f"    {k}={k}," for k in keys)
    return (
        "# Checks every parameter (type, choices, placement on this machine, model) before any\n"
        "# trial runs; a bad value stops here with a message naming it and the valid choices.\n"
        f"P = cs_params.validate(dict(\n{body}\n), notebook={notebook!r})\n"
        "topo = P.topology\n"
        "P.to_dict()"
    )


IMPORTS = """\
import pandas as pd
import coresweep as cs
from coresweep import params as cs_params
from coresweep import plots
from IPython.display import Markdown, display

pd.set_option("display.max_colwidth", 200)"""

SWEEP = """\
configs = cs_params.configs_for({nb!r}, P)
display(cs_params.describe_configs(configs, topo))
run = cs.sweep(configs, out=P.run_dir, processes=P.processes, timeout_s=P.timeout_s,
               sample_interval_s=P.sample_interval_s, params=P.to_dict(), topo=topo)
res = cs_params.select(run, configs)
cap = plots.caption_for(run, P.values, topo)
if len(res.failures):
    display(Markdown("**Failed or skipped worker processes** (recorded, not retried):"))
    display(res.failures[["label", "process", "status", "reason"]])"""

NOTEBOOKS: dict[str, list[tuple[str, str] | tuple[str, str, list[str]]]] = {
    "00_machine": [
        ("md", "# 00 · The machine\n\n"
               "What this computer is, as the sweeps see it: packages, physical cores and their "
               "SMT siblings, caches, NUMA nodes, hybrid P/E cores, cgroup limits and the CPUs "
               "this process may use. The fingerprint recorded with every run is shown at the "
               "end, and the last section says which questions the other notebooks can answer "
               "on this machine."),
        ("code", IMPORTS),
        ("code", parameters_cell("00_machine"), ["parameters"]),
        ("code", validate_cell("00_machine")),
        ("md", "## Topology"),
        ("code", "print(topo.summary())"),
        ("code", "plots.topology_picture(topo, cap=plots.caption_for(topo=topo));"),
        ("md", "## What the sweeps can test here"),
        ("code", "display(Markdown(plots.markdown_table(cs_params.capabilities(topo))))"),
        ("md", "## Fingerprint\n\nRecorded in `run.json` of every run (versions, environment, "
               "transparent huge pages, load average...)."),
        ("code", "fp = cs_params.write_fingerprint(P.run_dir, topo)\n"
                 "display(cs_params.fingerprint_table(fp))"),
    ],
    "01_threads": [
        ("md", "# 01 · How many threads?\n\n"
               "Time to first token (TTFT), prefill and decode throughput against the number of "
               "intra-op threads, each point measured in several fresh worker processes pinned "
               "by the chosen placement. Points past the CPU count are included by default "
               "(oversubscription: more threads than CPUs). The last table is the study's table "
               "(threads | TTFT ms | decode tok/s | CPU %) for this machine."),
        ("code", IMPORTS),
        ("code", parameters_cell("01_threads"), ["parameters"]),
        ("code", validate_cell("01_threads")),
        ("md", "## Trials\n\nEach configuration runs in `processes` fresh workers (interleaved), "
               "each with `warmup` discarded and `reps` timed generations. Finished trials in "
               "the run folder are reused (resume)."),
        ("code", SWEEP.format(nb="01_threads")),
        ("md", "## Latency and throughput against threads\n\nBands: 95 % confidence interval "
               "of the median (hierarchical bootstrap over processes, then repetitions). "
               "Whiskers: p10–p90 of all repetitions."),
        ("code", "plots.threads_curves(res.summary, cpus=cs_params.sweep_cpus(P.values, topo), cap=cap);"),
        ("md", "## Speedup and parallel efficiency\n\nAgainst the ideal linear speedup over "
               "the smallest thread count."),
        ("code", "plots.speedup_efficiency(res.summary, 'decode_tok_s', cap=cap);\n"
                 "plots.speedup_efficiency(res.summary, 'ttft_s', cap=cap);"),
        ("md", "## CPU utilisation against threads"),
        ("code", "plots.util_vs_threads(res.summary, cpus=cs_params.sweep_cpus(P.values, topo), cap=cap);"),
        ("md", "## Per-token decode latency"),
        ("code", "plots.token_latency_ecdf(res.tokens, res.labels, cap=cap);"),
        ("md", "## The study's table on this machine"),
        ("code", "display(plots.study_table(res.summary))\n"
                 "display(Markdown(plots.best_sentence(res.summary)))\n"
                 "display(Markdown(plots.same_work_sentence(res.trials)))"),
    ],
    "02_affinity": [
        ("md", "# 02 · Which CPUs? Placement strategies\n\n"
               "The placement strategies compared at equal thread counts, with two controls: "
               "ORT's own default (`intra_op_num_threads=0`: ORT pins one thread per physical "
               "core itself and ignores the process mask) and an `OMP_NUM_THREADS`-only run "
               "(does that knob act at all?). Every point's placement is verified from "
               "`/proc` while it runs. Heatmaps show per-CPU utilisation over time."),
        ("code", IMPORTS),
        ("code", parameters_cell("02_affinity"), ["parameters"]),
        ("code", validate_cell("02_affinity")),
        ("md", "## Trials"),
        ("code", SWEEP.format(nb="02_affinity")),
        ("code", "display(Markdown(cs_params.same_placements_note(P, topo)))"),
        ("md", "## Strategies compared"),
        ("code", "plots.strategy_comparison(res.summary, cap=cap);"),
        ("code", "display(plots.placement_table(res.summary))\n"
                 "display(Markdown(plots.control_verdict(res.summary)))\n"
                 "display(Markdown(plots.same_work_sentence(res.trials)))"),
        ("md", "## Per-CPU utilisation (CPUs × time)\n\nMachine-wide utilisation sampled while "
               "one worker process of each chosen configuration ran; the red strip marks the "
               "timed repetitions."),
        ("code", "for key, label in cs_params.heatmap_keys(configs, P.heatmaps).items():\n"
                 "    plots.utilisation_heatmap(res.samples, key, title=f'Per-CPU utilisation: "
                 "{label}',\n"
                 "                              cpus=topo.online, cap=cap)"),
    ],
    "03_smt": [
        ("md", "# 03 · SMT on or off?\n\n"
               "Simultaneous multithreading (Hyper-Threading) compared in pairs: on the same "
               "physical cores (SMT off: one thread per core; SMT on: a thread on every "
               "sibling) and at the same thread count. `smt_mode='placement'` emulates SMT off "
               "by using one CPU per core; `smt_mode='sysfs'` switches "
               "`/sys/devices/system/cpu/smt/control` (needs root; restored afterwards). "
               "On a machine without SMT there is nothing to compare: the notebook says so "
               "and runs no trial."),
        ("code", IMPORTS),
        ("code", parameters_cell("03_smt"), ["parameters"]),
        ("code", validate_cell("03_smt")),
        ("md", "## Can this machine compare SMT on and off?"),
        ("code", "display(Markdown(cs_params.smt_explanation(topo, P.smt_mode)))"),
        ("md", "## Trials"),
        ("code", "configs = cs_params.configs_for('03_smt', P)\n"
                 "if configs:\n"
                 "    " + SWEEP.format(nb="03_smt").split("\n", 1)[1].replace("\n", "\n    ")
                 + "\nelse:\n"
                 "    res, cap = None, plots.caption_for(None, P.values, topo)\n"
                 "    print('No SMT comparison on this machine: no trial was run.')"),
        ("md", "## SMT on vs off"),
        ("code", "plots.smt_paired(res.summary if res else None, cap=cap);\n"
                 "if res is not None:\n"
                 "    display(plots.placement_table(res.summary))"),
    ],
}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["title"] = name
    for i, spec in enumerate(NOTEBOOKS[name]):
        kind, src = spec[0], spec[1]
        tags = spec[2] if len(spec) > 2 else []
        cell = new_markdown_cell(src) if kind == "md" else new_code_cell(src)
        if tags:
            cell.metadata["tags"] = list(tags)
        cell["id"] = f"{name.split('_')[0]}-{i:02d}"  # stable ids: clean diffs
        nb.cells.append(cell)
    return nb


def main() -> None:
    for name in NOTEBOOKS:
        nb = build(name)
        nbformat.validator.normalize(nb)
        path = HERE / f"{name}.ipynb"
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    main()

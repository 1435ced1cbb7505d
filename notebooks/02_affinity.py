# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Which CPUs? Placement strategies
#
# The placement strategies compared at equal thread counts, with two controls: ORT's own default (`intra_op_num_threads=0`: ORT pins one thread per physical core itself and ignores the process mask) and an `OMP_NUM_THREADS`-only run (does that knob act at all?). Every point's placement is verified from `/proc` while it runs. Heatmaps show per-CPU utilisation over time.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import runtimes, verdicts

study = studies.get("affinity")
pd.set_option("display.max_colwidth", 200)

# %% tags=["parameters"]
model = 'qwen2.5-0.5b'  # str: synthetic preset name (built on demand and cached) or a path to an ONNX model folder/file
precision = 'int4'  # str; one of int4, int8, fp32, q4_k_m: weight precision of a synthetic preset (ONNX for ort and genai: MatMulNBits 4/8-bit block 32, fp32; the GGUF of llamacpp: Q4_0, Q8_0, F32, and q4_k_m, llama.cpp's Q4_K_M, for llamacpp only)
runtime = 'ort'  # str or str list; one of ort, genai, llamacpp: inference runtime: ort (onnxruntime, IOBinding loop), genai (onnxruntime-genai) or llamacpp (llama.cpp through llama-cpp-python, on a GGUF of the same checkpoint); a list such as [ort, llamacpp] is an axis of the threads and affinity studies (side by side), other studies use the first
prompt_tokens = 64  # int or int list: prompt length in tokens; a list such as [64, 512, 2048] is an axis of the threads study (per context length), other studies use the first
gen_tokens = 32  # int: tokens generated per repetition (greedy)
batch = 1  # int: sequences of the same prompt decoded together in one session (one forward pass per step for all; exactly gen_tokens each): 1 is one user; rows give each sequence's decode tok/s and the aggregate (batch x it)
prompt_text = ''  # str: prompt text for a real model with its own tokenizer (chat template); synthetic presets use prompt_tokens ids; empty means prompt_tokens ids
warmup = 1  # int: untimed warm-up generations per worker process
reps = 3  # int: timed generations per worker process
processes = 3  # int: fresh worker processes per configuration (the spread is between processes, so more than one)
timeout_s = 600.0  # float: time-out of one worker process, seconds
sample_interval_s = 0.1  # float: per-CPU utilisation sampling interval, seconds
adaptive = False  # bool: adaptive sampling: one more process per configuration per round until its median decode tok/s is known within adaptive_target, it is clearly slower than the best (dropped; never a control or a point a figure needs) or it has `processes` processes (the cap)
adaptive_target = 0.03  # float: adaptive: stop a configuration once the 95 % CI of its median decode tok/s is within ± this fraction of the median (2+ processes)
refine_processes = 6  # int: when a study's decision (TTFT or decode) is not settled — undecided, or tied among noisy points — only its contenders get more fresh processes, two at a time, up to this many each; at most `processes` turns it off
study_budget_s = 0.0  # float: seconds this notebook may spend measuring (coresweep run sets it from `budget`); refining stops once it is spent; 0 means no limit
affinity_threads = 'auto'  # int list: thread counts at which the strategies are compared; auto means the number of physical cores
strategies = ['physical', 'compact', 'scatter', 'none', 'ort-default', 'omp-only']  # str list: placement strategies compared (plus the controls ort-default and omp-only)
heatmaps = ['physical', 'ort-default']  # str list: strategies whose per-core utilisation heatmap (cores x time) is drawn
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, placement on this machine, model) before any
# trial runs; a bad value stops here with a message naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## Trials

# %%
configs = study.configs(P)
tables.show(studies.describe_configs(configs, P.topology))
res = study.measure(P, configs)
cap = plots.caption_for(res.run, P.values, P.topology)
if res.failures_table() is not None:
    display(Markdown("**Failed or skipped worker processes** (recorded, not retried):"))
    tables.show(res.failures_table())

# %%
display(Markdown(study.same_placements_note(P)))

# %% [markdown]
# ## Strategies compared

# %%
plots.strategy_comparison(res.summary, cap=cap);

# %%
tables.show(tables.placement_table(res.summary))
display(Markdown(verdicts.control_verdict(res.summary)))
display(Markdown(verdicts.same_work_sentence(res.trials)))

# %% [markdown]
# ## This study's decision
#
# The same rule as 05_recommend, over these strategies only (the controls shown beside the pick), and the extra processes the run spent to settle it.

# %%
display(Markdown(runtimes.decisions_markdown(study.runtime_decisions(res))))
display(Markdown("\n".join(f"- {c}" for c in study.decisions(res)["decode_tok_s"].controls)))
display(Markdown(study.refinements_markdown(P)))

# %% [markdown]
# ## Per-CPU utilisation (CPUs × time)
#
# Machine-wide utilisation sampled while one worker process of each chosen configuration ran; the red strip marks the timed repetitions.

# %%
for c in study.heatmap_configs(configs, P):
    plots.utilisation_heatmap(res.samples, c.key(), title=f"Per-CPU utilisation: {c.display}",
                              cpus=P.topology.online, cap=cap)

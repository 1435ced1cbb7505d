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
# # 03 · SMT on or off?
#
# Simultaneous multithreading (Hyper-Threading) compared in pairs: on the same physical cores (SMT off: one thread per core; SMT on: a thread on every sibling) and at the same thread count. `smt_mode='placement'` emulates SMT off by using one CPU per core; `smt_mode='sysfs'` switches `/sys/devices/system/cpu/smt/control` (needs root; restored afterwards). On a machine without SMT there is nothing to compare: the notebook says so and runs no trial.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import verdicts

study = studies.get("smt")
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
smt_cores = 'auto'  # int list: physical core counts at which SMT on/off is compared; auto means 1 and all physical cores
smt_mode = 'placement'  # str; one of placement, sysfs: how SMT is switched off: placement (use one CPU per core) or sysfs (write /sys/devices/system/cpu/smt/control; needs root)
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, placement on this machine, model) before any
# trial runs; a bad value stops here with a message naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## Can this machine compare SMT on and off?

# %%
display(Markdown(study.explanation(P)))

# %% [markdown]
# ## Trials

# %%
configs = study.configs(P)
if configs:
    tables.show(studies.describe_configs(configs, P.topology))
    res = study.measure(P, configs)
    cap = plots.caption_for(res.run, P.values, P.topology)
    if res.failures_table() is not None:
        tables.show(res.failures_table())
else:
    res, cap = None, plots.caption_for(None, P.values, P.topology)
    print("No SMT comparison on this machine: no trial was run.")

# %% [markdown]
# ## SMT on vs off

# %%
plots.smt_paired(res.summary if res else None, cap=cap)
if res is not None:
    tables.show(tables.placement_table(res.summary))

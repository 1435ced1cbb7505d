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
# # 06 · Which onnxruntime knobs matter?
#
# Each onnxruntime session knob — thread spinning, per-thread pinning, inter-op threads and execution mode, the dynamic block base, the graph optimisation level — and the NUMA memory policy, changed **one at a time** from a baseline (the first value of each list) at the best thread count, each point in several fresh worker processes. The effect is the decode throughput over the baseline's with the interval the two 95 % CIs allow. Spinning on and off are set side by side to answer "why does it show 100 % CPU?": the CPU time per token that disappears when pool threads sleep is spin, not work.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import knobs

study = studies.get("knobs")
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
knob_threads = 'auto'  # int: thread count at which the knobs are compared; auto means the decode thread count 01 recommends in this run folder, else the usable physical cores
placement = 'cores-first'  # str: placement strategy of the core-count sweep and of 06_knobs: cores-first fills one CPU per physical core, then the SMT siblings (see coresweep.machine.placement.STRATEGIES, or a CPU list such as 0-3)
spinning = [True, False]  # bool list: intra-/inter-op pool threads spin while waiting for work (session.intra_op.allow_spinning): faster hand-offs, CPU time burnt while idle; values compared, the first is the baseline
pin_threads = [False, True]  # bool list: pin each intra-op pool thread to one CPU of the plan (session.intra_op_thread_affinities), not only the process; values compared, the first is the baseline
inter_op_threads = [1]  # int list: inter-op pool threads (used by the parallel execution mode); values compared, the first is the baseline
execution_mode = ['sequential']  # str list; one of sequential, parallel: graph execution mode; values compared, the first is the baseline
dynamic_block_base = [0, 4]  # int list: session.dynamic_block_base: 0 means a static partition of parallel loops, N > 0 dynamic blocks that shrink as work runs out; values compared, the first is the baseline
graph_optimization = ['all', 'basic']  # str list; one of disabled, basic, extended, all: graph optimisation level; values compared, the first is the baseline
numa_memory = ['default', 'local', 'interleave']  # str list; one of default, local, interleave: NUMA memory policy set in the worker before the model loads: default (first touch), local (the allocating CPU's node) or interleave (pages spread over every node with memory, like numactl --interleave all); values compared, the first is the baseline
huge_pages = ['default', 'malloc', 'madvise']  # str list; one of default, malloc, madvise: transparent huge pages for the worker's memory: default (the system's THP setting as it is), malloc (glibc.malloc.hugetlb set to 1 in GLIBC_TUNABLES when the worker starts: glibc advises THP on what it maps) or madvise (after the model loads, MADV_HUGEPAGE + MADV_COLLAPSE on every large anonymous mapping); read back as AnonHugePages; values compared, the first is the baseline
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, placement on this machine, model) before any
# trial runs; a bad value stops here with a message naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))
display(Markdown(study.explanation(P)))

# %% [markdown]
# ## Trials

# %%
configs = study.configs(P)
tables.show(studies.describe_configs(configs, P.topology))
res = study.measure(P, configs)
cap = plots.caption_for(res.run, P.values, P.topology)
if res.failures_table() is not None:
    tables.show(res.failures_table())

# %% [markdown]
# ## Each knob against the baseline

# %%
effects = knobs.effects(res.summary)
plots.knob_effects(effects, cap=cap)
tables.show(knobs.effects_table(effects))

# %% [markdown]
# ## Spinning: useful work and spin
#
# With spinning on, pool threads busy-wait between parallel sections: fast hand-offs, but the CPU time counts as use. The same point with spinning off leaves only the work (and the cost of waking threads).

# %%
tables.show(knobs.spin_split(res.summary))
display(Markdown(knobs.spin_sentence(res.summary)))
plots.thread_utilisation(knobs.thread_utilisation(res.threads), res.labels, cap=cap);

# %% [markdown]
# ## Where the measurement ran
#
# The measuring process (the parent and its sampler) runs on CPUs outside each point's plan whenever there are any; where the plan takes every CPU, its sampler's own CPU use is shown. Throttled points ran into a cgroup CPU quota; the clock is the one seen during decode.

# %%
tables.show(tables.measuring_table(res.summary))
tables.show(tables.placement_table(res.summary))

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
# # 07 · How many users per step? Batching
#
# A decode step on a CPU streams every weight once; a step that decodes **B sequences together** (one forward pass with the graph's batch dimension) reads the weights once for all of them, so the aggregate tokens/s can grow with B until the step runs out of compute. Each point is a trial of B copies of the prompt decoded together in one session (exactly `gen_tokens` each, one timestamp per step), at the decode thread count the run recommends and at 1 thread, in several fresh worker processes. The aggregate is B × each sequence's decode tok/s (the sequences share every step); its interval is B × the per-sequence one.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import batching

study = studies.get("batching")
pd.set_option("display.max_colwidth", 200)

# %% tags=["parameters"]
model = 'qwen2.5-0.5b'  # str: synthetic preset name (built on demand and cached) or a path to an ONNX model folder/file
precision = 'int4'  # str; one of int4, int8, fp32, q4_k_m: weight precision of a synthetic preset (ONNX for ort and genai: MatMulNBits 4/8-bit block 32, fp32; the GGUF of llamacpp: Q4_0, Q8_0, F32, and q4_k_m, llama.cpp's Q4_K_M, for llamacpp only)
runtime = 'ort'  # str or str list; one of ort, genai, llamacpp: inference runtime: ort (onnxruntime, IOBinding loop), genai (onnxruntime-genai) or llamacpp (llama.cpp through llama-cpp-python, on a GGUF of the same checkpoint); a list such as [ort, llamacpp] is an axis of the threads and affinity studies (side by side), other studies use the first
prompt_tokens = 64  # int or int list: prompt length in tokens; a list such as [64, 512, 2048] is an axis of the threads study (per context length), other studies use the first
gen_tokens = 32  # int: tokens generated per repetition (greedy)
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
batch_sizes = [1, 2, 4, 8]  # int list: batch sizes compared: sequences of the prompt decoded together in one session; 1 is the baseline of every gain
batch_threads = 'auto'  # int list: thread counts at which the batch sizes are compared; auto means the decode thread count the run recommends (the one decision over 01 and 02, as 06's knob_threads; else the physical cores) and 1
placement = 'cores-first'  # str: placement strategy of the core-count sweep and of 06_knobs: cores-first fills one CPU per physical core, then the SMT siblings (see coresweep.machine.placement.STRATEGIES, or a CPU list such as 0-3)
bandwidth = 'both'  # str; one of both, ort, likwid, off: read bandwidth at each placement for the roofline: both (likwid-bench where installed, and the portable onnxruntime measurement), ort, likwid, or off
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, placement on this machine, a runtime that can batch,
# model) before any trial runs; a bad value stops here naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## Trials
#
# Batch 1 at a thread count is the baseline of every gain (the same trial as 01's point when the workload and placement match: reused from the run folder).

# %%
configs = study.configs(P)
tables.show(studies.describe_configs(configs, P.topology))
res = study.measure(P, configs)
cap = plots.caption_for(res.run, P.values, P.topology)
if res.failures_table() is not None:
    tables.show(res.failures_table())

# %% [markdown]
# ## Aggregate decode and what each user sees
#
# Left: the batch's tokens/s against the batch size (dotted: batch × batch 1's, the ideal of a step that costs nothing more). Right: each user's decode speed (one token per step) and the batch's time to first token (the prompts run together).

# %%
plots.batching_throughput(res.summary, cap=cap)
tables.show(batching.batch_table(res.summary))

# %% [markdown]
# ## Why: the roofline per step
#
# A step reads every weight once plus each sequence's KV cache (bytes per step); divided by the step time it is the bandwidth the step uses, against the read bandwidth measured on the same CPUs with the same threads. At ≥ 70 % of it a step is bandwidth-bound and another sequence is nearly free; below, the step has turned compute-bound. Right: CPU time per generated token, all threads.

# %%
plots.batching_roofline(res.summary, cap=cap)
for t in P.batch_threads:
    display(Markdown(batching.roofline_sentence(res.summary, t)))

# %% [markdown]
# ## Which batch
#
# The one decision every coresweep answer uses, over the aggregate decode tok/s at each thread count: the best median and every batch whose 95 % interval overlaps it; tied batches go to the smallest (its users wait least). Serving with batches (one worker decoding several users at once, against pinned workers) is measured under load in 04.

# %%
display(Markdown(study.answer_markdown(res, P)))
tables.show(tables.measuring_table(res.summary))

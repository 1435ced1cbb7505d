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
# # 01 · How many threads?
#
# Time to first token (TTFT), prefill and decode throughput against the number of threads (onnxruntime's intra-op threads; llama.cpp's threads), each point measured in several fresh worker processes pinned by the chosen placement. With `runtime` a list (e.g. `[ort, llamacpp]`) every runtime's curve is drawn beside the others, each decided over its own points. Points past the CPU count are included by default (oversubscription: more threads than CPUs). The last table is the study's table (threads | TTFT ms | decode tok/s | CPU %) for this machine.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import knobs, runtimes, verdicts

study = studies.get("threads")
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
threads = 'auto'  # int list: thread counts for the core-count sweep; auto means 1..logical CPUs (thinned past 8) plus one oversubscribed point (2 x CPUs)
placement = 'cores-first'  # str: placement strategy of the core-count sweep and of 06_knobs: cores-first fills one CPU per physical core, then the SMT siblings (see coresweep.machine.placement.STRATEGIES, or a CPU list such as 0-3)
oversubscribe = True  # bool: allow thread counts past the CPUs the strategy gives (threads then share CPUs)
bandwidth = 'both'  # str; one of both, ort, likwid, off: read bandwidth at each placement for the roofline: both (likwid-bench where installed, and the portable onnxruntime measurement), ort, likwid, or off
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, placement on this machine, model) before any
# trial runs; a bad value stops here with a message naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## Trials
#
# Each configuration runs in `processes` fresh workers (interleaved), each with `warmup` discarded and `reps` timed generations. Finished trials in the run folder are reused (resume).

# %%
configs = study.configs(P)
tables.show(studies.describe_configs(configs, P.topology))
res = study.measure(P, configs)
cap = plots.caption_for(res.run, P.values, P.topology)
if res.failures_table() is not None:
    display(Markdown("**Failed or skipped worker processes** (recorded, not retried):"))
    tables.show(res.failures_table())

# %% [markdown]
# ## Latency and throughput against threads
#
# Bands: 95 % confidence interval of the median (hierarchical bootstrap over processes, then repetitions). Whiskers: p10–p90 of all repetitions.

# %%
plots.threads_curves(res.summary, cpus=study.sweep_cpus(P), cap=cap);

# %% [markdown]
# ## Why: the roofline
#
# Decode reads (about) every weight once per token: decode tok/s × bytes per token is the memory bandwidth it uses, drawn against the read bandwidth measured on the same CPUs with the same thread count (dashed). Each runtime reads its own model's bytes per token (llama.cpp's GGUF quantisation is not onnxruntime's). Prefill is drawn against ideal compute scaling.

# %%
plots.roofline(res.summary, cap=cap)
display(Markdown(runtimes.bound_sentences(res.summary, study.runtime_decisions(res))))
tables.show(res.bandwidth)

# %% [markdown]
# ## Speedup and parallel efficiency
#
# Against the ideal linear speedup over the smallest thread count.

# %%
plots.speedup_efficiency(res.summary, "decode_tok_s", cap=cap)
plots.speedup_efficiency(res.summary, "ttft_s", cap=cap);

# %% [markdown]
# ## CPU utilisation against threads

# %%
plots.util_vs_threads(res.summary, cpus=study.sweep_cpus(P), cap=cap);

# %% [markdown]
# ## At each context length
#
# When `prompt_tokens` is a list, every thread count is measured at every prompt length: TTFT grows with the prompt, and decode slows as the KV cache it reads grows. The curves above use the first length.

# %%
plots.context_curves(res.contexts, cpus=study.sweep_cpus(P), cap=cap);

# %% [markdown]
# ## Per-thread CPU use
#
# Each pool thread's time on a CPU as a share of the timed region (busiest first). With spinning on (ORT's default) a waiting pool thread spins, so "100 % CPU" is not all work: 06_knobs splits it.

# %%
plots.thread_utilisation(knobs.thread_utilisation(res.threads), res.labels, cap=cap);
tables.show(tables.measuring_table(res.summary))

# %% [markdown]
# ## Per-token decode latency

# %%
plots.token_latency_ecdf(res.tokens, res.labels, cap=cap);

# %% [markdown]
# ## The study's table on this machine
#
# With this study's decision (the same rule as 05_recommend, over these thread counts only) and the extra processes the run spent to settle it.

# %%
tables.show(tables.study_table(res.summary))
display(Markdown(runtimes.decisions_markdown(study.runtime_decisions(res))))
display(Markdown(study.refinements_markdown(P)))
display(Markdown(verdicts.same_work_sentence(res.trials)))

# %% [markdown]
# ## Runtimes side by side
#
# When `runtime` lists several runtimes: each one's median [95 % CI] at every thread count and its ratio to the first runtime's. They run the same checkpoint in the same shape, but not the same tokens: each runtime has its own quantisation (docs/models.md).

# %%
display(Markdown(tables.runtimes_markdown(res.summary)))

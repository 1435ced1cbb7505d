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
# # 04 · How to serve? Pinned workers under load
#
# The motivating study's deployment advice — several worker processes behind Gunicorn + FastAPI, each bound to its own cores with its own thread budget — measured on this machine. Every plan W workers × T threads with W·T = the physical cores runs as a real server (gunicorn, uvicorn workers, the OpenAI completions API) with each worker pinned to its own CPU slice before it loads the model, and HAProxy in front sending each request to an idle worker (`leastconn`, one request per worker, one bounded queue). The control is the study's own setup: gunicorn's uvicorn workers sharing one socket (a worker that is generating keeps accepting), `OMP_NUM_THREADS` per worker, no pinning. A load generator (asyncio + httpx, streaming) runs closed-loop concurrency levels (several requests per user, at least `requests_per_level`) and open-loop Poisson arrivals against each, on loopback only, bounded in requests and time.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import serving as serving_stats

study = studies.get("serving")
pd.set_option("display.max_colwidth", 200)

# %% tags=["parameters"]
model = 'qwen2.5-0.5b'  # str: synthetic preset name (built on demand and cached) or a path to an ONNX model folder/file
precision = 'int4'  # str; one of int4, int8, fp32, q4_k_m: weight precision of a synthetic preset (ONNX for ort and genai: MatMulNBits 4/8-bit block 32, fp32; the GGUF of llamacpp: Q4_0, Q8_0, F32, and q4_k_m, llama.cpp's Q4_K_M, for llamacpp only)
runtime = 'ort'  # str or str list; one of ort, genai, llamacpp: inference runtime: ort (onnxruntime, IOBinding loop), genai (onnxruntime-genai) or llamacpp (llama.cpp through llama-cpp-python, on a GGUF of the same checkpoint); a list such as [ort, llamacpp] is an axis of the threads and affinity studies (side by side), other studies use the first
prompt_tokens = 64  # int or int list: prompt length in tokens; a list such as [64, 512, 2048] is an axis of the threads study (per context length), other studies use the first
gen_tokens = 32  # int: tokens generated per repetition (greedy)
prompt_text = ''  # str: prompt text for a real model with its own tokenizer (chat template); synthetic presets use prompt_tokens ids; empty means prompt_tokens ids
warmup = 1  # int: untimed warm-up generations per worker process
timeout_s = 600.0  # float: time-out of one worker process, seconds
sample_interval_s = 0.1  # float: per-CPU utilisation sampling interval, seconds
serve_workers = 'auto'  # int list: worker counts W of the W x T plans (T is the physical cores divided by W); auto means every divisor of the core count
serve_batch = 'auto'  # int list: batched plans: one worker on all physical cores decoding up to B users together (continuous batching; HAProxy sends it up to B), one plan per B > 1; auto means as many users as the largest closed-loop level (2..8); [] for none
serve_controls = ['study']  # str list: control plans: study (the motivating study's deployment: gunicorn + uvicorn workers on one shared socket, OMP_NUM_THREADS per worker, ORT's default threads, unpinned), shared-socket (the pinned W x T on that shared socket: what dispatch costs), unpinned (W x T behind HAProxy without pinning)
control_workers = 2  # int: workers W of the control plans (capped at the usable CPUs)
concurrency = 'auto'  # int list: closed-loop concurrent users per level; auto means 1, 2, 4 ... up to twice the physical cores
poisson_load = [0.5, 0.9]  # float list: open-loop Poisson arrival rates as fractions of each plan's peak closed-loop request rate
requests_per_level = 20  # int: fewest requests per load level (a p99 of fewer than 20 is the maximum of a handful)
rounds_per_user = 3  # int: fewest requests per user in a closed-loop level
max_requests_per_level = 0  # int: most requests per level: above requests_per_level, a level goes on until its p50 and p99 TTFT intervals are within ttft_ci_target (0 means exactly the fewest)
ttft_ci_target = 0.1  # float: relative half-width of the p50/p99 TTFT intervals at which a level stops adding requests
level_timeout_s = 300.0  # float: time bound of one load level (and of one request in the queue or generating), seconds
latency_budgets_ms = [1000, 2000, 5000, 10000]  # int list: p99 TTFT budgets of the best-plan table, milliseconds
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, every plan fits this machine, model) before any
# server starts; a bad value stops here with a message naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## Plans
#
# Each worker's slice: whole physical cores (SMT siblings stay with their core), inside one LLC domain / NUMA node when it fits. `dispatch` says how requests reach the workers: `haproxy` (load-aware) or `shared-socket` (the study's).

# %%
plans = study.plans(P)
tables.show(study.plan_table(plans, P))

# %% [markdown]
# ## Load
#
# Per plan one server: warm-up, then every closed-loop concurrency level, then Poisson arrivals at fractions of the plan's peak request rate. Finished levels in the run folder are reused (resume).

# %%
res = study.measure(P, plans)
cap = plots.caption_for(None, P.values, P.topology)
if res.failures_table() is not None:
    display(Markdown("**Failed plans or levels** (recorded, the sweep went on):"))
    tables.show(res.failures_table())

# %% [markdown]
# ## Throughput against concurrent users

# %%
plots.serving_throughput(res.summary, cap=cap);

# %% [markdown]
# ## The throughput–latency frontier
#
# Each point is one load level; circles mark each plan's knee (the fewest users reaching 90 % of its peak throughput: past it, more users add latency, not tokens).

# %%
knees = serving_stats.knees(res.summary)
plots.serving_frontier(res.summary, knees, cap=cap)
tables.show(knees)

# %% [markdown]
# ## Best plan for a latency budget
#
# The one decision every coresweep answer uses, per budget: among closed-loop levels without errors or 503s whose p99 TTFT fits, of plans whose placement was verified, the most tok/s by its 95 % interval (tied levels: the lower p99 TTFT); the study's own setup and the other controls are shown beside the pick, never picked.

# %%
tables.show(serving_stats.best_for_budgets(res.summary, P.latency_budgets_ms,
                                           study.verified_plans(res)).round(1))
display(Markdown(study.recommendation(res, P)))

# %% [markdown]
# ## Which worker served each request
#
# Requests per worker slot, the imbalance ((most − fewest) / mean) and the time requests waited while a worker sat idle and another was busy, as a share of request time (`idle_wait_flag` above 2 %). Behind HAProxy a request waits only while every worker is busy; on the study's shared socket a connection goes to whichever worker accepts first, and a worker generating in its thread keeps accepting.

# %%
tables.show(study.worker_share(res).round(3))

# %% [markdown]
# ## Worker placement, read back from /proc, and every level
#
# The summary holds each level's intervals: `tok_s_ci_lo/hi`, `ttft_p50_ci_*`, `ttft_p99_ci_*` (bootstrap over requests; `n_ok` requests — a p99 of fewer than ~100 is near their maximum).

# %%
tables.show(study.placement_table(res))
tables.show(res.summary.round(4))

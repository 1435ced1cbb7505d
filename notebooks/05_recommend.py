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
# # 05 · What should I run? The recommendation
#
# The answer, from the other notebooks' results in the same run folder: the configuration to deploy for the lowest time to first token, for the highest decode speed and for the most users within a latency budget — each chosen by the one decision every coresweep answer uses, with how sure the run is — each with a configuration to paste; why (the roofline: decode against the memory bandwidth measured on the same CPUs); and the motivating study's claims checked one by one on this machine, on intervals.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import decision, runtimes
from coresweep.studies import recommend

study = studies.get("recommend")
pd.set_option("display.max_colwidth", 200)

# %% tags=["parameters"]
latency_budget_ms = 10000  # int: p99 time-to-first-token budget for the serving recommendation, milliseconds
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks the parameters; the evidence is read from the run folder the other notebooks wrote.
P = study.validate(globals())  # the parameters cell's values
rec = study.evidence(P)
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## The recommendation
#
# The decision: among points with an explicit thread count, placement verified, not oversubscribed and not throttled (noisy points stay: their interval carries the noise, the flag is shown), the best median and every point whose 95 % interval overlaps it and that nothing beats outright. **decided**: the best stands alone; **tied**: the cheapest of the tied points is within 5 % of the best — it is recommended; **undecided**: the machine was too noisy to tell them apart within 5 % — the best median is provisional, and the run re-measured the contenders while its budget allowed. Controls (ORT's default mode, OMP_NUM_THREADS only) are shown beside the pick, never picked.

# %%
display(Markdown(tables.markdown(study.picks_table(rec))))
display(Markdown(study.decision_markdown(rec)))
display(Markdown(decision.prefill_decode_note(rec.picks["ttft_s"], rec.picks["decode_tok_s"])))

# %% [markdown]
# ### The evidence
#
# Every point the decision chose among, with its 95 % interval and what the decision made of it.

# %%
display(Markdown(tables.markdown(rec.picks["decode_tok_s"].evidence)))
display(Markdown(tables.markdown(rec.picks["ttft_s"].evidence)))

# %% [markdown]
# ### For the lowest time to first token

# %%
display(Markdown(study.configs_markdown(rec, "ttft_s")))

# %% [markdown]
# ### For the highest decode speed

# %%
display(Markdown(study.configs_markdown(rec, "decode_tok_s")))

# %% [markdown]
# ### For serving several users within the latency budget

# %%
display(Markdown(study.serving_config(rec)))

# %% [markdown]
# ## Why: the roofline
#
# Every decoded token reads (about) every weight once, so decode speed × bytes per token is the bandwidth it uses; the dashed line is the read bandwidth measured on the same CPUs with the same thread count.

# %%
plots.roofline(rec.all_threads, cap=plots.caption_for(None, rec.params, P.topology))
display(Markdown(runtimes.bound_sentences(rec.all_threads, rec.runtime_picks)))

# %% [markdown]
# ## The study's claims on this machine

# %%
display(Markdown(tables.markdown(rec.claims)))
recommend.write_recommendation(rec, P.run_dir);  # summary.md shows it

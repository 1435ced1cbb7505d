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
# # 00 · The machine
#
# What this computer is, as the sweeps see it: packages, physical cores and their SMT siblings, caches, NUMA nodes, hybrid P/E cores, cgroup limits and the CPUs this process may use. The fingerprint recorded with every run is shown at the end, and the last section says which questions the other notebooks can answer on this machine.

# %%
import pandas as pd
from IPython.display import Markdown, display

from coresweep import plots, studies, tables
from coresweep.analysis import verdicts
from coresweep.machine.describe import describe

study = studies.get("machine")
pd.set_option("display.max_colwidth", 200)

# %% tags=["parameters"]
run_dir = ''  # str: run folder for data/ and run.json; empty means reports/<machine>-notebook (the batch runner sets it)

# %%
# Checks every parameter (type, choices, placement on this machine, model) before any
# trial runs; a bad value stops here with a message naming it and the valid choices.
P = study.validate(globals())  # the parameters cell's values
display(Markdown(tables.markdown(tables.parameters(P.to_dict()))))

# %% [markdown]
# ## Topology

# %%
print(describe(P.topology))

# %%
plots.topology_picture(P.topology, cap=plots.caption_for(topo=P.topology));

# %% [markdown]
# ## What the sweeps can test here

# %%
display(Markdown(tables.markdown(study.capabilities(P))))

# %% [markdown]
# ## Fingerprint
#
# Recorded in `run.json` of every run (versions, environment, transparent huge pages, load average...).

# %%
from coresweep.studies.machine import fingerprint_table

tables.show(fingerprint_table(study.write_fingerprint(P)))

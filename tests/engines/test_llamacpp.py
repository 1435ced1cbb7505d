"""The llamacpp runtime: the engine contract (greedy, exactly N tokens, per-token timestamps,
prompt and generation thread counts), its refusals, and a trial in the fresh pinned worker with
llama.cpp's threads read back from /proc."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from coresweep.engines import Generation, SessionConfig, make_engine, make_prompt, token_checksum
from coresweep.errors import ModelError

N = 24


def _check_generation(g: Generation, prompt_len: int, n: int) -> None:
    """The contract every engine keeps (as tests/engines/test_engine.py checks for ort/genai)."""
    assert len(g.tokens) == n and len(g.token_ns) == n and g.prompt_tokens == prompt_len
    assert g.start_ns < g.token_ns[0] and g.token_ns == sorted(g.token_ns)
    assert g.ttft_s > 0 and g.decode_tok_s > 0 and g.engine == "llamacpp"
    lat = g.token_latencies_s
    assert len(lat) == n and lat[0] == pytest.approx(g.ttft_s) and min(lat) >= 0
    assert g.e2e_s == pytest.approx(sum(lat)) and g.checksum == token_checksum(g.tokens)


@pytest.fixture(scope="module")
def prompt(tiny_gguf):
    return make_prompt(tiny_gguf, 48, seed=3)


def test_the_engine_contract(tiny_gguf, prompt):
    e = make_engine("llamacpp", tiny_gguf, SessionConfig(threads=1))
    assert e.load() > 0 and e.version().startswith("llama-cpp-python ")
    first = e.generate(prompt, N)
    _check_generation(first, len(prompt), N)
    again = e.generate(prompt, N)  # the context is reused (cleared) for the next generation
    fresh = make_engine("llamacpp", tiny_gguf, SessionConfig(threads=2)).generate(prompt, N)
    assert first.checksum == again.checksum == fresh.checksum
    longer = e.generate(prompt * 3, 8)  # a larger context is made when needed
    assert len(longer.tokens) == 8 and longer.prompt_tokens == 3 * len(prompt)
    assert e.generate(prompt[:5], 3).prompt_tokens == 5


def test_end_of_generation_is_suppressed(tiny_gguf, prompt):
    s = SessionConfig(threads=1)
    free = make_engine("llamacpp", tiny_gguf, s).generate(prompt, N)
    eos = [free.tokens[0]]  # pretend the first token ends the sequence
    masked = make_engine("llamacpp", tiny_gguf, s, eos_token_ids=eos).generate(prompt, N)
    assert len(masked.tokens) == N and eos[0] not in masked.tokens


def test_prompt_and_generation_thread_counts(tiny_gguf, prompt):
    """n_threads_batch (the prompt) and n_threads (decode) apart: the same tokens."""
    e = make_engine("llamacpp", tiny_gguf, SessionConfig(1, prompt_threads=2))
    g = e.generate(prompt, N)
    ctx = e.ctx
    import llama_cpp

    assert (llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)) == (1, 2)
    assert g.tokens == make_engine("llamacpp", tiny_gguf, SessionConfig(1)).generate(
        prompt, N).tokens


def test_what_llamacpp_refuses(tiny_gguf, tiny_int4):
    from coresweep.engines import check_session

    with pytest.raises(ModelError, match="cannot set spinning=False"):
        make_engine("llamacpp", tiny_gguf, SessionConfig.of(1, spinning=False))
    with pytest.raises(ModelError, match="no 'ort-default' mode"):
        check_session("llamacpp", SessionConfig(None))
    with pytest.raises(ModelError, match="holds no GGUF model"):
        make_engine("llamacpp", tiny_int4, SessionConfig(1))
    with pytest.raises(ModelError, match="one thread pool per session"):
        make_engine("ort", tiny_int4, SessionConfig(1, prompt_threads=2))
    with pytest.raises(ModelError, match="exceeds the model's context of 4096"):
        make_engine("llamacpp", tiny_gguf, SessionConfig(1)).generate([1] * 4090, 10)


@pytest.mark.slow
def test_a_trial_reads_llamacpps_threads_back(tiny_gguf, tmp_path):
    """The worker pins itself before llama_cpp is imported; llama.cpp's own (OpenMP) threads run
    only on the planned CPUs, as /proc shows."""
    from coresweep.measurement.config import TrialConfig
    from coresweep.measurement.sweep import sweep

    threads = min(2, len(os.sched_getaffinity(0)))
    cfg = TrialConfig(model=str(tiny_gguf), runtime="llamacpp", threads=threads,
                      placement="physical", prompt_tokens=32, gen_tokens=48, reps=3, warmup=1)
    run = sweep([cfg], out=tmp_path / "run", processes=1, progress=False)
    t = run.trials
    assert len(t) == 3 and (t["runtime"] == "llamacpp").all() and t["ok"].all()
    assert t["placement_ok"].all() and t["affinity_first"].all(), t["placement_reasons"].tolist()
    assert t["checksum"].nunique() == 1 and (t["decode_tok_s"] > 0).all()
    assert t["runtime_version"].str.startswith("llama-cpp-python").all()
    assert t["onnxruntime_version"].isna().all()  # onnxruntime was never imported
    plan = set(map(int, t["cpus"].iloc[0].replace("-", ",").split(",")))
    busy = run.threads[(run.threads["when"] == "decode") & run.threads["busy"]]
    assert 1 <= len(busy) <= threads
    for seen in busy["seen_cpus"]:
        assert set(map(int, seen.replace("-", ",").split(","))) <= plan


@pytest.mark.slow
def test_trial_cli_runs_runtime_llamacpp(tiny_gguf, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "coresweep", "trial", "--model", str(tiny_gguf), "--runtime",
         "llamacpp", "--threads", "1", "--prompt-threads", "2", "--processes", "1", "--reps",
         "2", "--gen-tokens", "8", "--prompt-tokens", "16", "--oversubscribe", "--json",
         "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["config"]["runtime"] == "llamacpp" and d["config"]["session"] == {"prompt_threads": 2}
    assert d["statistics"]["decode_tok_s_median"] > 0 and d["placement"]["placement_ok"]
    bad = subprocess.run(
        [sys.executable, "-m", "coresweep", "trial", "--model", str(tiny_gguf), "--runtime",
         "llamacpp", "--threads", "1", "--no-spinning"], capture_output=True, text=True,
        timeout=120)
    assert bad.returncode == 2 and "cannot set spinning=False" in bad.stderr

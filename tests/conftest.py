"""Shared pytest fixtures.

Model fixtures (session-scoped, built ONCE and cached across runs and test sessions):

- ``test_model_cache`` -> Path: ``<repo>/.cache/test-models`` (gitignored). Every test session of
  every engineer shares it; builds are atomic and serialised by a lock file, so parallel sessions
  are safe. Delete the folder to force a rebuild.
- ``tiny_int4`` -> Path: model dir of the ``tiny`` preset, INT4 (MatMulNBits, block 32, accuracy
  level 4), built by the onnxruntime-genai model builder; holds model.onnx, genai_config.json,
  tokenizer.json, manifest.json. First build ~10 s, later runs ~0 s.
- ``tiny_fp32`` -> Path: the same checkpoint (same seed, same weights) built in fp32.

Use them with ``coresweep.engine.make_engine(name, tiny_int4, SessionConfig(threads=1))`` and
``coresweep.engine.make_prompt(tiny_int4, 32)``. The tiny preset: hidden 128, 2 layers, 4 heads,
2 KV heads, intermediate 256, vocab 2048, context 4096 (special tokens at ids 2045-2047).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL_CACHE = REPO / ".cache" / "test-models"


@pytest.fixture(scope="session")
def test_model_cache() -> Path:
    TEST_MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    return TEST_MODEL_CACHE


@pytest.fixture(scope="session")
def tiny_int4(test_model_cache) -> Path:
    from coresweep.models import build_model

    return build_model("tiny", "int4", cache_dir=test_model_cache, progress=False)


@pytest.fixture(scope="session")
def tiny_fp32(test_model_cache) -> Path:
    from coresweep.models import build_model

    return build_model("tiny", "fp32", cache_dir=test_model_cache, progress=False)

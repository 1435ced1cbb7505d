"""GGUF models for runtime llamacpp: converted by llama.cpp's convert_hf_to_gguf.py from the same
checkpoint the ONNX build reads, quantised by llama_model_quantize, cached with a manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _llamacpp import needs_llamacpp
from coresweep.errors import ModelError


@pytest.fixture(scope="module")
def built(test_model_cache):
    """Every precision of the tiny preset as GGUF (seconds each)."""
    from coresweep.models import build_gguf

    needs_llamacpp()
    return {p: build_gguf("tiny", p, cache_dir=test_model_cache, progress=False)
            for p in ("int4", "q4_k_m", "int8", "fp32")}


def _reader(model_dir):
    from coresweep.models import gguf

    return gguf.gguf_module().GGUFReader(str(gguf.find_gguf(model_dir)))


def test_conversion_keeps_the_checkpoint_weights(built, tmp_path):
    """The F32 GGUF holds exactly the random checkpoint's tensors (the one the ONNX build reads)."""
    from coresweep.models import preset_config, write_checkpoint
    from safetensors.numpy import load_file

    cfg = preset_config("tiny")
    cfg["bos_token_id"] = cfg["eos_token_id"] = 2045
    ckpt = write_checkpoint(cfg, tmp_path / "hf")
    weights = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        weights.update(load_file(str(f)))
    tensors = {t.name: t for t in _reader(built["fp32"]).tensors}
    pairs = {"token_embd.weight": "model.embed_tokens.weight", "output.weight": "lm_head.weight",
             "blk.1.ffn_down.weight": "model.layers.1.mlp.down_proj.weight",
             "blk.0.attn_q.bias": "model.layers.0.self_attn.q_proj.bias"}
    for gguf_name, hf_name in pairs.items():
        got = np.asarray(tensors[gguf_name].data).reshape(weights[hf_name].shape)
        assert np.array_equal(got, weights[hf_name]), gguf_name


def test_quantisation_types_and_manifest(built, tiny_int4):
    from coresweep.models import gguf, inspect_model

    onnx = json.loads((tiny_int4 / "manifest.json").read_text())
    file_types = {"int4": 2, "int8": 7, "q4_k_m": 15, "fp32": 0}  # llama_ftype
    sizes = {}
    for precision, d in built.items():
        m = json.loads((d / "manifest.json").read_text())
        assert m["format"] == "gguf" and m["gguf_type"] == gguf.GGUF_TYPES[precision]
        assert m["parameter_count"] == onnx["parameter_count"] and m["config"] == onnx["config"]
        assert m["seed"] == onnx["seed"] and m["key"]["corpus_sha256"] == onnx["key"]["corpus_sha256"]
        assert 0 < m["bytes_per_token"] < m["weight_bytes"] and m["kv_bytes_per_position"] > 0
        assert "convert" in (d / "build.log").read_text()
        field = _reader(d).fields["general.file_type"]
        assert int(field.contents()) == file_types[precision]
        info = inspect_model(d)
        assert info.format == "gguf" and info.bytes_per_token == m["bytes_per_token"]
        sizes[precision] = m["bytes_per_token"]
    assert built["int4"].name.startswith("tiny-gguf-q4_0-")
    assert "Q4_0" in json.loads((built["int4"] / "manifest.json").read_text())["tensor_types"]
    assert "Q8_0" in json.loads((built["int8"] / "manifest.json").read_text())["tensor_types"]
    assert sizes["int4"] < sizes["int8"] < sizes["fp32"]


def test_inspect_and_prompt_match_the_onnx_model(built, tiny_int4):
    """The GGUF says the same shape as the ONNX model, and a synthetic prompt is the same ids."""
    from coresweep.engines import make_prompt
    from coresweep.models import inspect_model

    g, o = inspect_model(built["int4"]), inspect_model(tiny_int4)
    assert (g.vocab_size, g.max_context, g.num_layers, g.kv_heads, g.head_dim) == \
        (o.vocab_size, o.max_context, o.num_layers, o.kv_heads, o.head_dim) == (2048, 4096, 2, 2, 32)
    assert 2045 in g.eos_token_ids and g.onnx_path.endswith(".gguf")
    assert make_prompt(built["int4"], 40, seed=5) == make_prompt(tiny_int4, 40, seed=5)


def test_a_build_is_cached_and_resolved_by_format(built, tiny_int4, test_model_cache):
    from coresweep.models import bytes_per_token, resolve_model

    assert resolve_model("tiny", "int4", build=False, fmt="gguf",
                         cache_dir=test_model_cache) == built["int4"]
    assert resolve_model(built["int4"] / "model.gguf", fmt="gguf").name == "model.gguf"
    with pytest.raises(ModelError, match="is a GGUF model: only runtime llamacpp runs it"):
        resolve_model(built["int4"], fmt="onnx")
    with pytest.raises(ModelError, match="holds no .gguf file"):
        resolve_model(tiny_int4, fmt="gguf")
    with pytest.raises(ModelError, match="valid formats: onnx, gguf"):
        resolve_model(tiny_int4, fmt="safetensors")
    assert bytes_per_token(built["int4"], fmt="gguf") != bytes_per_token(tiny_int4)


def test_precisions_per_format():
    from coresweep.models import build_model, gguf

    with pytest.raises(ModelError, match="q4_k_m"):
        build_model("tiny", "q4_k_m")
    with pytest.raises(ModelError, match="valid precisions: int4, int8, fp32, q4_k_m"):
        gguf.gguf_type("q2")
    assert gguf.gguf_type("int4") == "Q4_0"

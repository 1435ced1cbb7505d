"""Synthetic presets: build, manifest, tokenizer, inspection and the errors users hit."""

from __future__ import annotations

import json
import shutil

import pytest
from coresweep import models
from coresweep.errors import ModelError
from coresweep.models import synthetic


def test_presets_have_the_issue_shapes():
    ds = models.preset_config("deepseek-r1-distill-qwen-1.5b")
    assert (ds["hidden_size"], ds["intermediate_size"], ds["num_hidden_layers"]) == (1536, 8960, 28)
    assert (ds["num_attention_heads"], ds["num_key_value_heads"], ds["vocab_size"]) == (12, 2, 151936)
    assert ds["rope_theta"] == 10000.0 and ds["rms_norm_eps"] == 1e-6
    assert ds["tie_word_embeddings"] is False and ds["max_position_embeddings"] == 131072
    q = models.preset_config("qwen2.5-0.5b")
    assert (q["hidden_size"], q["intermediate_size"], q["num_hidden_layers"]) == (896, 4864, 24)
    assert (q["num_attention_heads"], q["num_key_value_heads"]) == (14, 2)
    assert q["tie_word_embeddings"] is True and q["rope_theta"] == 1e6
    # 1.5B parameter count as published (1.78 B with untied embeddings)
    assert 1.7e9 < models.parameter_count(ds) < 1.85e9


def test_overrides_and_their_errors():
    cfg = models.preset_config("tiny", {"layers": "4", "tied": "true"})
    assert cfg["num_hidden_layers"] == 4 and cfg["tie_word_embeddings"] is True
    with pytest.raises(ModelError, match="unknown override 'colour'.*valid keys"):
        models.preset_config("tiny", {"colour": 3})
    with pytest.raises(ModelError, match="expected an integer"):
        models.preset_config("tiny", {"layers": "x"})
    with pytest.raises(ModelError, match="divisible"):
        models.preset_config("tiny", {"heads": 3})
    with pytest.raises(ModelError, match="unknown preset 'gpt5'.*tiny"):
        models.preset_config("gpt5")
    with pytest.raises(ModelError, match="key=value"):
        models.parse_overrides(["layers4"])


def test_unknown_precision_names_valid_ones(tmp_path):
    with pytest.raises(ModelError, match="valid precisions: int4, int8, fp32"):
        models.build_model("tiny", "int3", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # raised before any work


def test_manifest_contents(tiny_int4, tiny_fp32):
    for d, prec in ((tiny_int4, "int4"), (tiny_fp32, "fp32")):
        m = json.loads((d / "manifest.json").read_text())
        assert m["preset"] == "tiny" and m["precision"] == prec
        assert m["config"]["hidden_size"] == 128 and m["config"]["num_hidden_layers"] == 2
        for lib in ("onnxruntime-genai", "onnxruntime", "onnx", "torch", "transformers", "tokenizers"):
            assert m["versions"][lib]
        assert m["parameter_count"] == models.parameter_count(m["config"]) > 0
        assert m["bytes_per_token"] > 0 and m["kv_bytes_per_position"] == 2 * 2 * 2 * 32 * 4
        assert m["files"]["model.onnx"] > 0 and m["files"]["model.onnx.data"] > 0
        assert m["build_seconds"] > 0 and m["built_at"].endswith("+00:00")
        assert m["key"]["seed"] == synthetic.SEED
    m4 = json.loads((tiny_int4 / "manifest.json").read_text())
    m32 = json.loads((tiny_fp32 / "manifest.json").read_text())
    assert m4["accuracy_level"] == 4 and m4["block_size"] == 32
    assert m4["quant_ops"]["MatMulNBits"] > 0 and "MatMulNBits" not in m32["quant_ops"]
    # fp32 reads every weight in 4 bytes: 4-bit weights + scales are ~6x smaller
    assert m32["bytes_per_token"] > 3 * m4["bytes_per_token"]
    cfg = m32["config"]
    h, v, L = cfg["hidden_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    hd, q, kv, inter = cfg["head_dim"], 4 * 32, 2 * 32, cfg["intermediate_size"]
    layer = (h * q + 2 * h * kv + q * h + 3 * h * inter) * 4
    # fp32: all matmul weights + lm_head + one embedding row (+ small norms/biases/rotary rows)
    expected = L * layer + v * h * 4 + h * 4
    assert expected <= m32["bytes_per_token"] < expected * 1.05
    assert hd == 32


def test_build_is_skipped_when_manifest_matches(tiny_int4, test_model_cache):
    before = (tiny_int4 / "manifest.json").stat().st_mtime_ns
    again = models.build_model("tiny", "int4", cache_dir=test_model_cache, progress=False)
    assert again == tiny_int4
    assert (tiny_int4 / "manifest.json").stat().st_mtime_ns == before
    names = [r["name"] for r in models.list_models(test_model_cache)]
    assert tiny_int4.name in names
    assert not [p for p in test_model_cache.iterdir() if p.name.endswith(".tmp")]


def test_tokenizer_corpus_is_found():
    """The BPE trains on the shipped text: an empty corpus would still build (bytes only), so
    a wrong data path would only show as a different model key."""
    paths = synthetic._corpus_paths()
    assert [p.name for p in paths] == ["corpus.txt"]
    assert paths[0].stat().st_size > 10_000
    assert synthetic._corpus_sha() != "e3b0c44298fc1c14"  # sha256 of nothing


def test_tokenizer_decodes_every_id_and_has_real_specials(tiny_int4, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_int4), local_files_only=True)
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2047
    assert len(tok) == 2048
    text = tok.decode(list(range(2048)))
    assert "<|fill_0|>" in text and "<|endoftext|>" in text
    ids = tok.apply_chat_template([{"role": "user", "content": "Hello"}],
                                  add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert ids[0] == 2046 and "assistant" in tok.decode(ids)
    # the full-size vocabulary keeps the real Qwen2 ids
    info = models.build_tokenizer(151936, tmp_path)
    assert info["special_tokens"] == synthetic.QWEN2_SPECIAL_TOKENS
    big = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert big.convert_tokens_to_ids("<|endoftext|>") == 151643
    assert len(big) == 151936 and big.decode([151935])


def test_inspect_builder_output(tiny_int4):
    info = models.inspect_model(tiny_int4)
    assert info.is_genai and not info.has_position_ids and info.shares_kv_buffer
    assert (info.num_layers, info.kv_heads, info.head_dim) == (2, 2, 32)
    assert info.vocab_size == 2048 and info.max_context == 4096
    assert info.tokenizer_dir == str(tiny_int4)
    assert info.past_names[1] == ("past_key_values.1.key", "past_key_values.1.value")
    assert json.dumps(info.to_dict())


def test_inspect_errors(tmp_path, tiny_int4):
    with pytest.raises(ModelError, match="no ONNX decoder"):
        models.inspect_model(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        models.inspect_model(tmp_path / "nope")
    # two candidates without genai_config.json: the error lists them and says how to pick
    two = tmp_path / "two"
    (two / "onnx").mkdir(parents=True)
    for name in ("model.onnx", "model_q4.onnx"):
        shutil.copy(tiny_int4 / "model.onnx", two / "onnx" / name)
    with pytest.raises(ModelError, match=r"several ONNX files \(onnx/model.onnx, onnx/model_q4.onnx\)"):
        models.inspect_model(two)
    # a model that is not a causal LM with a KV cache
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 4])
    y = helper.make_tensor_value_info("out", TensorProto.INT64, [1, 4])
    g = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["out"])], "g", [x], [y])
    bad = tmp_path / "bad"
    bad.mkdir()
    onnx.save(helper.make_model(g), str(bad / "model.onnx"))
    with pytest.raises(ModelError, match="not a causal LM with a KV cache"):
        models.inspect_model(bad)


def test_resolve_model(tiny_int4, test_model_cache, tmp_path):
    assert models.resolve_model("tiny", "int4", cache_dir=test_model_cache) == tiny_int4
    assert models.resolve_model(str(tiny_int4)) == tiny_int4
    with pytest.raises(ModelError, match="not built"):
        models.resolve_model("tiny", "int8", build=False, cache_dir=tmp_path)
    with pytest.raises(ModelError, match="neither a preset"):
        models.resolve_model(str(tmp_path / "missing"))


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CORESWEEP_CACHE", str(tmp_path))
    assert models.model_cache_dir() == tmp_path.resolve()
    assert models.model_cache_dir(tmp_path / "x") == (tmp_path / "x").resolve()


def test_int8_precision_builds_8bit_matmulnbits(test_model_cache):
    import onnx

    d = models.build_model("tiny", "int8", cache_dir=test_model_cache, progress=False)
    m = onnx.load(str(d / "model.onnx"), load_external_data=False)
    bits = {a.i for n in m.graph.node if n.op_type == "MatMulNBits"
            for a in n.attribute if a.name == "bits"}
    assert bits == {8}
    assert json.loads((d / "manifest.json").read_text())["precision"] == "int8"


def test_cli_model_commands(tiny_int4, test_model_cache, capsys):
    from coresweep.cli import main

    assert main(["model", "info", str(tiny_int4), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["num_layers"] == 2 and d["shares_kv_buffer"] is True
    assert main(["model", "info", "tiny", "--cache", str(test_model_cache)]) == 0
    out = capsys.readouterr().out
    assert "GroupQueryAttention" in out and "MatMulNBits" in out
    assert main(["model", "build", "tiny", "--cache", str(test_model_cache), "--quiet"]) == 0
    assert str(tiny_int4) in capsys.readouterr().out
    assert main(["model", "list", "--cache", str(test_model_cache)]) == 0
    assert tiny_int4.name in capsys.readouterr().out
    assert main(["model", "build", "tiny", "--set", "layers=x", "--cache",
                 str(test_model_cache)]) == 2
    assert "expected an integer" in capsys.readouterr().err
    assert main(["model", "info", "/nonexistent/dir"]) == 2


def test_interrupted_build_leaves_no_model(tmp_path, monkeypatch):
    """A build that dies in the builder leaves only a hidden temp dir, removed by the next build."""
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_run_builder", boom)
    with pytest.raises(KeyboardInterrupt):
        models.build_model("tiny", "fp32", cache_dir=tmp_path, progress=False,
                           overrides={"layers": 1})
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert models.list_models(tmp_path) == []
    stale = tmp_path / ".tiny-fp32-x.abc.tmp"
    stale.mkdir()
    with pytest.raises(ModelError, match="not built"):
        models.resolve_model("tiny", "fp32", build=False, cache_dir=tmp_path)


def test_bytes_per_token_of_a_model_and_of_nothing(tiny_int4):
    from coresweep.models import bytes_per_token, inspect_model

    assert bytes_per_token(str(tiny_int4)) == inspect_model(tiny_int4).bytes_per_token > 0
    assert bytes_per_token(None) is None and bytes_per_token("/no/such/model") is None

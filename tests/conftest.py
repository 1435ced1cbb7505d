"""Shared pytest fixtures.

Model fixtures (session-scoped, built ONCE and cached across runs and test sessions):

- ``test_model_cache`` -> Path: ``<repo>/.cache/test-models`` (gitignored). Every test session of
  every engineer shares it; builds are atomic and serialised by a lock file, so parallel sessions
  are safe. Delete the folder to force a rebuild.
- ``tiny_int4`` -> Path: model dir of the ``tiny`` preset, INT4 (MatMulNBits, block 32, accuracy
  level 4), built by the onnxruntime-genai model builder; holds model.onnx, genai_config.json,
  tokenizer.json, manifest.json. First build ~10 s, later runs ~0 s.
- ``tiny_fp32`` -> Path: the same checkpoint (same seed, same weights) built in fp32.
- ``small_int4`` -> Path: the qwen2.5-0.5b preset in INT4 (for tests that need seconds per request).
- ``tiny_gguf`` -> Path: the tiny preset's GGUF (Q4_0) for runtime llamacpp, converted from the
  same checkpoint; skips without llama-cpp-python (fails when CORESWEEP_REQUIRE_LLAMACPP=1).

Use them with ``coresweep.engines.make_engine(name, tiny_int4, SessionConfig(threads=1))`` and
``coresweep.engines.make_prompt(tiny_int4, 32)``. The tiny preset: hidden 128, 2 layers, 4 heads,
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


@pytest.fixture(scope="session")
def tiny_gguf(test_model_cache) -> Path:
    """The tiny preset's GGUF for runtime llamacpp (Q4_0), from the checkpoint tiny_int4 reads."""
    from _llamacpp import needs_llamacpp
    from coresweep.models import build_gguf

    needs_llamacpp()
    return build_gguf("tiny", "int4", cache_dir=test_model_cache, progress=False)


@pytest.fixture(scope="session")
def small_int4(test_model_cache) -> Path:
    """The qwen2.5-0.5b preset (INT4, ~320 MB, ~35 s to build once): slow enough per token that a
    test can act while a generation is in flight."""
    from coresweep.models import build_model

    return build_model("qwen2.5-0.5b", "int4", cache_dir=test_model_cache, progress=False)


# ---------------------------------------------------------------------------------------------
# An optimum / onnx-community style export of the tiny checkpoint (real-model layout).


def write_optimum_style_export(hf_dir: Path, out_dir: Path) -> Path:
    """Write ``out_dir/onnx/model.onnx`` (+ config.json and tokenizer files in out_dir): the tiny
    checkpoint as a plain-ONNX decoder with the optimum IO contract -- input_ids, attention_mask,
    position_ids, past_key_values.N.key/value -> logits, present.N.key/value -- where every step
    concatenates its keys/values to the past (no GroupQueryAttention, standard ONNX ops only).

    Built with onnx.helper from the safetensors weights rather than torch.onnx.export, whose
    cache handling changes with every transformers release; the graph follows Qwen2's forward
    (RMSNorm, rotary on position_ids with rotate_half, grouped-query attention, SwiGLU MLP).
    """
    import json
    import shutil

    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    w: dict[str, np.ndarray] = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        w.update(load_file(str(f)))
    H, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    nh, kvh = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, g = H // nh, nh // kvh
    V, maxpos = cfg["vocab_size"], cfg["max_position_embeddings"]
    theta = cfg.get("rope_theta") or cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)
    eps = cfg["rms_norm_eps"]

    nodes, inits = [], []
    counter = [0]

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"{op}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, prefix, bias=False):
        y = node("MatMul", [x, const(prefix + ".weight.T", w[prefix + ".weight"].T.copy())])
        return node("Add", [y, const(prefix + ".bias", w[prefix + ".bias"])]) if bias else y

    def rmsnorm(x, wname):
        var = node("ReduceMean", [node("Mul", [x, x])], axes=[-1], keepdims=1)
        inv = node("Reciprocal", [node("Sqrt", [node("Add", [var, c_eps])])])
        return node("Mul", [node("Mul", [x, inv]), const(wname, w[wname])])

    c_eps = const("eps", np.array(eps, np.float32))
    inv_freq = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    freqs = np.outer(np.arange(maxpos, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos_t = const("cos_table", np.cos(emb).astype(np.float32))
    sin_t = const("sin_table", np.sin(emb).astype(np.float32))
    i64 = lambda name, v: const(name, np.array(v, np.int64))  # noqa: E731
    c_half, c_hd, c_zero = i64("half", [hd // 2]), i64("hd", [hd]), i64("zero", [0])
    c_axis3, c_one_axis = i64("axis3", [3]), i64("axis1", [1])
    c_neg1 = const("neg1", np.array(-1.0, np.float32))
    c_neginf = const("neg_large", np.array(-1e9, np.float32))
    c_scale = const("scale", np.array(1.0 / np.sqrt(hd), np.float32))

    # rotary tables for these positions: [B, 1, S, hd]
    cos = node("Unsqueeze", [node("Gather", [cos_t, "position_ids"]), c_one_axis])
    sin = node("Unsqueeze", [node("Gather", [sin_t, "position_ids"]), c_one_axis])

    def rope(x):  # x [B, heads, S, hd]; rotate_half(x) = cat(-x2, x1)
        x1 = node("Slice", [x, c_zero, c_half, c_axis3])
        x2 = node("Slice", [x, c_half, c_hd, c_axis3])
        rot = node("Concat", [node("Mul", [x2, c_neg1]), x1], axis=-1)
        return node("Add", [node("Mul", [x, cos]), node("Mul", [rot, sin])])

    # mask [B, 1, 1, S, T]: causal (key j visible to query i iff j <= past + i) + padding
    shape_ids = node("Shape", ["input_ids"])
    S = node("Gather", [shape_ids, i64("idx1", 1)])
    T = node("Gather", [node("Shape", ["attention_mask"]), i64("idx1b", 1)])
    past_len = node("Sub", [T, S])
    rows = node("Add", [node("Range", [i64("r0", 0), S, i64("r1", 1)]), past_len])
    cols = node("Range", [i64("c0", 0), T, i64("c1", 1)])
    allowed = node("LessOrEqual", [node("Unsqueeze", [cols, i64("ax0", [0])]),
                                   node("Unsqueeze", [rows, i64("ax1", [1])])])
    pad_ok = node("Cast", [node("Unsqueeze", ["attention_mask", i64("ax123", [1, 2, 3])])],
                  to=TensorProto.BOOL)
    allowed = node("And", [allowed, pad_ok])  # [B,1,1,S,T] after broadcast
    add_mask = node("Where", [allowed, const("zero_f", np.array(0.0, np.float32)), c_neginf])

    B_S_kvh = node("Concat", [node("Slice", [shape_ids, c_zero, i64("one1", [1])]),
                              node("Unsqueeze", [S, i64("ax0b", [0])])], axis=0)  # [B, S]
    x = node("Gather", [const("embed", w["model.embed_tokens.weight"]), "input_ids"])
    outputs = []
    for i in range(L):
        p = f"model.layers.{i}."
        h = rmsnorm(x, p + "input_layernorm.weight")

        def heads(t, n):  # [B,S,n*hd] -> [B,n,S,hd]
            shp = node("Concat", [B_S_kvh, i64(f"nh{n}_{counter[0]}", [n, hd])], axis=0)
            return node("Transpose", [node("Reshape", [t, shp])], perm=[0, 2, 1, 3])

        q = rope(heads(linear(h, p + "self_attn.q_proj", True), nh))
        k = rope(heads(linear(h, p + "self_attn.k_proj", True), kvh))
        v = heads(linear(h, p + "self_attn.v_proj", True), kvh)
        pk, pv = f"past_key_values.{i}.key", f"past_key_values.{i}.value"
        k_all = node("Concat", [pk, k], axis=2)
        v_all = node("Concat", [pv, v], axis=2)
        nodes.append(helper.make_node("Identity", [k_all], [f"present.{i}.key"]))
        nodes.append(helper.make_node("Identity", [v_all], [f"present.{i}.value"]))
        outputs += [f"present.{i}.key", f"present.{i}.value"]
        # grouped-query attention: q [B,nh,S,hd] -> [B,kvh,g,S,hd]; k,v [B,kvh,1,T,hd]
        q5 = node("Reshape", [q, i64(f"q5_{i}", [0, kvh, g, -1, hd])])
        k5 = node("Unsqueeze", [k_all, i64(f"k5_{i}", [2])])
        v5 = node("Unsqueeze", [v_all, i64(f"v5_{i}", [2])])
        scores = node("Mul", [node("MatMul", [q5, node("Transpose", [k5],
                                                       perm=[0, 1, 2, 4, 3])]), c_scale])
        probs = node("Softmax", [node("Add", [scores, add_mask])], axis=-1)
        ctx = node("Reshape", [node("MatMul", [probs, v5]), i64(f"ctx_{i}", [0, nh, -1, hd])])
        ctx = node("Reshape", [node("Transpose", [ctx], perm=[0, 2, 1, 3]),
                               i64(f"ctxf_{i}", [0, 0, H])])
        x = node("Add", [x, linear(ctx, p + "self_attn.o_proj")])
        h = rmsnorm(x, p + "post_attention_layernorm.weight")
        gate = linear(h, p + "mlp.gate_proj")
        up = linear(h, p + "mlp.up_proj")
        act = node("Mul", [node("Mul", [gate, node("Sigmoid", [gate])]), up])
        x = node("Add", [x, linear(act, p + "mlp.down_proj")])
    x = rmsnorm(x, "model.norm.weight")
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    nodes.append(helper.make_node("MatMul", [x, const("lm_head.T", head.T.copy())], ["logits"]))

    f32, i64t = TensorProto.FLOAT, TensorProto.INT64
    inputs = [helper.make_tensor_value_info("input_ids", i64t, ["batch_size", "sequence_length"]),
              helper.make_tensor_value_info("attention_mask", i64t,
                                            ["batch_size", "total_sequence_length"]),
              helper.make_tensor_value_info("position_ids", i64t, ["batch_size", "sequence_length"])]
    for i in range(L):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                f"past_key_values.{i}.{kind}", f32, ["batch_size", kvh, "past_sequence_length", hd]))
    outs = [helper.make_tensor_value_info("logits", f32, ["batch_size", "sequence_length", V])]
    outs += [helper.make_tensor_value_info(n, f32, ["batch_size", kvh, "total_sequence_length", hd])
             for n in outputs]
    graph = helper.make_graph(nodes, "qwen2_optimum_style", inputs, outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="coresweep-tests")
    onnx.checker.check_model(model)
    (out_dir / "onnx").mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_dir / "onnx" / "model.onnx"))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        if (hf_dir / name).exists():
            shutil.copy(hf_dir / name, out_dir / name)
    return out_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(test_model_cache) -> Path:
    """The Hugging Face checkpoint (config, safetensors, tokenizer) behind tiny_int4/tiny_fp32."""
    import fcntl
    import json

    from coresweep.models import synthetic as models

    out = test_model_cache / f"tiny-hf-{models._corpus_sha()}-{models.SEED}"
    with open(test_model_cache / ".tiny-hf.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "model.safetensors.index.json").exists():
            tmp = test_model_cache / f".{out.name}.tmp"
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            models.write_preset_checkpoint("tiny", tmp)
            tmp.rename(out)
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 128
    return out


@pytest.fixture(scope="session")
def tiny_optimum(test_model_cache, tiny_checkpoint) -> Path:
    """An optimum-style export (onnx/model.onnx with position_ids, concatenated KV) of the same
    tiny checkpoint; a directory with config.json and the tokenizer next to onnx/."""
    import fcntl

    out = test_model_cache / f"tiny-optimum-v1-{tiny_checkpoint.name}"
    with open(test_model_cache / ".tiny-optimum.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "onnx" / "model.onnx").exists():
            tmp = test_model_cache / f".{out.name}.tmp"
            if tmp.exists():
                import shutil

                shutil.rmtree(tmp)
            write_optimum_style_export(tiny_checkpoint, tmp)
            tmp.rename(out)
    return out

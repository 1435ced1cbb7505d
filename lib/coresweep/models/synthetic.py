"""Synthetic presets (built offline with the onnxruntime-genai model builder) and real ONNX models.

A preset is a Qwen2 architecture configuration with random, seeded weights: CPU speed depends on
shapes and data types, not on weight values. `build_model` writes a sharded safetensors checkpoint
tensor by tensor (no full fp32 model is ever materialised by coresweep), trains a byte-level BPE
tokenizer on the text shipped in ``coresweep/data`` (padded to the preset's vocabulary with the
real Qwen2 special-token ids), runs the builder in a child process, and moves the result into the
cache atomically. `inspect_model` (in models/inspect.py) reads the IO contract of any decoder ONNX
model (the builder's output or an optimum / onnx-community export) without creating a session.

Nothing here imports onnxruntime: a worker process must be able to import coresweep, set its CPU
affinity and only then import onnxruntime.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coresweep.errors import ModelError
from coresweep.models.child import run_logged
from coresweep.models.inspect import inspect_model
from coresweep.provenance import BUILD_PACKAGES, collect_versions

FORMAT_VERSION = 1
GGUF_FORMAT = 2  # 2: the manifest holds the GGUF's facts (gguf_info), read back without parsing
SEED = 1234
PRECISIONS = ("int4", "int8", "fp32")
ENV_CACHE = "CORESWEEP_CACHE"

# Real Qwen2 / Qwen2.5 special tokens and their ids (tokenizer_config.json of Qwen2.5).
QWEN2_SPECIAL_TOKENS: dict[str, int] = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
}
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_COMMON = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "initializer_range": 0.02,
    "attention_dropout": 0.0,
    "use_sliding_window": False,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}

PRESETS: dict[str, dict] = {
    "tiny": {
        **_COMMON,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 2048,
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 2045,
        "eos_token_id": 2045,
    },
    "qwen2.5-0.5b": {
        **_COMMON,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
    },
    "deepseek-r1-distill-qwen-1.5b": {
        **_COMMON,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 131072,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
    },
}

# Short names accepted by --set (key=value) next to the config's own field names.
ALIASES = {
    "layers": "num_hidden_layers",
    "hidden": "hidden_size",
    "intermediate": "intermediate_size",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "vocab": "vocab_size",
    "context": "max_position_embeddings",
    "max_positions": "max_position_embeddings",
    "tied": "tie_word_embeddings",
}
_INT_FIELDS = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id",
}
_FLOAT_FIELDS = {"rope_theta", "rms_norm_eps", "initializer_range"}
_BOOL_FIELDS = {"tie_word_embeddings"}
_OVERRIDABLE = _INT_FIELDS | _FLOAT_FIELDS | _BOOL_FIELDS


# --------------------------------------------------------------------------------------------
# cache and preset resolution


def model_cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The model cache: `override`, else $CORESWEEP_CACHE, else the user cache dir."""
    if override:
        return Path(override).expanduser().resolve()
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "coresweep" / "models").resolve()


def _coerce(key: str, value: Any) -> Any:
    if key in _BOOL_FIELDS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise ModelError(f"override {key}={value!r}: expected true/false")
    try:
        if key in _INT_FIELDS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        kind = "an integer" if key in _INT_FIELDS else "a number"
        raise ModelError(f"override {key}={value!r}: expected {kind}") from None


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` strings (CLI --set) into an overrides dict (values still strings)."""
    out: dict[str, Any] = {}
    for item in items or ():
        if "=" not in item:
            raise ModelError(f"--set {item!r}: expected key=value, e.g. layers=4")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def preset_config(preset: str, overrides: dict | None = None) -> dict:
    """The full Qwen2 config of `preset` with `overrides` applied and checked."""
    if preset not in PRESETS:
        raise ModelError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    cfg = dict(PRESETS[preset])
    for raw_key, value in (overrides or {}).items():
        key = ALIASES.get(raw_key, raw_key)
        if key not in _OVERRIDABLE:
            valid = sorted(_OVERRIDABLE | set(ALIASES))
            raise ModelError(f"unknown override {raw_key!r}; valid keys: {', '.join(valid)}")
        cfg[key] = _coerce(key, value)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "max_position_embeddings"):
        if cfg[key] <= 0:
            raise ModelError(f"{key}={cfg[key]} must be positive")
    h, nh, kvh = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if h % nh:
        raise ModelError(f"hidden_size={h} must be divisible by num_attention_heads={nh}")
    if nh % kvh:
        raise ModelError(f"num_attention_heads={nh} must be divisible by num_key_value_heads={kvh}")
    if (h // nh) % 2:
        raise ModelError(f"head_dim={h // nh} must be even (rotary embedding)")
    for key in ("hidden_size", "intermediate_size"):
        if cfg[key] % 32:
            raise ModelError(f"{key}={cfg[key]} must be a multiple of 32 (4-bit block size)")
    if cfg["vocab_size"] < 512:
        raise ModelError(f"vocab_size={cfg['vocab_size']} must be at least 512")
    cfg.setdefault("head_dim", h // nh)
    cfg["head_dim"] = h // nh
    return cfg


def special_token_ids(vocab_size: int) -> dict[str, int]:
    """Real Qwen2 ids when the vocabulary holds them, else the top three ids (small presets)."""
    if vocab_size > max(QWEN2_SPECIAL_TOKENS.values()):
        return dict(QWEN2_SPECIAL_TOKENS)
    return {tok: vocab_size - 3 + i for i, tok in enumerate(QWEN2_SPECIAL_TOKENS)}


def _fix_special_ids(cfg: dict) -> dict:
    ids = special_token_ids(cfg["vocab_size"])
    cfg["bos_token_id"] = ids["<|endoftext|>"]
    cfg["eos_token_id"] = ids["<|endoftext|>"]
    return cfg


def build_key(preset: str, precision: str, cfg: dict, *, accuracy_level: int,
              prune_lm_head: bool, seed: int = SEED) -> dict:
    """Everything that determines a model's content (the manifest 'key' section)."""
    v = collect_versions(BUILD_PACKAGES)
    return {
        "format_version": FORMAT_VERSION,
        "preset": preset,
        "precision": precision,
        "config": cfg,
        "accuracy_level": accuracy_level if precision in ("int4", "int8") else None,
        "block_size": 32 if precision in ("int4", "int8") else None,
        "prune_lm_head": prune_lm_head,
        "seed": seed,
        "corpus_sha256": _corpus_sha(),
        "builder": v["onnxruntime-genai"],
        "transformers": v["transformers"],
        "tokenizers": v["tokenizers"],
    }


def _key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


def _model_dirname(preset: str, precision: str, key: dict) -> str:
    extra = ""
    if precision in ("int4", "int8") and key["accuracy_level"] != 4:
        extra += f"-acc{key['accuracy_level']}"
    if key["prune_lm_head"]:
        extra += "-prune"
    return f"{preset}-{precision}{extra}-{_key_hash(key)}"


# --------------------------------------------------------------------------------------------
# offline tokenizer


def _data_dir() -> Path:
    """coresweep/data (package data): the tokenizer's training text."""
    return Path(__file__).resolve().parent.parent / "data"


def _corpus_paths() -> list[Path]:
    return sorted(p for p in _data_dir().glob("*.txt"))


def _corpus_sha() -> str:
    h = hashlib.sha256()
    for p in _corpus_paths():
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build_tokenizer(vocab_size: int, out_dir: str | os.PathLike) -> dict:
    """Train a byte-level BPE tokenizer on the shipped corpus and pad it to `vocab_size`.

    Ids: trained BPE tokens first, then filler tokens ``<|fill_N|>`` (plain vocabulary entries that
    decode to themselves), with the Qwen2 special tokens at their real ids; every id in
    [0, vocab_size) decodes. Writes tokenizer.json + tokenizer_config.json (with a ChatML chat
    template) + special_tokens_map.json loadable by transformers.AutoTokenizer.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = special_token_ids(vocab_size)
    # leave room below the first special id (small presets put the specials last)
    data = _train_bpe(min(4096, min(specials.values()) - 64))
    vocab: dict[str, int] = data["model"]["vocab"]
    trained = len(vocab)
    fill = _pad_vocab(vocab, vocab_size, specials)
    data["added_tokens"] = [
        {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}
        for t, i in sorted(specials.items(), key=lambda kv: kv[1])
    ]
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False))
    (out / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(specials), indent=2))
    (out / "special_tokens_map.json").write_text(
        json.dumps({"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}, indent=2))
    return {"trained_tokens": trained, "filler_tokens": fill, "special_tokens": specials,
            "vocab_size": vocab_size}


def _train_bpe(bpe_size: int) -> dict:
    """A byte-level BPE of at most `bpe_size` tokens trained on the corpus, as tokenizer.json data."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train([str(p) for p in _corpus_paths()], trainer)
    return json.loads(tok.to_str())


def _pad_vocab(vocab: dict[str, int], vocab_size: int, specials: dict[str, int]) -> int:
    """Give every id from len(vocab) up to vocab_size a token: the special token at its real id
    (also in the model vocab: no holes in the id space), ``<|fill_N|>`` elsewhere. Returns the
    number of fillers."""
    by_id = {i: t for t, i in specials.items()}
    fill = 0
    for next_id in range(len(vocab), vocab_size):
        if next_id in by_id:
            vocab[by_id[next_id]] = next_id
        else:
            vocab[f"<|fill_{fill}|>"] = next_id
            fill += 1
    return fill


def _tokenizer_config(specials: dict[str, int]) -> dict:
    """tokenizer_config.json as Qwen2's: no BOS, <|endoftext|> ends and pads, ChatML template."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 131072,
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_prefix_space": False,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for t, i in specials.items()
        },
    }


# --------------------------------------------------------------------------------------------
# random checkpoint


def _tensor_specs(cfg: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, init) of every Qwen2ForCausalLM weight, grouped by shard order."""
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    hd = cfg["head_dim"]
    q = cfg["num_attention_heads"] * hd
    kv = cfg["num_key_value_heads"] * hd
    specs = [("model.embed_tokens.weight", (v, h), "normal")]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        specs += [
            (p + "input_layernorm.weight", (h,), "ones"),
            (p + "self_attn.q_proj.weight", (q, h), "normal"),
            (p + "self_attn.q_proj.bias", (q,), "normal"),
            (p + "self_attn.k_proj.weight", (kv, h), "normal"),
            (p + "self_attn.k_proj.bias", (kv,), "normal"),
            (p + "self_attn.v_proj.weight", (kv, h), "normal"),
            (p + "self_attn.v_proj.bias", (kv,), "normal"),
            (p + "self_attn.o_proj.weight", (h, q), "normal"),
            (p + "post_attention_layernorm.weight", (h,), "ones"),
            (p + "mlp.gate_proj.weight", (inter, h), "normal"),
            (p + "mlp.up_proj.weight", (inter, h), "normal"),
            (p + "mlp.down_proj.weight", (h, inter), "normal"),
        ]
    specs.append(("model.norm.weight", (h,), "ones"))
    if not cfg["tie_word_embeddings"]:
        specs.append(("lm_head.weight", (v, h), "normal"))
    return specs


def parameter_count(cfg: dict) -> int:
    n = 0
    for _, shape, _ in _tensor_specs(cfg):
        size = 1
        for d in shape:
            size *= d
        n += size
    return n


def write_checkpoint(cfg: dict, out_dir: str | os.PathLike, *, seed: int = SEED,
                     shard_bytes: int = 1 << 30) -> Path:
    """Write a random-weight Qwen2 checkpoint (config.json + sharded fp32 safetensors).

    Each tensor comes from its own generator seeded from (seed, name), so the weights do not depend
    on shard size or order, and at most one shard (~1 GB) is in memory at a time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_hf_config(cfg, out)
    std = float(cfg.get("initializer_range", 0.02))
    shards = _plan_shards(_tensor_specs(cfg), shard_bytes)
    weight_map: dict[str, str] = {}
    for i, specs in enumerate(shards):
        # the Hugging Face convention model-0000i-of-0000n.safetensors
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        weight_map.update(_write_shard(out / fname, specs, seed, std))
    total = parameter_count(cfg) * 4
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return out


def _write_hf_config(cfg: dict, out: Path) -> None:
    """config.json through transformers' Qwen2Config, marked float32."""
    from transformers import Qwen2Config

    hf_fields = {k: v for k, v in cfg.items() if k not in ("architectures",)}
    config = Qwen2Config(**hf_fields)
    config.architectures = ["Qwen2ForCausalLM"]
    config.save_pretrained(out)
    # Make sure the numbers that matter made it into config.json (transformers renames fields).
    saved = json.loads((out / "config.json").read_text())
    saved["torch_dtype"] = "float32"
    saved["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(saved, indent=2))


def _plan_shards(specs: list[tuple[str, tuple[int, ...], str]],
                 shard_bytes: int) -> list[list[tuple[str, tuple[int, ...], str]]]:
    """The tensors of each shard, in order: a new shard starts when the next fp32 tensor would
    take the current one past `shard_bytes` (a larger tensor gets a shard of its own)."""
    shards: list[list[tuple[str, tuple[int, ...], str]]] = [[]]
    size = 0
    for spec in specs:
        nbytes = math.prod(spec[1]) * 4
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    return shards


def _write_shard(path: Path, specs: list[tuple[str, tuple[int, ...], str]], seed: int,
                 std: float) -> dict[str, str]:
    """Generate one shard's tensors, save them, and return tensor name → file name (the tensors
    are freed on return: one shard in memory at a time)."""
    import torch
    from safetensors.torch import save_file

    tensors = {}
    for name, shape, init in specs:
        if init == "ones":
            tensors[name] = torch.ones(shape, dtype=torch.float32)
        else:
            g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            tensors[name] = torch.randn(shape, generator=g, dtype=torch.float32).mul_(std)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return {name: path.name for name in tensors}


def write_preset_checkpoint(preset: str, out_dir: str | os.PathLike, *,
                            overrides: dict | None = None, seed: int = SEED) -> Path:
    """Checkpoint + tokenizer of a preset in `out_dir` (a Hugging Face folder)."""
    cfg = _fix_special_ids(preset_config(preset, overrides))
    write_checkpoint(cfg, out_dir, seed=seed)
    build_tokenizer(cfg["vocab_size"], out_dir)
    return Path(out_dir)


# --------------------------------------------------------------------------------------------
# build


def _read_manifest(model_dir: Path) -> dict | None:
    try:
        return json.loads((model_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _run_builder(hf_dir: Path, out_dir: Path, cache: Path, precision: str, extra: list[str],
                 log_path: Path) -> None:
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir),
           "-o", str(out_dir), "-p", precision, "-e", "cpu", "-c", str(cache)]
    if extra:
        cmd += ["--extra_options", *extra]
    run_logged(cmd, log_path, "the onnxruntime-genai model builder")


def build_model(preset: str, precision: str = "int4", *, overrides: dict | None = None,
                accuracy_level: int = 4, cache_dir=None, progress: bool = True,
                force: bool = False, prune_lm_head: bool = False) -> Path:
    """Build a synthetic preset into the cache (atomically) and return its model dir.

    Skips all work when a model dir with the same manifest key already exists (unless `force`).
    """
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r} for an ONNX model; valid precisions: "
                         f"{', '.join(PRECISIONS)} (the GGUF of runtime llamacpp also takes "
                         "q4_k_m)")
    if accuracy_level not in (0, 1, 2, 3, 4):
        raise ModelError(f"accuracy_level={accuracy_level!r}; valid levels: 0, 1, 2, 3, 4")
    cfg = _fix_special_ids(preset_config(preset, overrides))
    key = build_key(preset, precision, cfg, accuracy_level=accuracy_level,
                    prune_lm_head=prune_lm_head)
    cache = model_cache_dir(cache_dir)
    final = cache / _model_dirname(preset, precision, key)
    return _cached(final, key, force, lambda: _build_locked(
        preset, precision, cfg, key, cache, final, overrides, accuracy_level, prune_lm_head,
        progress))


def _cached(final: Path, key: dict, force: bool, build: Any) -> Path:
    """``final`` when its manifest has ``key`` (unless ``force``), else ``build()`` under the
    model's lock file (one builder per model at a time: parallel test sessions share the
    cache)."""
    import fcntl

    def built() -> bool:
        m = _read_manifest(final)
        return not force and m is not None and m.get("key") == key

    if built():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return final if built() else build()


def _build_locked(preset, precision, cfg, key, cache, final, overrides, accuracy_level,
                  prune_lm_head, progress) -> Path:
    """Build into a hidden temp dir of the cache, then swap it in as `final` (the caller holds
    the model's lock). An interrupted build leaves only the temp dir, removed by the next one."""
    from tqdm.auto import tqdm

    steps = ["checkpoint", "tokenizer", f"onnx {precision} (builder)", "manifest"]
    t0 = time.perf_counter()
    # leftovers of an interrupted build of this model (we hold its lock, so none is in progress)
    for stale in cache.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=cache))
    bar = tqdm(total=len(steps), desc=f"build {final.name}", disable=not progress, unit="step")
    try:
        hf_dir = tmp / "hf"
        out_dir = tmp / "model"
        bar.set_postfix_str(steps[0])
        write_checkpoint(cfg, hf_dir)
        bar.update()
        bar.set_postfix_str(steps[1])
        tok_info = build_tokenizer(cfg["vocab_size"], hf_dir)
        bar.update()
        bar.set_postfix_str(steps[2])
        out_dir.mkdir()
        _run_builder(hf_dir, out_dir, tmp / "builder-cache", precision,
                     _builder_options(precision, accuracy_level, prune_lm_head), tmp / "build.log")
        shutil.move(str(tmp / "build.log"), out_dir / "build.log")
        bar.update()
        bar.set_postfix_str(steps[3])
        shutil.rmtree(hf_dir, ignore_errors=True)
        shutil.rmtree(tmp / "builder-cache", ignore_errors=True)
        manifest = _manifest(out_dir, key=key, name=final.name, preset=preset,
                             overrides=overrides, cfg=cfg, precision=precision,
                             prune_lm_head=prune_lm_head, tok_info=tok_info, t0=t0)
        _publish(out_dir, manifest, final, cache, bar)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_gguf(preset: str, precision: str = "int4", *, overrides: dict | None = None,
               cache_dir=None, progress: bool = True, force: bool = False) -> Path:
    """The preset's GGUF for runtime llamacpp, built into the cache (atomically) from the same
    random checkpoint the ONNX build reads: llama.cpp's convert_hf_to_gguf.py to F32, then
    llama_model_quantize to the precision's type (models.gguf.GGUF_TYPES: int4 → Q4_0, int8 →
    Q8_0, fp32 → F32, q4_k_m → Q4_K_M). Skipped when the same key is built."""
    from coresweep.models import gguf

    gtype = gguf.gguf_type(precision)
    cfg = _fix_special_ids(preset_config(preset, overrides))
    key = gguf_key(preset, precision, cfg)
    cache = model_cache_dir(cache_dir)
    final = cache / f"{preset}-gguf-{gtype.lower()}-{_key_hash(key)}"
    return _cached(final, key, force, lambda: _build_gguf_locked(
        preset, precision, cfg, key, cache, final, overrides, progress))


def gguf_key(preset: str, precision: str, cfg: dict, seed: int = SEED) -> dict:
    """Everything that determines a GGUF's content (its manifest's 'key'): the checkpoint's
    (preset config, seed, tokenizer corpus) and the llama.cpp tools' version."""
    from coresweep.models import gguf

    v = collect_versions(BUILD_PACKAGES)
    return {"format_version": FORMAT_VERSION, "format": "gguf", "gguf_format": GGUF_FORMAT,
            "preset": preset,
            "precision": precision, "gguf_type": gguf.gguf_type(precision), "config": cfg,
            "seed": seed, "corpus_sha256": _corpus_sha(), "llama_cpp_python": gguf.require_llamacpp(),
            "transformers": v["transformers"], "tokenizers": v["tokenizers"]}


def _build_gguf_locked(preset, precision, cfg, key, cache, final, overrides, progress) -> Path:
    """Checkpoint and tokenizer (as for ONNX), convert, quantise, manifest; then swap in."""
    from tqdm.auto import tqdm

    from coresweep.models import gguf

    t0 = time.perf_counter()
    for stale in cache.glob(f".{final.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=cache))
    bar = tqdm(total=4, desc=f"build {final.name}", disable=not progress, unit="step")
    try:
        hf_dir, out_dir, log = tmp / "hf", tmp / "model", tmp / "build.log"
        out_dir.mkdir()
        write_checkpoint(cfg, hf_dir)
        tok_info = build_tokenizer(cfg["vocab_size"], hf_dir)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy2(hf_dir / name, out_dir / name)
        bar.update(2)
        gtype = key["gguf_type"]
        f32 = (out_dir if gtype == "F32" else tmp) / ("model.gguf" if gtype == "F32"
                                                      else "f32.gguf")
        gguf.convert(hf_dir, f32, log)
        shutil.rmtree(hf_dir, ignore_errors=True)
        bar.update()
        if gtype != "F32":
            gguf.quantize(f32, out_dir / gguf.MODEL_FILE, gtype, log)
            f32.unlink()
        shutil.move(str(log), out_dir / "build.log")
        manifest = _gguf_manifest(out_dir, key=key, name=final.name, preset=preset,
                                  overrides=overrides, cfg=cfg, tok_info=tok_info, t0=t0)
        _publish(out_dir, manifest, final, cache, bar)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _gguf_manifest(out_dir: Path, *, key: dict, name: str, preset: str, overrides: dict | None,
                   cfg: dict, tok_info: dict, t0: float) -> dict:
    """manifest.json of a fresh GGUF: the ONNX manifest's fields, read from the GGUF's tensors."""
    from coresweep.models import gguf

    facts = gguf.read_facts(out_dir / gguf.MODEL_FILE)
    files = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}
    return {
        "key": key, "name": name, "preset": preset, "overrides": dict(overrides or {}),
        "config": cfg, "precision": key["precision"], "format": "gguf",
        "gguf_type": key["gguf_type"], "seed": SEED,
        "versions": {**collect_versions(BUILD_PACKAGES), gguf.DIST: key["llama_cpp_python"]},
        "parameter_count": parameter_count(cfg),
        "bytes_per_token": facts["bytes_per_token"], "weight_bytes": facts["weight_bytes"],
        "kv_bytes_per_position": facts["kv_bytes_per_position"],
        "bytes_per_token_note": (
            "what a decode step reads: every tensor of the GGUF but the token embedding, of "
            "which one row (all of it when the output projection is tied to it); the KV cache "
            "(f16) adds kv_bytes_per_position for each position already in the context"),
        "tensor_types": facts["quant_ops"], "tokenizer": tok_info, "files": files,
        "gguf_info": facts,  # what inspect_model reads back without parsing the file again
        "gguf_bytes": files.get(gguf.MODEL_FILE, 0),
        "build_seconds": round(time.perf_counter() - t0, 2),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "builder_command": (out_dir / "build.log").read_text().splitlines()[0],
    }


def _builder_options(precision: str, accuracy_level: int, prune_lm_head: bool) -> list[str]:
    """The model builder's --extra_options (accuracy level only applies to quantised weights)."""
    extra = []
    if precision in ("int4", "int8"):
        extra.append(f"accuracy_level={accuracy_level}")
    if prune_lm_head:
        extra.append("prune_lm_head=true")
    return extra


def _manifest(out_dir: Path, *, key: dict, name: str, preset: str, overrides: dict | None,
              cfg: dict, precision: str, prune_lm_head: bool, tok_info: dict,
              t0: float) -> dict:
    """manifest.json of a freshly built model: its key, what went in, the sizes the graph implies
    and the files written (build_seconds counts from `t0`)."""
    info = inspect_model(out_dir)
    files = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir()) if p.is_file()}
    return {
        "key": key,
        "name": name,
        "preset": preset,
        "overrides": dict(overrides or {}),
        "config": cfg,
        "precision": precision,
        "accuracy_level": key["accuracy_level"],
        "block_size": key["block_size"],
        "prune_lm_head": prune_lm_head,
        "seed": SEED,
        "versions": collect_versions(BUILD_PACKAGES),
        "parameter_count": parameter_count(cfg),
        "bytes_per_token": info.bytes_per_token,
        "weight_bytes": info.weight_bytes,
        "kv_bytes_per_position": info.kv_bytes_per_position,
        "bytes_per_token_note": (
            "weights a decode step reads: every MatMul/MatMulNBits weight (with scales), the "
            "lm_head and one embedding row; the KV cache adds kv_bytes_per_position for "
            "each position already in the context"),
        "quant_ops": info.quant_ops,
        "tokenizer": tok_info,
        "files": files,
        "onnx_bytes": sum(v for k, v in files.items() if ".onnx" in k),
        "build_seconds": round(time.perf_counter() - t0, 2),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "builder_command": (out_dir / "build.log").read_text().splitlines()[0],
    }


def _publish(out_dir: Path, manifest: dict, final: Path, cache: Path, bar) -> None:
    """Write the finished build's manifest and move it into the cache as ``final``."""
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    bar.update()
    _swap_in(out_dir, final, cache)


def _swap_in(out_dir: Path, final: Path, cache: Path) -> None:
    """Move the built model to `final`, replacing an older build there with two renames (the
    old one is moved aside first, then deleted), so readers never see a half-written dir."""
    old = None
    if final.exists():
        old = cache / f".{final.name}.{os.getpid()}.old"
        os.rename(final, old)
    os.rename(out_dir, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def list_models(cache_dir=None) -> list[dict]:
    """Manifests of the built models in the cache (name, dir, preset, precision, sizes)."""
    cache = model_cache_dir(cache_dir)
    out = []
    if not cache.is_dir():
        return out
    for d in sorted(cache.iterdir()):
        if d.name.startswith(".") or not d.is_dir():
            continue
        m = _read_manifest(d)
        if m is None:
            continue
        out.append({"name": d.name, "dir": str(d), "preset": m.get("preset"),
                    "precision": m.get("precision"), "parameter_count": m.get("parameter_count"),
                    "format": m.get("format", "onnx"), "onnx_bytes": m.get("onnx_bytes"),
                    "model_bytes": m.get("onnx_bytes") or m.get("gguf_bytes"),
                    "bytes_per_token": m.get("bytes_per_token"),
                    "built_at": m.get("built_at")})
    return out


FORMATS = ("onnx", "gguf")  # what a runtime reads (engines.model_format)


def resolve_model(spec: str | os.PathLike, precision: str = "int4", *, build: bool = True,
                  cache_dir=None, overrides: dict | None = None, progress: bool = True,
                  fmt: str = "onnx") -> Path:
    """A preset name (built on demand when `build`, as ONNX or, ``fmt="gguf"``, as the GGUF of
    runtime llamacpp) or a path to a model dir / .onnx or .gguf file.

    Returns a directory, or the file path when `spec` names a file.
    """
    text = str(spec)
    if fmt not in FORMATS:
        raise ModelError(f"unknown model format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if text in PRESETS:
        if build:
            make = build_gguf if fmt == "gguf" else build_model
            return make(text, precision, overrides=overrides, cache_dir=cache_dir,
                        progress=progress)
        return _built(text, precision, overrides, cache_dir, fmt)
    path = Path(text).expanduser()
    if path.exists():
        _check_format(path, fmt)
        return path.resolve()
    raise ModelError(f"model {text!r} is neither a preset ({', '.join(PRESETS)}) nor an existing "
                     "directory or .onnx / .gguf file")


def _built(preset: str, precision: str, overrides: dict | None, cache_dir, fmt: str) -> Path:
    """The cached build of a preset, without building (ModelError saying how to build it)."""
    cfg = _fix_special_ids(preset_config(preset, overrides))
    if fmt == "gguf":
        key = gguf_key(preset, precision, cfg)
        from coresweep.models.gguf import gguf_type

        name = f"{preset}-gguf-{gguf_type(precision).lower()}-{_key_hash(key)}"
    else:
        key = build_key(preset, precision, cfg, accuracy_level=4, prune_lm_head=False)
        name = _model_dirname(preset, precision, key)
    d = model_cache_dir(cache_dir) / name
    if _read_manifest(d) is None:
        flag = " --format gguf" if fmt == "gguf" else ""
        raise ModelError(f"preset {preset!r} ({precision}{', GGUF' if flag else ''}) is not "
                         f"built in {d.parent}; run `coresweep model build {preset} --precision "
                         f"{precision}{flag}`")
    return d


def _check_format(path: Path, fmt: str) -> None:
    """A model path of the other format than its runtime reads: ModelError saying which."""
    from coresweep.models.gguf import find_gguf

    is_gguf = find_gguf(path) is not None and not any(path.glob("*.onnx") if path.is_dir()
                                                       else [])
    if is_gguf and fmt == "onnx":
        raise ModelError(f"{str(path)!r} is a GGUF model: only runtime llamacpp runs it")
    if not is_gguf and fmt == "gguf":
        raise ModelError(f"{str(path)!r} holds no .gguf file: runtime llamacpp runs GGUF models "
                         "(a preset is converted for it; a downloaded .gguf works too)")


def bytes_per_token(spec: str | os.PathLike | None, precision: str = "int4",
                    fmt: str = "onnx") -> float | None:
    """Bytes read per decoded token (the roofline's numerator) of a preset or model path in the
    given format, without building anything; None when the model is not there or does not
    say."""
    from coresweep.errors import CoresweepError

    if not spec:
        return None
    try:
        info = inspect_model(resolve_model(spec, precision, build=False, fmt=fmt))
    except (CoresweepError, OSError):
        return None
    return float(info.bytes_per_token) if info.bytes_per_token else None

"""Reading any decoder ONNX model's IO contract (genai builder layout or optimum/onnx-community
exports) without creating a session: KV layout, context, bytes read per decoded token, tokenizer."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coresweep.errors import ModelError

_PAST_RE = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
_PRESENT_RE = re.compile(r"^present\.(\d+)\.(key|value)$")
_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 10: 2, 11: 8, 16: 2, 21: 1, 22: 1}
_DTYPE_NAMES = {1: "float32", 10: "float16", 16: "bfloat16", 7: "int64", 6: "int32"}


@dataclass
class ModelInfo:
    dir: str
    onnx_path: str
    inputs: dict[str, dict] = field(default_factory=dict)     # name -> {"dtype", "shape"}
    outputs: dict[str, dict] = field(default_factory=dict)
    has_position_ids: bool = False
    num_layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    kv_dtype: str = "float32"
    vocab_size: int | None = None
    max_context: int | None = None
    shares_kv_buffer: bool = False            # GroupQueryAttention: one past/present buffer
    logits_last_only: bool = False            # lm_head pruned: logits [batch, 1, vocab]
    quant_ops: dict[str, int] = field(default_factory=dict)
    bytes_per_token: int = 0
    weight_bytes: int = 0
    kv_bytes_per_position: int = 0
    tokenizer_dir: str | None = None
    is_genai: bool = False
    manifest: dict | None = None
    past_names: list[tuple[str, str]] = field(default_factory=list)     # per layer (key, value)
    present_names: list[tuple[str, str]] = field(default_factory=list)
    logits_dtype: str = "float32"
    eos_token_ids: list[int] = field(default_factory=list)
    format: str = "onnx"                      # "gguf": onnx_path is the .gguf file

    def to_dict(self) -> dict:
        d = asdict(self)
        d["past_names"] = [list(x) for x in self.past_names]
        d["present_names"] = [list(x) for x in self.present_names]
        return d


def _onnx_candidates(d: Path) -> list[Path]:
    found = sorted(d.glob("*.onnx")) + sorted((d / "onnx").glob("*.onnx"))
    return [p for p in found if p.is_file()]


def find_onnx(path: str | os.PathLike) -> Path:
    """The decoder .onnx file for a dir or file path; ModelError when none or ambiguous."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"model path {str(p)!r} does not exist")
    if p.is_file():
        if p.suffix != ".onnx":
            raise ModelError(f"{str(p)!r} is not an .onnx file; give a model directory or a .onnx file")
        return p.resolve()
    genai = p / "genai_config.json"
    if genai.is_file():
        try:
            fname = json.loads(genai.read_text())["model"]["decoder"]["filename"]
        except (ValueError, KeyError, TypeError):
            fname = None
        if fname and (p / fname).is_file():
            return (p / fname).resolve()
    cands = _onnx_candidates(p)
    if not cands:
        raise ModelError(f"no ONNX decoder in {str(p)!r}: expected model.onnx, onnx/model*.onnx or a "
                         "genai_config.json naming the decoder file")
    if len(cands) == 1:
        return cands[0].resolve()
    listing = ", ".join(str(c.relative_to(p)) for c in cands)
    raise ModelError(f"{str(p)!r} holds several ONNX files ({listing}); pick one by giving its "
                     f"file path, e.g. {str(cands[0])!r}")


def _is_gguf(p: Path) -> bool:
    """A .gguf file, or a folder with a .gguf and no ONNX model."""
    if p.is_file():
        return p.suffix == ".gguf"
    return p.is_dir() and any(p.glob("*.gguf")) and not _onnx_candidates(p)


def _dims(value_info) -> list:
    t = value_info.type.tensor_type
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def _nbytes(init) -> int:
    n = 1
    for d in init.dims:
        n *= d
    if init.data_type in (22, 21):  # INT4/UINT4 packed
        return (n + 1) // 2
    return n * _DTYPE_BYTES.get(init.data_type, 4)


def _load_json(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def inspect_model(path: str | os.PathLike) -> ModelInfo:
    """Read a decoder model's IO contract, KV layout, quantisation ops and bytes per token (a
    GGUF's from its header and tensor table: models.gguf.read_info)."""
    from coresweep.models import gguf

    if _is_gguf(Path(path).expanduser()):
        return ModelInfo(**gguf.read_info(path))
    onnx_path = find_onnx(path)
    mdir = onnx_path.parent
    top = Path(path).expanduser().resolve()  # the folder given (config files may sit there)
    if top.is_file():
        top = mdir.parent if mdir.name == "onnx" else mdir
    g = _load_graph(onnx_path)
    inputs, outputs = _graph_io(g)
    layers, past, present = _kv_layers(onnx_path, inputs, outputs)
    cfg = _first_json("config.json", mdir, top) or {}
    gcfg = _first_json("genai_config.json", mdir, top)
    gmodel = (gcfg or {}).get("model", {})
    kv_name = past[0]["key"]
    kv_heads, head_dim = _kv_heads_and_dim(onnx_path, kv_name, inputs[kv_name]["shape"], cfg,
                                           gmodel.get("decoder", {}))
    kv_dtype = inputs[kv_name]["dtype"]
    logits_shape = outputs["logits"]["shape"]
    vocab = logits_shape[-1] if logits_shape and isinstance(logits_shape[-1], int) else None
    if vocab is None:
        vocab = cfg.get("vocab_size") or gmodel.get("vocab_size")
    quant_ops, gqa = _op_counts(g)
    weight_bytes, per_token = _weight_bytes(g)
    max_ctx = gmodel.get("context_length") or cfg.get("max_position_embeddings")
    kv_el = 2 if kv_dtype in ("float16", "bfloat16") else 4
    return ModelInfo(
        dir=str(mdir), onnx_path=str(onnx_path), inputs=inputs, outputs=outputs,
        has_position_ids="position_ids" in inputs, num_layers=len(layers), kv_heads=kv_heads,
        head_dim=head_dim, kv_dtype=kv_dtype, vocab_size=vocab,
        max_context=int(max_ctx) if max_ctx else None, shares_kv_buffer=gqa,
        logits_last_only=len(logits_shape) == 3 and logits_shape[1] == 1,
        quant_ops=quant_ops, bytes_per_token=per_token, weight_bytes=weight_bytes,
        kv_bytes_per_position=2 * len(layers) * kv_heads * head_dim * kv_el,
        tokenizer_dir=_tokenizer_dir(mdir, top), is_genai=gcfg is not None,
        manifest=_load_json(mdir / "manifest.json"),
        past_names=[(past[i]["key"], past[i]["value"]) for i in layers],
        present_names=[(present[i]["key"], present[i]["value"]) for i in layers],
        logits_dtype=outputs["logits"]["dtype"], eos_token_ids=_eos_ids(gmodel, cfg, mdir, top),
    )


def _first_json(name: str, mdir: Path, top: Path) -> dict | None:
    """``name`` from the model's folder, else from the folder given (exports keep configs there)."""
    return _load_json(mdir / name) or _load_json(top / name)


def _load_graph(onnx_path: Path):
    """The model's graph, without its external weight data (only names, shapes and dtypes)."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse error is a bad model file
        raise ModelError(f"cannot read ONNX model {str(onnx_path)!r}: {exc}") from exc
    return model.graph


def _io_spec(value_info) -> dict:
    elem = value_info.type.tensor_type.elem_type
    return {"dtype": _DTYPE_NAMES.get(elem, str(elem)), "shape": _dims(value_info)}


def _graph_io(g) -> tuple[dict[str, dict], dict[str, dict]]:
    """name → {"dtype", "shape"} of the graph inputs (initializers left out) and outputs."""
    init_names = {i.name for i in g.initializer}
    inputs = {i.name: _io_spec(i) for i in g.input if i.name not in init_names}
    outputs = {o.name: _io_spec(o) for o in g.output}
    return inputs, outputs


def _by_layer(names, pattern: re.Pattern) -> dict[int, dict[str, str]]:
    """layer → {"key": name, "value": name} for the ``names`` that match ``pattern``."""
    out: dict[int, dict[str, str]] = {}
    for name in names:
        m = pattern.match(name)
        if m:
            out.setdefault(int(m.group(1)), {})[m.group(2)] = name
    return out


def _kv_layers(onnx_path: Path, inputs: dict, outputs: dict) -> tuple[list[int], dict, dict]:
    """The layers and their past/present key/value names; ModelError unless the graph is a
    causal LM with a complete KV cache (layers 0..L-1, a key and a value each way)."""
    past = _by_layer(inputs, _PAST_RE)
    present = _by_layer(outputs, _PRESENT_RE)
    missing = [n for n in ("input_ids", "attention_mask") if n not in inputs]
    if missing or not past or "logits" not in outputs or set(past) != set(present):
        raise ModelError(
            f"{str(onnx_path)!r} is not a causal LM with a KV cache: expected inputs input_ids, "
            "attention_mask, past_key_values.N.key/value (optional position_ids) and outputs logits, "
            f"present.N.key/value; found inputs {sorted(inputs)} and outputs {sorted(outputs)}")
    layers = sorted(past)
    if layers != list(range(len(layers))) or any(len(past[i]) != 2 or len(present.get(i, {})) != 2
                                                 for i in layers):
        raise ModelError(f"{str(onnx_path)!r}: incomplete past/present key/value pairs per layer")
    return layers, past, present


def _kv_heads_and_dim(onnx_path: Path, kv_name: str, shape: list, cfg: dict,
                      gdec: dict) -> tuple[int, int]:
    """KV heads and head dim of [batch, kv_heads, past_len, head_dim]: from the graph, or where
    the export left them symbolic, from genai_config.json or config.json."""
    kv_shape = list(shape)
    if len(kv_shape) == 4:
        if not isinstance(kv_shape[1], int):
            kv_shape[1] = gdec.get("num_key_value_heads") or cfg.get("num_key_value_heads")
        if not isinstance(kv_shape[3], int):
            hd = gdec.get("head_size") or cfg.get("head_dim")
            if not hd and cfg.get("hidden_size") and cfg.get("num_attention_heads"):
                hd = cfg["hidden_size"] // cfg["num_attention_heads"]
            kv_shape[3] = hd
    if len(kv_shape) != 4 or not isinstance(kv_shape[1], int) or not isinstance(kv_shape[3], int):
        raise ModelError(f"{str(onnx_path)!r}: KV input {kv_name} has shape {kv_shape}; "
                         "expected [batch, kv_heads, past_len, head_dim] with known heads/head_dim "
                         "(from the graph, config.json or genai_config.json)")
    return kv_shape[1], kv_shape[3]


# Ops worth reporting: they show the quantisation scheme and the fused kernels a model runs.
_REPORTED_OPS = ("MatMulNBits", "GatherBlockQuantized", "DynamicQuantizeLinear", "MatMulInteger",
                 "QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "GroupQueryAttention",
                 "MultiHeadAttention", "SkipSimplifiedLayerNormalization",
                 "SimplifiedLayerNormalization", "RotaryEmbedding")


def _op_counts(g) -> tuple[dict[str, int], bool]:
    """Counts of the reported ops present, and whether attention is GroupQueryAttention (one
    shared past/present buffer)."""
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    quant_ops = {op: ops[op] for op in _REPORTED_OPS if op in ops}
    return quant_ops, "GroupQueryAttention" in ops


def _weight_bytes(g) -> tuple[int, int]:
    """(all initializer bytes, bytes a decode step reads): weights of MatMul-like ops in full,
    one row of gathered tables (embedding, GQA cos/sin caches) per step."""
    inits = {i.name: i for i in g.initializer}
    counted: set[str] = set()
    weight_bytes = 0
    per_token = 0
    for n in g.node:
        row_inputs: tuple[int, ...] = ()
        if n.op_type in ("Gather", "GatherBlockQuantized"):
            row_inputs = (0,)
        elif n.op_type == "GroupQueryAttention":
            row_inputs = tuple(range(len(n.input)))  # cos/sin caches: one row per step
        for idx, name in enumerate(n.input):
            if name not in inits or name in counted:
                continue
            counted.add(name)
            b = _nbytes(inits[name])
            weight_bytes += b
            if idx in row_inputs and inits[name].dims:
                rows = inits[name].dims[0] or 1
                if n.op_type == "GatherBlockQuantized" and idx == 0:
                    # scales/zero points of the gathered row come with it
                    for extra in n.input[1:]:
                        if extra in inits and extra not in counted and inits[extra].dims[0] == rows:
                            counted.add(extra)
                            eb = _nbytes(inits[extra])
                            weight_bytes += eb
                            per_token += eb // rows
                per_token += b // rows
            else:
                per_token += b
    for name, init in inits.items():  # initializers used by no node input listed above
        if name not in counted:
            weight_bytes += _nbytes(init)
    return weight_bytes, per_token


def _tokenizer_dir(*dirs: Path) -> str | None:
    for d in dirs:
        if (d / "tokenizer.json").is_file() or (d / "tokenizer_config.json").is_file():
            return str(d)
    return None


def _eos_ids(gmodel: dict, cfg: dict, mdir: Path, top: Path) -> list[int]:
    """End-of-sequence ids: genai_config.json's, else generation_config.json's, else config.json's."""
    eos = gmodel.get("eos_token_id")
    if eos is None:
        gen_cfg = _first_json("generation_config.json", mdir, top) or {}
        eos = gen_cfg.get("eos_token_id", cfg.get("eos_token_id"))
    return [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]

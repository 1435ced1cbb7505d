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
    """Read a decoder model's IO contract, KV layout, quantisation ops and bytes per token."""
    import onnx

    onnx_path = find_onnx(path)
    mdir = onnx_path.parent
    top = Path(path).expanduser().resolve()
    if top.is_file():
        top = mdir.parent if mdir.name == "onnx" else mdir
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse error is a bad model file
        raise ModelError(f"cannot read ONNX model {str(onnx_path)!r}: {exc}") from exc
    g = model.graph
    init_names = {i.name for i in g.initializer}
    inputs = {i.name: {"dtype": _DTYPE_NAMES.get(i.type.tensor_type.elem_type,
                                                  str(i.type.tensor_type.elem_type)),
                       "shape": _dims(i)} for i in g.input if i.name not in init_names}
    outputs = {o.name: {"dtype": _DTYPE_NAMES.get(o.type.tensor_type.elem_type,
                                                   str(o.type.tensor_type.elem_type)),
                        "shape": _dims(o)} for o in g.output}
    past: dict[int, dict[str, str]] = {}
    for name in inputs:
        m = _PAST_RE.match(name)
        if m:
            past.setdefault(int(m.group(1)), {})[m.group(2)] = name
    present: dict[int, dict[str, str]] = {}
    for name in outputs:
        m = _PRESENT_RE.match(name)
        if m:
            present.setdefault(int(m.group(1)), {})[m.group(2)] = name
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
    cfg = _load_json(mdir / "config.json") or _load_json(top / "config.json") or {}
    gcfg = _load_json(mdir / "genai_config.json") or _load_json(top / "genai_config.json")
    gdec = (gcfg or {}).get("model", {}).get("decoder", {})
    kv_shape = list(inputs[past[0]["key"]]["shape"])
    if len(kv_shape) == 4:
        if not isinstance(kv_shape[1], int):
            kv_shape[1] = gdec.get("num_key_value_heads") or cfg.get("num_key_value_heads")
        if not isinstance(kv_shape[3], int):
            hd = gdec.get("head_size") or cfg.get("head_dim")
            if not hd and cfg.get("hidden_size") and cfg.get("num_attention_heads"):
                hd = cfg["hidden_size"] // cfg["num_attention_heads"]
            kv_shape[3] = hd
    if len(kv_shape) != 4 or not isinstance(kv_shape[1], int) or not isinstance(kv_shape[3], int):
        raise ModelError(f"{str(onnx_path)!r}: KV input {past[0]['key']} has shape {kv_shape}; "
                         "expected [batch, kv_heads, past_len, head_dim] with known heads/head_dim "
                         "(from the graph, config.json or genai_config.json)")
    kv_dtype = inputs[past[0]["key"]]["dtype"]
    logits_shape = outputs["logits"]["shape"]
    vocab = logits_shape[-1] if logits_shape and isinstance(logits_shape[-1], int) else None

    quant_ops: dict[str, int] = {}
    ops: dict[str, int] = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    for op in ("MatMulNBits", "GatherBlockQuantized", "DynamicQuantizeLinear", "MatMulInteger",
               "QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "GroupQueryAttention",
               "MultiHeadAttention", "SkipSimplifiedLayerNormalization",
               "SimplifiedLayerNormalization", "RotaryEmbedding"):
        if op in ops:
            quant_ops[op] = ops[op]
    gqa = "GroupQueryAttention" in ops

    # bytes a decode step reads: weights of MatMul-like ops in full, one row of gathered tables
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

    max_ctx = None
    if gcfg:
        max_ctx = gcfg.get("model", {}).get("context_length")
    if not max_ctx:
        max_ctx = cfg.get("max_position_embeddings")
    if vocab is None:
        vocab = cfg.get("vocab_size") or (gcfg or {}).get("model", {}).get("vocab_size")
    tok_dir = None
    for d in (mdir, top):
        if (d / "tokenizer.json").is_file() or (d / "tokenizer_config.json").is_file():
            tok_dir = str(d)
            break
    kv_heads, head_dim = kv_shape[1], kv_shape[3]
    kv_el = 2 if kv_dtype in ("float16", "bfloat16") else 4
    manifest = _load_json(mdir / "manifest.json")
    eos = (gcfg or {}).get("model", {}).get("eos_token_id")
    if eos is None:
        gen_cfg = _load_json(mdir / "generation_config.json") or _load_json(
            top / "generation_config.json") or {}
        eos = gen_cfg.get("eos_token_id", cfg.get("eos_token_id"))
    eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
    return ModelInfo(
        dir=str(mdir), onnx_path=str(onnx_path), inputs=inputs, outputs=outputs,
        has_position_ids="position_ids" in inputs, num_layers=len(layers), kv_heads=kv_heads,
        head_dim=head_dim, kv_dtype=kv_dtype, vocab_size=vocab,
        max_context=int(max_ctx) if max_ctx else None, shares_kv_buffer=gqa,
        logits_last_only=len(logits_shape) == 3 and logits_shape[1] == 1,
        quant_ops=quant_ops, bytes_per_token=per_token, weight_bytes=weight_bytes,
        kv_bytes_per_position=2 * len(layers) * kv_heads * head_dim * kv_el,
        tokenizer_dir=tok_dir, is_genai=gcfg is not None, manifest=manifest,
        past_names=[(past[i]["key"], past[i]["value"]) for i in layers],
        present_names=[(present[i]["key"], present[i]["value"]) for i in layers],
        logits_dtype=outputs["logits"]["dtype"], eos_token_ids=eos_ids,
    )

"""`coresweep model build|list|info`: synthetic presets (ONNX, or GGUF for runtime llamacpp) and
real ONNX or GGUF models."""

from __future__ import annotations

import argparse
import json

from coresweep.cli import argtypes
from coresweep.errors import CoresweepError


def _override(text: str) -> str:
    """--set KEY=VALUE: the form checked as it is read (keys and values against the preset
    before the build)."""
    from coresweep.models import parse_overrides

    try:
        parse_overrides([text])
    except CoresweepError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. layers=4") from None
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="build synthetic models, list them, inspect any model")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    sub.required = True

    from coresweep.models import FORMATS, PRESETS
    from coresweep.parameters import PRECISIONS

    b = sub.add_parser("build", help="build a synthetic preset into the model cache")
    b.add_argument("preset", choices=list(PRESETS), metavar="PRESET",
                   help=f"one of: {', '.join(PRESETS)}")
    b.add_argument("--precision", default="int4", choices=list(PRECISIONS))
    b.add_argument("--format", default="onnx", choices=list(FORMATS),
                   help="onnx (runtimes ort, genai; default) or gguf (runtime llamacpp: the same "
                   "checkpoint through llama.cpp's converter and quantiser)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   type=_override, help="override a config field, e.g. --set layers=4 (repeatable)")
    b.add_argument("--cache", default=None, metavar="DIR", type=argtypes.folder_to_write,
                   help="model cache (default $CORESWEEP_CACHE or ~/.cache/coresweep/models)")
    b.add_argument("--accuracy-level", type=int, default=4, metavar="N", choices=range(5),
                   help="MatMulNBits accuracy_level for int4/int8: 0-4 (4 = int8 activations, "
                   "default)")
    b.add_argument("--prune-lm-head", action="store_true",
                   help="compute logits for the last position only (faster prefill)")
    b.add_argument("--force", action="store_true", help="rebuild even when the model exists")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    ls = sub.add_parser("list", help="list the models built in the cache")
    ls.add_argument("--cache", default=None, metavar="DIR", type=argtypes.folder_to_read)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    i = sub.add_parser("info", help="IO contract, KV layout, quantisation and bytes per token")
    i.add_argument("model", metavar="DIR|PRESET", help="a model dir, an .onnx file or a preset name")
    i.add_argument("--precision", default=None, choices=list(PRECISIONS),
                   help="precision when MODEL is a preset (default int4)")
    i.add_argument("--format", default="onnx", choices=list(FORMATS),
                   help="the preset's format (default onnx)")
    i.add_argument("--cache", default=None, metavar="DIR", type=argtypes.folder_to_read,
                   help="model cache, when MODEL is a preset")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from coresweep.models import build_gguf, build_model, parse_overrides, preset_config

    overrides = parse_overrides(args.overrides)
    try:  # every override checked against the preset before the build starts
        preset_config(args.preset, overrides)
    except CoresweepError as exc:
        raise CoresweepError(f"--set: {exc}") from None
    if args.format == "gguf":
        if args.prune_lm_head or args.accuracy_level != 4:
            raise CoresweepError("--prune-lm-head and --accuracy-level are the ONNX builder's: "
                                 "drop them with --format gguf")
        d = build_gguf(args.preset, args.precision, overrides=overrides, cache_dir=args.cache,
                       progress=not args.quiet, force=args.force)
    else:
        d = build_model(args.preset, args.precision, overrides=overrides,
                        accuracy_level=args.accuracy_level, cache_dir=args.cache,
                        progress=not args.quiet, force=args.force,
                        prune_lm_head=args.prune_lm_head)
    m = json.loads((d / "manifest.json").read_text())
    size = m.get("onnx_bytes", m.get("gguf_bytes", 0))
    print(d)
    print(f"  parameters {m['parameter_count']:,}  {args.format} {size / 1e6:.1f} MB  "
          f"bytes/token {m['bytes_per_token'] / 1e6:.1f} MB  built in {m['build_seconds']} s")
    return 0


def _list(args: argparse.Namespace) -> int:
    from coresweep.models import list_models, model_cache_dir

    rows = list_models(args.cache)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"cache: {model_cache_dir(args.cache)}")
    if not rows:
        print("  (no models built; try `coresweep model build tiny`)")
    for r in rows:
        print(f"  {r['name']:<52} {r['precision']:<6} {r['format']:<4} "
              f"{(r['model_bytes'] or 0) / 1e6:9.1f} MB  "
              f"{r['built_at']}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from coresweep.models import PRESETS, inspect_model, resolve_model

    spec = args.model
    if spec not in PRESETS and (args.precision or args.cache):
        raise CoresweepError(f"--precision and --cache apply to a preset ({', '.join(PRESETS)}); "
                             f"{spec!r} is a path: drop them")
    path = resolve_model(spec, args.precision or "int4", build=False, cache_dir=args.cache,
                         fmt=args.format) if spec in PRESETS else resolve_model(spec, build=False,
                                                                                fmt=_format(spec))
    info = inspect_model(path)
    if args.json:
        d = info.to_dict()
        print(json.dumps(d, indent=2, default=str))
        return 0
    if info.format == "gguf":
        return _gguf_info(info)
    print(f"model      {info.onnx_path}")
    print(f"format     {'onnxruntime-genai (genai_config.json)' if info.is_genai else 'plain ONNX'}"
          f"{', position_ids' if info.has_position_ids else ''}")
    print(f"inputs     {', '.join(n for n in info.inputs if not n.startswith('past_key_values'))}"
          f", past_key_values.[0-{info.num_layers - 1}].key/value")
    print(f"outputs    logits {info.outputs['logits']['shape']}, present.[0-{info.num_layers - 1}]"
          ".key/value")
    print(f"KV         {info.num_layers} layers x {info.kv_heads} heads x {info.head_dim} "
          f"({info.kv_dtype}); "
          f"{'one shared past/present buffer (GroupQueryAttention)' if info.shares_kv_buffer else 'concatenated per step'}")
    print(f"vocab      {info.vocab_size}   context {info.max_context}")
    print(f"ops        {', '.join(f'{k} x{v}' for k, v in info.quant_ops.items()) or '-'}")
    print(f"weights    {info.weight_bytes / 1e6:.1f} MB; read per decoded token "
          f"{info.bytes_per_token / 1e6:.1f} MB + KV {info.kv_bytes_per_position} B per position")
    print(f"tokenizer  {info.tokenizer_dir or '-'}")
    if info.manifest:
        m = info.manifest
        print(f"preset     {m.get('preset')} {m.get('precision')} (built {m.get('built_at')}, "
              f"{m.get('parameter_count'):,} parameters)")
    return 0


def _format(path: str) -> str:
    from coresweep.models.gguf import find_gguf

    try:
        return "gguf" if find_gguf(path) is not None else "onnx"
    except CoresweepError:
        return "gguf"  # several .gguf files: resolve_model says so


def _gguf_info(info) -> int:
    """A GGUF's facts (runtime llamacpp)."""
    print(f"model      {info.onnx_path}")
    print("format     GGUF (runtime llamacpp)")
    print(f"KV         {info.num_layers} layers x {info.kv_heads} heads x {info.head_dim} "
          f"({info.kv_dtype})")
    print(f"vocab      {info.vocab_size}   context {info.max_context}")
    print(f"tensors    {', '.join(f'{k} x{v}' for k, v in info.quant_ops.items()) or '-'}")
    print(f"weights    {info.weight_bytes / 1e6:.1f} MB; read per decoded token "
          f"{info.bytes_per_token / 1e6:.1f} MB + KV {info.kv_bytes_per_position} B per position")
    if info.manifest:
        m = info.manifest
        print(f"preset     {m.get('preset')} {m.get('precision')} = {m.get('gguf_type')} (built "
              f"{m.get('built_at')}, {m.get('parameter_count'):,} parameters)")
    return 0

"""The prompt of a trial: text through the model's own tokenizer, or a deterministic sequence of
valid, non-special token ids of a given length (synthetic presets)."""

from __future__ import annotations

from coresweep.errors import ModelError

__all__ = ["make_prompt"]


def make_prompt(model_dir, prompt_tokens: int, text: str | None = None, seed: int = 0) -> list[int]:
    """Prompt token ids: `text` through the model's tokenizer (chat template when it has one),
    else a deterministic sequence of `prompt_tokens` ids (valid ids, no special tokens)."""
    from coresweep.models import inspect_model

    info = inspect_model(model_dir)
    if text is not None:
        if not info.tokenizer_dir:
            raise ModelError(f"{info.dir!r} has no tokenizer; give the prompt as a token count")
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(info.tokenizer_dir, local_files_only=True)
        if getattr(tok, "chat_template", None):
            out = tok.apply_chat_template([{"role": "user", "content": text}],
                                          add_generation_prompt=True, tokenize=True)
            if isinstance(out, dict) or hasattr(out, "keys"):
                out = out["input_ids"]
            ids = [int(t) for t in out]
        else:
            ids = [int(t) for t in tok.encode(text)]
        if info.max_context and len(ids) > info.max_context:
            raise ModelError(f"text prompt of {len(ids)} tokens exceeds the model's context of "
                             f"{info.max_context} tokens")
        return ids
    if not isinstance(prompt_tokens, int) or prompt_tokens < 1:
        raise ModelError(f"prompt_tokens={prompt_tokens!r}: expected an integer >= 1")
    if info.max_context and prompt_tokens > info.max_context:
        raise ModelError(f"prompt of {prompt_tokens} tokens exceeds the model's context of "
                         f"{info.max_context} tokens")
    import numpy as np

    vocab = info.vocab_size or 32000
    # ids below every special token: Qwen2 specials start at 151643; small presets put them last.
    limit = min(vocab, 151643) if vocab > 151643 else vocab - 16
    special = set()
    m = info.manifest or {}
    special.update(int(i) for i in m.get("tokenizer", {}).get("special_tokens", {}).values())
    limit = max(2, min([limit, *special]) if special else limit)
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(0, limit, size=prompt_tokens)]

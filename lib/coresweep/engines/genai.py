"""The `genai` engine: onnxruntime-genai's og.Generator with the same session options."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from coresweep.engines.base import Engine, Generation, token_sink
from coresweep.engines.session import ORT_GRAPH_LEVELS, SessionConfig
from coresweep.errors import ModelError


class GenaiEngine(Engine):
    """Greedy generation on onnxruntime-genai (og.Generator), session options via the overlay."""

    name = "genai"
    batches = True  # GeneratorParams batch_size; a server's batches: og.Engine (bench only)
    package = "onnxruntime-genai"

    def __init__(self, model_dir, session: SessionConfig, *,
                 eos_token_ids: Sequence[int] | None = None):
        super().__init__(model_dir, session, eos_token_ids=eos_token_ids)
        if not self.info.is_genai:
            raise ModelError(f"{self.info.dir!r} has no genai_config.json: the 'genai' engine needs "
                             "an onnxruntime-genai model folder (use engine 'ort' for other exports)")
        self.model = None

    def overlay(self) -> dict:
        s = self.session_config
        opts: dict[str, Any] = {
            "intra_op_num_threads": s.intra_op_num_threads,
            "inter_op_num_threads": s.ort.inter_op_threads,
            "enable_cpu_mem_arena": s.ort.memory_arena,
            "graph_optimization_level": ORT_GRAPH_LEVELS[s.ort.graph_optimization],
            "execution_mode": "ORT_SEQUENTIAL" if s.ort.execution_mode == "sequential"
            else "ORT_PARALLEL",
        }
        model: dict[str, Any] = {"decoder": {"session_options": opts}}
        if self.eos_token_ids != self.info.eos_token_ids:
            model["eos_token_id"] = self.eos_token_ids
        return {"model": model}

    @classmethod
    def check_session(cls, session: SessionConfig) -> None:
        """ModelError for the options that are ORT session config entries: genai's
        session_options cannot carry them, and a silent default would mislabel the result."""
        super().check_session(session)
        s = session.ort
        unsupported = []
        if not s.spinning:
            unsupported.append("spinning=False")
        if s.affinities:
            unsupported.append("affinities")
        if s.dynamic_block_base:
            unsupported.append(f"dynamic_block_base={s.dynamic_block_base}")
        if unsupported:
            raise ModelError(
                f"the 'genai' engine cannot set {', '.join(unsupported)}: onnxruntime-genai's "
                "session_options accept no ORT config entries (use engine 'ort' for these)")

    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> float:
        import onnxruntime  # noqa: F401  (genai dlopens the onnxruntime library of this package)
        import onnxruntime_genai as og

        t0 = time.perf_counter()
        config = og.Config(str(self.info.dir))
        config.overlay(json.dumps(self.overlay()))
        self.model = og.Model(config)
        self.load_seconds = time.perf_counter() - t0
        return self.load_seconds

    def generate(self, prompt_ids: Sequence[int], gen_tokens: int, *,
                 on_token: Callable[[int], None] | None = None) -> Generation:
        import onnxruntime_genai as og

        ids = self._ready(prompt_ids, gen_tokens)
        p = len(ids)
        params = og.GeneratorParams(self.model)
        # exactly N tokens: max_length = min_length = prompt + N (EOS is masked until then, as
        # OrtEngine._argmax does), and past_present_share_buffer as the builder's config says.
        params.set_search_options(max_length=p + gen_tokens, min_length=p + gen_tokens,
                                  do_sample=False,
                                  num_beams=1, past_present_share_buffer=True)
        tokens: list[int] = []
        token_ns: list[int] = []
        keep = token_sink(tokens, on_token)
        # The generator allocates the KV cache; OrtEngine allocates its buffers before `start`
        # too, so TTFT is the prompt's forward pass (+ arg-max) in both engines.
        gen = og.Generator(self.model, params)
        start = time.perf_counter_ns()
        gen.append_tokens(ids)
        for _ in range(gen_tokens):
            gen.generate_next_token()
            tok = int(gen.get_next_tokens()[0])
            token_ns.append(time.perf_counter_ns())
            keep(tok)
        return Generation(tokens=tokens, start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name)

    def _generate_batch(self, ids: list[int], gen_tokens: int, batch: int) -> Generation:
        """genai's own batch: ``batch_size`` in the search options, the prompt once per sequence,
        one ``generate_next_token`` per step for all of them."""
        import numpy as np
        import onnxruntime_genai as og

        if not self.loaded():
            self.load()
        p = len(ids)
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=p + gen_tokens, min_length=p + gen_tokens,
                                  do_sample=False, num_beams=1, past_present_share_buffer=True,
                                  batch_size=batch)
        prompt = np.asarray([ids] * batch, dtype=np.int32)
        out = np.zeros((gen_tokens, batch), dtype=np.int64)  # step x sequence
        token_ns: list[int] = []
        gen = og.Generator(self.model, params)
        start = time.perf_counter_ns()
        gen.append_tokens(prompt)
        for i in range(gen_tokens):
            gen.generate_next_token()
            out[i] = gen.get_next_tokens()
            token_ns.append(time.perf_counter_ns())
        seqs = out.T.tolist()
        return Generation(tokens=seqs[0], start_ns=start, token_ns=token_ns, prompt_tokens=p,
                          engine=self.name, sequences=seqs)

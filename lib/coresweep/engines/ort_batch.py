"""The `ort` engine's batch decoder for a server: sequences join and leave between steps
(continuous batching) on the GroupQueryAttention graph's shared KV buffers.

The KV buffers of every layer are one array of shape (slots, kv_heads, capacity, head_dim): row r
holds sequence r's keys and values. GroupQueryAttention reads each row's length from the
attention mask (seqlens_k = the row's ones - 1) and writes the new key/value at that position of
the same buffer, so rows at different lengths decode together with a right-padded mask (each row
counts its own ones). A new sequence's prompt runs alone (batch 1) on row r's slice of the buffers
(a numpy view: onnxruntime reads and writes it in place); a step runs rows 0..k-1 at once. When a
sequence leaves, the last row moves into its place, so the active rows stay 0..k-1. Measured on
the tiny presets: every sequence generates exactly the tokens it generates alone (tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from coresweep.engines.base import BatchDecoder
from coresweep.errors import ModelError

_ALIGN = 64  # positions: a capacity grows in whole blocks of this many


def _dtype(name: str) -> Any:
    return {"float16": np.float16}.get(name, np.float32)


class OrtBatchDecoder(BatchDecoder):
    """Up to ``slots`` sequences on one onnxruntime session (see the module docstring)."""

    def __init__(self, engine: Any, slots: int):
        if engine.kv_mode != "shared":
            raise ModelError("a batched server needs a GroupQueryAttention graph with one shared "
                             "KV buffer (the onnxruntime-genai builder's); this model "
                             "concatenates its KV cache: serve it with batch 1")
        if not isinstance(slots, int) or slots < 1:
            raise ModelError(f"slots={slots!r}: expected an integer >= 1")
        self.engine, self.info, self.sess = engine, engine.info, engine.session
        self.slots = slots
        self.capacity = 0
        self.kv: list[tuple[np.ndarray, np.ndarray]] = []
        self.rows: list[int] = []  # sequence id of each active row
        self.lens: dict[int, int] = {}  # positions in the sequence's KV cache
        self.last: dict[int, int] = {}  # its newest token, fed at the next step
        self._next = 0
        vocab = self.info.vocab_size
        self.eos = [e for e in engine.eos_token_ids if 0 <= e < vocab]
        self.logits = np.zeros((slots, 1, vocab), dtype=_dtype(self.info.logits_dtype))
        self._io: dict[int, Any] = {}  # active rows -> its IOBinding (KV and logits bound)

    @property
    def active(self) -> int:
        return len(self.rows)

    # -- buffers ----------------------------------------------------------------------------
    def _grow(self, need: int) -> None:
        """Buffers of at least ``need`` positions per row; the active rows' contents kept."""
        ctx = self.info.max_context or need
        cap = min(max(need, 2 * self.capacity), max(ctx, need))
        cap = -(-cap // _ALIGN) * _ALIGN
        shape = (self.slots, self.info.kv_heads, cap, self.info.head_dim)
        dt = _dtype(self.info.kv_dtype)
        fresh = []
        for old in self.kv or [None] * self.info.num_layers:
            pair = []
            for i in range(2):
                a = np.empty(shape, dtype=dt)
                a.fill(0)  # every page mapped now, not inside a step
                if old is not None:
                    a[: self.active, :, : self.capacity] = old[i][: self.active]
                pair.append(a)
            fresh.append(tuple(pair))
        self.kv, self.capacity, self._io = fresh, cap, {}

    def _bind_kv(self, io: Any, rows: slice) -> list:
        """Bind rows ``rows`` of every layer's buffers as past and present; returns the
        OrtValues (they keep the views alive)."""
        import onnxruntime as ort

        held = []
        for (pk, pv), (ok, ov), (k, v) in zip(self.info.past_names, self.info.present_names,
                                               self.kv, strict=True):
            kk = ort.OrtValue.ortvalue_from_numpy(k[rows])
            vv = ort.OrtValue.ortvalue_from_numpy(v[rows])
            io.bind_ortvalue_input(pk, kk)
            io.bind_ortvalue_input(pv, vv)
            io.bind_ortvalue_output(ok, kk)
            io.bind_ortvalue_output(ov, vv)
            held += [kk, vv]
        return held

    def _argmax(self, rows: np.ndarray) -> np.ndarray:
        if self.eos:
            rows[:, self.eos] = -np.inf
        return rows.argmax(axis=1)

    # -- the protocol ---------------------------------------------------------------------------
    def admit(self, prompt_ids: Sequence[int], max_new: int) -> tuple[int, int]:
        """Run a new sequence's prompt on the next free row: (its id, its first token)."""
        import onnxruntime as ort

        ids = self.engine.check_prompt(prompt_ids, max_new)
        if self.active >= self.slots:
            raise ModelError(f"all {self.slots} slots are busy: release a sequence first")
        if len(ids) + max_new > self.capacity:
            self._grow(len(ids) + max_new)
        row, p = self.active, len(ids)
        io = self.sess.io_binding()
        held = self._bind_kv(io, slice(row, row + 1))
        n_logits = 1 if self.info.logits_last_only else p
        logits = np.empty((1, n_logits, self.info.vocab_size), dtype=self.logits.dtype)
        out = ort.OrtValue.ortvalue_from_numpy(logits)
        io.bind_ortvalue_output("logits", out)
        io.bind_cpu_input("input_ids", np.asarray([ids], dtype=np.int64))
        io.bind_cpu_input("attention_mask", np.ones((1, p), dtype=np.int64))
        self.sess.run_with_iobinding(io)
        del held
        tok = int(self._argmax(logits[:, -1])[0])
        seq, self._next = self._next, self._next + 1
        self.rows.append(seq)
        self.lens[seq], self.last[seq] = p, tok
        return seq, tok

    def step(self) -> dict[int, int]:
        """One forward pass of every active sequence: {sequence id: its next token}."""
        import onnxruntime as ort

        k = self.active
        if not k:
            return {}
        if k not in self._io:
            io = self.sess.io_binding()
            held = self._bind_kv(io, slice(0, k))
            out = ort.OrtValue.ortvalue_from_numpy(self.logits[:k])
            io.bind_ortvalue_output("logits", out)
            self._io[k] = (io, held, out)
        io = self._io[k][0]
        lens = [self.lens[s] for s in self.rows]
        width = max(lens) + 1
        if width > self.capacity:
            raise ModelError(f"a sequence outgrew its {self.capacity} positions: admit it with "
                             "the tokens it will generate")
        mask = np.zeros((k, width), dtype=np.int64)
        for i, n in enumerate(lens):
            mask[i, : n + 1] = 1  # the row's own length: seqlens_k = its ones - 1
        io.bind_cpu_input("input_ids", np.asarray([[self.last[s]] for s in self.rows],
                                                  dtype=np.int64))
        io.bind_cpu_input("attention_mask", mask)
        self.sess.run_with_iobinding(io)
        toks = self._argmax(self.logits[:k, -1])
        out = {}
        for s, t in zip(self.rows, toks.tolist(), strict=True):
            self.lens[s] += 1
            self.last[s] = out[s] = int(t)
        return out

    def release(self, seq: int) -> None:
        """The sequence leaves; the last active row moves into its row."""
        if seq not in self.lens:
            return
        i, last = self.rows.index(seq), self.active - 1
        if i != last:
            moved = self.rows[last]
            n = self.lens[moved]
            for k, v in self.kv:
                k[i, :, :n] = k[last, :, :n]
                v[i, :, :n] = v[last, :, :n]
            self.rows[i] = moved
        self.rows.pop()
        del self.lens[seq], self.last[seq]

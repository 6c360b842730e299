"""GGUF models run in this process by llama.cpp (``llama-cpp-python``), for black-box calls.

llama.cpp computes straight on the quantized weights (with quantized activations), so its
outputs are not the de-quantized fp32 model's: it is another numeric path, hence another model.
Its built-in specs carry their own names (``<model>-llamacpp``) and its ``model_id`` names the
path and the llama.cpp version, so its results never share a cache key with the torch path's.

What it offers: greedy or seeded generation with stop strings and ``max_new_tokens``, chat
prompts rendered with the GGUF's own chat template, token ids (so token counts and prices come
from the model's tokenizer), and choice scoring from the next-token log-probs (teacher forcing
one token at a time). It is not white-box: no per-query LoRA (the open model stays in torch) and
no differentiable log-probs. Each request runs alone (batch 1); llama.cpp keeps the keys and values
of the last prompt, and a request that starts with the same tokens evaluates only the rest (in
whole blocks, so that the result never depends on what ran before), so a batch is run in prompt
order to let rows that share a question follow each other.

Options (``ModelSpec.options``): ``n_threads`` (default: torch's thread count; it changes no
token), ``n_ctx`` (context length, default 8192), ``n_batch`` (default 512) and
``prefill_block`` (prompt tokens per evaluation, default 64; see ``_prefill``).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from routing_gym.errors import BackendError
from routing_gym.llm import model_store
from routing_gym.llm.backends.base import Capabilities, ChoiceScores, Completion, LocalWeightsBackend
from routing_gym.llm.backends.transformers_backend import (
    _FALLBACK_ROLE_PREFIX,
    TRANSCRIPT_TURN_STOP,
    _row_done,
    profile,
)
from routing_gym.llm.requests import GenerationRequest
from routing_gym.llm.spec import ModelSpec

DEFAULT_N_CTX = 8192
DEFAULT_N_BATCH = 512
DEFAULT_PREFILL_BLOCK = 64

# Weights load once per process per (model, settings) and are shared by every pool in it; a
# llama.cpp context holds one sequence's state, so each one is used by one thread at a time.
_MODELS: dict[tuple, Any] = {}
_VOCABS: dict[str, Any] = {}
_LOCKS: dict[tuple, threading.Lock] = {}
# Per loaded model, how many leading tokens of its stored state were evaluated as whole prefill blocks.
_WHOLE_BLOCKS: dict[tuple, int] = {}
_LOAD_LOCK = threading.RLock()


def llama_cpp_version() -> str:
    """The installed llama-cpp-python's version (part of the model id: another build may round differently)."""
    try:
        return importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError as exc:
        raise BackendError(
            "The llama_cpp backend needs llama-cpp-python; install it with `pip install llama-cpp-python`."
        ) from exc


class _Decoder:
    """``decode(ids, skip_special_tokens=True)`` over a llama.cpp vocabulary, as the stop test reads it."""

    def __init__(self, llama):
        self.llama = llama

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.llama.detokenize(list(ids), special=not skip_special_tokens).decode("utf-8", errors="replace")


class LlamaCppBackend(LocalWeightsBackend):
    """A GGUF model run in process by llama.cpp (``backend="llama_cpp"``); loads lazily, once per process."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._path: Path | None = None

    # -- identity and loading -------------------------------------------------------------
    @property
    def model_id(self) -> str:
        # The prefill block shapes the arithmetic (see ``_prefill``), so it is part of the identity.
        block = self._option("prefill_block", DEFAULT_PREFILL_BLOCK)
        return f"{self.spec.name}@{self.digest[:16]}:llama.cpp-{llama_cpp_version()}:block{block}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(white_box=False, choice_scoring="teacher-forcing")

    def _option(self, key: str, default: int) -> int:
        value = self.spec.options.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BackendError(f"Model {self.spec.name!r}: option {key!r} must be a positive integer, got {value!r}.")
        return value

    @property
    def n_threads(self) -> int:
        """``options["n_threads"]``, else torch's thread count (what the torch path would use)."""
        if "n_threads" in self.spec.options:
            return self._option("n_threads", 1)
        import torch

        return max(1, torch.get_num_threads())

    @property
    def n_ctx(self) -> int:
        return self._option("n_ctx", DEFAULT_N_CTX)

    @property
    def gguf_file(self) -> Path:
        """The GGUF file (assembled from its parts on first use)."""
        if self._path is None:
            path = model_store.gguf_path(self.spec)
            if not path.is_file():
                raise BackendError(f"Model {self.spec.name!r}: GGUF file {path} not found.")
            self._path = path
        return self._path

    def _settings(self) -> tuple:
        return (self.model_id, self.n_ctx, self._option("n_batch", DEFAULT_N_BATCH), self.n_threads)

    def is_loaded(self) -> bool:
        return self._settings() in _MODELS

    def _open(self, **kwargs):
        from llama_cpp import Llama

        try:
            return Llama(model_path=str(self.gguf_file), verbose=False, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(
                f"Model {self.spec.name!r}: llama.cpp cannot load {self.gguf_file} ({exc}); "
                "is it a GGUF file of an architecture this llama-cpp-python supports?"
            ) from exc

    @property
    def vocab(self):
        """A vocabulary-only llama.cpp model: tokenizing and the chat template, without the weights."""
        key = self.model_id
        if key not in _VOCABS:
            with _LOAD_LOCK:
                if key not in _VOCABS:
                    _VOCABS[key] = self._open(vocab_only=True)
        return _VOCABS[key]

    @property
    def llama(self):
        """The loaded model (weights memory-mapped), shared by every pool in the process."""
        key = self._settings()
        if key not in _MODELS:
            with _LOAD_LOCK:
                if key not in _MODELS:
                    _, n_ctx, n_batch, n_threads = key
                    _MODELS[key] = self._open(n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads,
                                              n_threads_batch=n_threads, logits_all=False)
                    _LOCKS[key] = threading.Lock()
        return _MODELS[key]

    # -- prompts ----------------------------------------------------------------------------
    @property
    def chat_template(self) -> str:
        return self.vocab.metadata.get("tokenizer.chat_template", "")

    def render(self, request: GenerationRequest) -> str:
        """The prompt text: raw, or chat messages through the GGUF's chat template if it has one."""
        if request.prompt is not None:
            return request.prompt + request.response_prefix
        if not self.chat_template:
            # The same plain transcript as the torch path for a model without a template.
            lines = [f"{_FALLBACK_ROLE_PREFIX.get(m['role'], m['role'] + ': ')}{m['content']}" for m in request.messages]
            return "\n\n".join(lines) + "\n\n" + (request.response_prefix or _FALLBACK_ROLE_PREFIX["assistant"])
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab = self.vocab
        special = lambda token: vocab._model.token_get_text(token) if token != -1 else ""  # noqa: E731
        formatter = Jinja2ChatFormatter(self.chat_template, eos_token=special(vocab.token_eos()),
                                        bos_token=special(vocab.token_bos()), add_generation_prompt=True)
        return formatter(messages=[dict(m) for m in request.messages]).prompt + request.response_prefix

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        text = self.render(request)
        # A rendered chat template already holds its BOS; a raw prompt gets the vocabulary's usual one.
        add_bos = request.messages is None or not self.chat_template
        ids = self.vocab.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        if not ids:
            raise ValueError(f"Model {self.spec.name!r}: the prompt tokenizes to nothing.")
        return list(ids)

    def _plain_transcript(self, request: GenerationRequest) -> bool:
        return request.messages is not None and request.prompt is None and not self.chat_template

    def request_key(self, request: GenerationRequest) -> dict[str, Any]:
        # As on the torch path: the turn stop of a plain transcript shapes the output.
        return {"transcript_stop": TRANSCRIPT_TURN_STOP} if self._plain_transcript(request) else {}

    # -- generation -------------------------------------------------------------------------
    def _refuse_adapters(self, requests: Sequence[GenerationRequest]) -> None:
        if any(getattr(r, "adapter", None) is not None for r in requests):
            raise BackendError(
                f"Model {self.spec.name!r} (llama_cpp backend) takes no per-query LoRA adapter: the open "
                "model stays on the transformers backend; drop the adapter or route to an open model."
            )

    def _check_length(self, prompt: Sequence[int], new_tokens: int) -> None:
        if len(prompt) + new_tokens > self.n_ctx:
            raise BackendError(
                f"Model {self.spec.name!r}: {len(prompt)} prompt tokens + {new_tokens} new tokens exceed its "
                f"context of {self.n_ctx}; raise options['n_ctx']."
            )

    def _prefill(self, llama, ids: Sequence[int]) -> int:
        """Evaluate ``ids`` in blocks of ``prefill_block`` tokens counted from position 0, reusing
        the stored keys and values of whole blocks they share with the last prompt; returns the
        tokens actually evaluated.

        llama.cpp's arithmetic depends on how many tokens one evaluation holds (a batch of one
        takes another kernel than a batch of many), so a prompt evaluated from a stored prefix
        in arbitrary pieces would not give the logits of a fresh evaluation. Fixed blocks make
        every request's computation the same whatever ran before it: a block is reused only if
        the stored state evaluated that very block whole.
        """
        block = self._option("prefill_block", DEFAULT_PREFILL_BLOCK)
        key = self._settings()
        stored = llama.input_ids[: llama.n_tokens]
        common = 0
        for a, b in zip(stored, ids):
            if a != b:
                break
            common += 1
        keep = min(common, _WHOLE_BLOCKS.get(key, 0), len(ids) - 1) // block * block
        if keep == 0 or not llama._ctx.kv_cache_seq_rm(-1, keep, -1):
            llama.reset()
            keep = 0
        llama.n_tokens = keep
        for start in range(keep, len(ids), block):
            llama.eval(list(ids[start : start + block]))
        _WHOLE_BLOCKS[key] = len(ids) // block * block
        return len(ids) - keep

    def _next_logprobs(self, llama) -> np.ndarray:
        """Log-probs (float64) of the token after what was evaluated last."""
        logits = np.ctypeslib.as_array(llama._ctx.get_logits_ith(-1), shape=(llama.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        return logits - np.log(np.exp(logits).sum())

    def generate(self, requests: Sequence[GenerationRequest], prompt_ids: Sequence[list[int] | None]) -> list[Completion]:
        self._refuse_adapters(requests)
        llama = self.llama
        decoder = _Decoder(llama)
        ids = [list(p) if p is not None else self.prompt_ids(r) for r, p in zip(requests, prompt_ids)]
        for r, p in zip(requests, ids):
            self._check_length(p, r.max_new_tokens)
        stats = profile(self.spec.name)
        out: list[Completion | None] = [None] * len(requests)
        with _LOCKS[self._settings()]:
            # Prompt order: rows that share a question follow each other and reuse its prefill.
            for row in sorted(range(len(requests)), key=lambda i: ids[i]):
                request = requests[row]
                if self._plain_transcript(request) and TRANSCRIPT_TURN_STOP not in request.stop:
                    request = dataclasses.replace(request, stop=(*request.stop, TRANSCRIPT_TURN_STOP))
                out[row] = self._generate_one(llama, decoder, request, ids[row], stats)
        return out  # type: ignore[return-value]

    def _generate_one(self, llama, decoder, request: GenerationRequest, prompt: list[int], stats) -> Completion:
        """One request: prefill (from the stored prefix), then decode until EOS, a stop string or the cap."""
        from llama_cpp import llama_vocab_is_eog

        greedy = request.temperature == 0
        llama.set_seed(int(request.seed))
        start = time.perf_counter()
        stats.prefill_tokens += self._prefill(llama, prompt)
        stats.prefill_row_tokens += len(prompt)
        stats.prefill_s += time.perf_counter() - start
        # llama-cpp-python's own sampler chain: greedy, or temperature and top-p from the request's
        # seed; the prompt is already evaluated, so ``generate`` starts from its logits.
        tokens: list[int] = []
        start = time.perf_counter()
        for token in llama.generate([], temp=0.0 if greedy else float(request.temperature),
                                    top_k=0, top_p=1.0 if greedy else float(request.top_p), min_p=0.0,
                                    repeat_penalty=1.0, reset=False):
            tokens.append(int(token))
            if llama_vocab_is_eog(llama._model.vocab, token) or _row_done(request, tokens, decoder):
                break
        stats.decode_s += time.perf_counter() - start
        stats.decode_steps += len(tokens)
        stats.row_steps_computed += len(tokens)
        stats.row_steps_useful += len(tokens)
        completion = self._finish(request, tokens, decoder, lambda t: llama_vocab_is_eog(llama._model.vocab, t))
        stats.completions += 1
        stats.cap_hits += completion.finish_reason == "length"
        return completion

    @staticmethod
    def _finish(request: GenerationRequest, tokens: list[int], decoder: _Decoder, is_eog) -> Completion:
        """Cut a completion at its EOS, stop string or length, as the torch path cuts its rows."""
        tokens = tokens[: request.max_new_tokens]
        eos_at = next((i for i, token in enumerate(tokens) if is_eog(token)), None)
        body = tokens if eos_at is None else tokens[:eos_at]
        if request.stop:
            for end in range(1, len(body) + 1):
                text = decoder.decode(body[:end])
                hits = [text.find(s) for s in request.stop if s in text]
                if hits:
                    return Completion(text[: min(hits)], body[:end], "stop")
        if eos_at is not None:
            return Completion(decoder.decode(body), tokens[: eos_at + 1], "stop")
        return Completion(decoder.decode(tokens), tokens, "length")

    # -- scoring ----------------------------------------------------------------------------
    def score_choices(
        self, request: GenerationRequest, prompt_ids: list[int] | None, choices: Sequence[str]
    ) -> ChoiceScores:
        """Each choice's summed token log-prob after the prompt, one token at a time (teacher forcing)."""
        self._refuse_adapters([request])
        prompt = list(prompt_ids) if prompt_ids is not None else self.prompt_ids(request)
        continuations = [self.vocab.tokenize(c.encode("utf-8"), add_bos=False, special=False) for c in choices]
        self._check_length(prompt, max((len(c) for c in continuations), default=0))
        llama = self.llama
        stats = profile(self.spec.name)
        logprobs = []
        start = time.perf_counter()
        with _LOCKS[self._settings()]:
            for continuation in continuations:
                stats.scoring_tokens += self._prefill(llama, prompt)
                stats.scoring_passes += 1
                total = 0.0
                for position, token in enumerate(continuation):
                    if position:
                        llama.eval([continuation[position - 1]])
                        stats.scoring_tokens += 1
                    total += float(self._next_logprobs(llama)[token])
                logprobs.append(total if continuation else 0.0)
        stats.scoring_s += time.perf_counter() - start
        # Priced as the torch path prices it: one pass over the prompt per choice.
        return ChoiceScores(logprobs=logprobs, source="teacher-forcing",
                            prompt_tokens=len(prompt) * len(continuations),
                            completion_tokens=sum(len(c) for c in continuations))

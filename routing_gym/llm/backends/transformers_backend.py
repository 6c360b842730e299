"""Transformers causal LMs: left-padded batched generation and teacher-forced scoring."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from typing import Any, Sequence

import torch

from routing_gym.errors import BackendError
from routing_gym.llm import model_store
from routing_gym.llm.backends.base import Capabilities, ChoiceScores, Completion, LocalWeightsBackend
from routing_gym.llm.backends.generation_tails import (
    TAIL_LAYER_TYPES,
    GenerationTails,
    TailCapture,
    tail_key,
    tail_logits,
)
from routing_gym.llm.backends.prefix_sharing import (
    SUPPORTED_MODEL_TYPES,
    PrefixStore,
    prefilled_batch,
    rest_positions,
    shared_prefix_lengths,
)
from routing_gym.llm.lora import LoRAAdapter, LoRAInjector, o_proj_shapes
from routing_gym.llm.requests import GenerationRequest
from routing_gym.llm.spec import ModelSpec

# Models load once per process and are shared by every pool and env in it.
_LOADED: dict[str, Any] = {}
_GENERATION_TAILS: dict[str, GenerationTails] = {}  # by model id: shared by every pool, like _LOADED
_TOKENIZERS: dict[str, Any] = {}
# Re-entrant: building a random model reads the tokenizer, which takes the lock too.
_LOAD_LOCK = threading.RLock()

_FALLBACK_ROLE_PREFIX = {"system": "", "user": "Question: ", "assistant": "Answer: "}
#: Where a base model, answering in a plain transcript, starts a made-up next turn; it ends the answer.
TRANSCRIPT_TURN_STOP = "\n\n" + _FALLBACK_ROLE_PREFIX["user"].rstrip()


def _byte_level_tokenizer():
    """A 256-symbol byte-level tokenizer for random test models: built in memory, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    vocab.update({token: len(vocab) + i for i, token in enumerate(specials)})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return tokenizer


def _random_model(spec: ModelSpec, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    arch = spec.location_value
    if arch not in classes:
        raise BackendError(f"Model {spec.name!r}: random architecture {arch!r} unknown; use {sorted(classes)}.")
    config_cls, model_cls = classes[arch]
    config = config_cls(vocab_size=vocab_size, tie_word_embeddings=False, **dict(spec.options.get("config", {})))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.options.get("seed", 0)))
        return model_cls(config)


DECODE_MODES = ("compact", "lockstep")
COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
_CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (CUDA with bf16, or a CPU with AMX or AVX512-BF16).

    Without those units bf16 is emulated on the CPU and runs slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return any(flag in _cpu_flags() for flag in _CPU_BF16_FLAGS)
    return False


class _PerRowSampler:
    """Samples each row with its own seeded generator, so that a request's output does
    not depend on what else is in the batch (HF ``generate`` has one global RNG).

    It turns the chosen token into the only finite logit, so greedy search picks it.
    """

    def __init__(self, requests: Sequence[GenerationRequest]):
        self.requests = requests
        self.generators = [
            torch.Generator().manual_seed(int(r.seed)) if r.temperature > 0 else None for r in requests
        ]

    def sample(self, row: int, logits: torch.Tensor) -> int:
        """Row ``row``'s next token drawn from its own generator (``logits``: one vocabulary row)."""
        request = self.requests[row]
        probs = torch.softmax(logits.float().cpu() / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < request.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs, 1, generator=self.generators[row]).item())

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, generator in enumerate(self.generators):
            if generator is None:
                continue
            token = self.sample(row, scores[row])
            scores[row] = float("-inf")
            scores[row, token] = 0.0
        return scores


class _PerRowStop:
    """Stops each row at its own max_new_tokens or at one of its own stop strings."""

    def __init__(self, requests: Sequence[GenerationRequest], prompt_length: int, tokenizer):
        self.requests = requests
        self.prompt_length = prompt_length
        self.tokenizer = tokenizer

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row, request in enumerate(self.requests):
            done[row] = _row_done(request, input_ids[row, self.prompt_length :].tolist(), self.tokenizer)
        return done


def _row_done(request: GenerationRequest, generated: list[int], tokenizer) -> bool:
    """Whether a row has reached its max_new_tokens or has one of its stop strings in its tail."""
    if len(generated) >= request.max_new_tokens:
        return True
    if not request.stop:
        return False
    # Only the tail can newly contain a stop string; decode a short window.
    tail = tokenizer.decode(generated[-(max(len(s) for s in request.stop) + 8) :], skip_special_tokens=True)
    return any(s in tail for s in request.stop)


@dataclasses.dataclass
class ModelProfile:
    """Where one model's time goes: counted by the backend, read by ``benchmarks/episode_throughput.py``."""

    prefill_tokens: int = 0  # real (unpadded) prompt tokens run through the model
    prefill_row_tokens: int = 0  # rows x positions computed, padding included
    prefill_s: float = 0.0
    decode_steps: int = 0  # forward passes that each produce one token per row
    row_steps_computed: int = 0  # rows x steps computed (the prefill's first token included)
    row_steps_useful: int = 0  # rows x steps up to each row's own stop
    decode_s: float = 0.0
    completions: int = 0
    cap_hits: int = 0  # completions that ended at their max_new_tokens
    scoring_passes: int = 0  # teacher-forced forward passes (letters, verdicts, REINFORCE)
    rows_tail_from_generation: int = 0  # REINFORCE rows scored from generation's hidden states, no prefill
    scoring_tokens: int = 0
    scoring_s: float = 0.0
    backward_s: float = 0.0  # filled in by callers that time their backward

    def add(self, other: "ModelProfile") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


#: Per model name, what its backends computed in this process (a profile, not part of any result).
PROFILES: dict[str, ModelProfile] = {}


def profile(name: str) -> ModelProfile:
    """The running profile of model ``name`` (created on first use)."""
    return PROFILES.setdefault(name, ModelProfile())


def reset_profiles() -> None:
    """Forget every model's profile counters."""
    PROFILES.clear()


class TransformersBackend(LocalWeightsBackend):
    """A transformers causal LM; loads lazily, once per process."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._injector: LoRAInjector | None = None
        self._prefix_store: PrefixStore | None = None
        self._generation_tails: GenerationTails | None = None

    def __getstate__(self) -> dict:
        # Stored prefixes and tails are a per-process speed-up, refilled on demand; never pickle tensors.
        return {**self.__dict__, "_prefix_store": None, "_generation_tails": None}

    # -- identity and loading -------------------------------------------------------------
    @property
    def model_id(self) -> str:
        # The compute dtype is part of the identity: bf16 and fp32 may decode differently.
        return f"{self.spec.name}@{self.digest[:16]}:{str(self.dtype).removeprefix('torch.')}"

    @property
    def supports_scoring(self) -> bool:
        return True

    def is_loaded(self) -> bool:
        return self.model_id in _LOADED

    @property
    def device(self) -> torch.device:
        wanted = self.spec.options.get("device", "auto")
        if wanted == "auto":
            wanted = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(wanted)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: the ``dtype`` option, or bf16 where the device runs it fast, else fp32."""
        wanted = self.spec.options.get("dtype", "auto")
        if wanted == "auto":
            return torch.bfloat16 if fast_bf16(self.device) else torch.float32
        if wanted not in COMPUTE_DTYPES:
            raise BackendError(
                f"Model {self.spec.name!r}: unknown dtype {wanted!r}; use 'auto' or one of {sorted(COMPUTE_DTYPES)}."
            )
        return COMPUTE_DTYPES[wanted]

    def _dtype(self) -> torch.dtype:
        return self.dtype

    def _source(self) -> tuple[str, dict[str, Any]]:
        """Where ``from_pretrained`` reads this model from, with its extra kwargs."""
        kind, value = self.spec.location_kind, self.spec.location_value
        if kind in model_store.GGUF_KINDS:
            return str(model_store.materialize_gguf(self.spec, self.digest)), {}
        if kind == "dir":
            return value, {}
        if kind == "hub":
            return value, {"revision": self.spec.options.get("revision", "main")}
        raise BackendError(f"Model {self.spec.name!r}: location kind {kind!r} has no folder.")

    @property
    def tokenizer(self):
        key = self.model_id
        if key not in _TOKENIZERS:
            with _LOAD_LOCK:
                if key not in _TOKENIZERS:
                    _TOKENIZERS[key] = self._load_tokenizer()
        return _TOKENIZERS[key]

    def _load_tokenizer(self):
        from transformers import AutoTokenizer

        kind = self.spec.location_kind
        if kind == "random":
            tokenizer = _byte_level_tokenizer()
        elif kind in model_store.GGUF_KINDS and not (
            model_store.materialized_folder(self.spec, self.digest) / "config.json"
        ).is_file():
            # Read the tokenizer straight from the GGUF: a cache hit must not de-quantize weights.
            source = model_store.gguf_path(self.spec)
            with model_store.parsed_once():  # the de-quantization that may follow reuses the parse
                tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        else:
            source, kwargs = self._source()
            try:
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            except OSError as exc:
                raise BackendError(f"Model {self.spec.name!r}: cannot load its tokenizer from {source}: {exc}") from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    @property
    def model(self):
        key = self.model_id
        if key not in _LOADED:
            with _LOAD_LOCK:
                if key not in _LOADED:
                    _LOADED[key] = self._load_model()
        return _LOADED[key]

    def _load_model(self):
        # Weights created under inference mode could never take part in autograd later.
        with torch.inference_mode(False):
            return self._build_model()

    def _build_model(self):
        from transformers import AutoModelForCausalLM

        if self.spec.location_kind == "random":
            model = _random_model(self.spec, vocab_size=len(self.tokenizer))
        else:
            source, kwargs = self._source()
            try:
                model = AutoModelForCausalLM.from_pretrained(source, dtype=self._dtype(), **kwargs)
            except OSError as exc:
                raise BackendError(f"Model {self.spec.name!r}: cannot load weights from {source}: {exc}") from exc
        model = model.to(device=self.device, dtype=self._dtype())
        model.eval()
        model.requires_grad_(False)
        return model

    @property
    def injector(self) -> LoRAInjector:
        """Applies per-row LoRA adapters to this model's ``o_proj`` layers (hooks, no weight edits)."""
        if self._injector is None:
            self._injector = LoRAInjector(self.model, name=self.spec.name, open=self.spec.open)
        return self._injector

    def _adapters(self, adapters: Sequence[LoRAAdapter | None] | None, rows: int) -> list[LoRAAdapter | None]:
        if adapters is None:
            return [None] * rows
        adapters = list(adapters)
        if len(adapters) != rows:
            raise ValueError(f"Model {self.spec.name!r}: {len(adapters)} adapters for a batch of {rows} rows.")
        return adapters

    def _injected(self, adapters: Sequence[LoRAAdapter | None]):
        """The injector's context for these rows; a plain no-op when no row has an adapter."""
        if all(a is None for a in adapters):
            return contextlib.nullcontext()
        return self.injector.apply(adapters)

    # -- prompts ----------------------------------------------------------------------------
    def render(self, request: GenerationRequest) -> str:
        """The prompt text: raw, or chat messages through the model's chat template if any."""
        if request.prompt is not None:
            return request.prompt + request.response_prefix
        tokenizer = self.tokenizer
        if tokenizer.chat_template:
            text = tokenizer.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
        else:
            # Base models have no template: a plain transcript that ends where the answer starts.
            lines = [f"{_FALLBACK_ROLE_PREFIX.get(m['role'], m['role'] + ': ')}{m['content']}" for m in request.messages]
            # A response prefix is a stronger cue than the generic "Answer: ".
            cue = request.response_prefix or _FALLBACK_ROLE_PREFIX["assistant"]
            return "\n\n".join(lines) + "\n\n" + cue
        return text + request.response_prefix

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        text = self.render(request)
        tokenizer = self.tokenizer
        # Chat templates already contain BOS; raw prompts get the tokenizer's usual specials.
        add_special = request.messages is None or not tokenizer.chat_template
        ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
        if not ids:
            raise ValueError(f"Model {self.spec.name!r}: the prompt tokenizes to nothing.")
        return list(ids)

    # -- generation -------------------------------------------------------------------------
    @property
    def prefix_store(self) -> PrefixStore:
        """Prompt prefixes computed by earlier batches (``options["prefix_store_mb"]``, default 512)."""
        if self._prefix_store is None:
            self._prefix_store = PrefixStore(int(self.spec.options.get("prefix_store_mb", 512)) * 2**20)
        return self._prefix_store

    @property
    def generation_tails(self) -> GenerationTails:
        """Last-layer inputs kept by generation for REINFORCE (``options["generation_tails_mb"]``, default 256).

        One store per loaded model, like the weights: HAPS plays its episodes in lockstep env
        copies, each with its own pool, and scores them through another env's pool. The entries
        depend only on the weights, the dtype and the token ids (their key), so sharing is exact.
        """
        if self._generation_tails is None:
            with _LOAD_LOCK:
                if self.model_id not in _GENERATION_TAILS:
                    budget = int(self.spec.options.get("generation_tails_mb", 256)) * 2**20
                    _GENERATION_TAILS[self.model_id] = GenerationTails(budget)
            self._generation_tails = _GENERATION_TAILS[self.model_id]
        return self._generation_tails

    def _tails_from_generation(self) -> bool:
        """``options["tail_from_generation"]`` (default on) for a model whose last layer ``tail_logits`` rebuilds."""
        return (
            bool(self.spec.options.get("tail_from_generation", True))
            and bool(self.spec.options.get("tail_logprobs", True))
            and self.model.config.model_type in TAIL_LAYER_TYPES
        )

    def _keeps_base_cache(self, adapter: LoRAAdapter | None) -> bool:
        """Whether a row with ``adapter`` has the unadapted model's keys and values in every layer.

        An adapter on the ``o_proj`` of layer L changes what layer L outputs, so the keys and
        values of layers 0..L are the base model's and those of every later layer are not. Only
        an adapter on the last layer alone leaves the whole cache unchanged, so only then may a
        row read prefixes computed without it. ``options["lora_prefix_sharing"]``: False never
        shares a row with an adapter (the code before the profile).
        """
        if adapter is None:
            return True
        if not self.spec.options.get("lora_prefix_sharing", True):
            return False
        return min(adapter.layers) >= self.injector.num_layers - 1

    def _shared_prefixes(self, prompt_ids: Sequence[list[int]], adapters) -> list[int]:
        """Per row, the prompt prefix to prefill once for the batch (0: none).

        Off with ``options={"prefix_sharing": False}``, for models outside
        ``SUPPORTED_MODEL_TYPES``, and when a row's LoRA adapter would change the keys and values
        of the prefix itself (see ``_keeps_base_cache``).
        """
        enabled = self.spec.options.get("prefix_sharing", True)
        if (
            not enabled
            or not all(self._keeps_base_cache(a) for a in adapters)
            or self.model.config.model_type not in SUPPORTED_MODEL_TYPES
        ):
            return [0] * len(prompt_ids)
        min_tokens = int(self.spec.options.get("prefix_min_tokens", 32))
        shared = shared_prefix_lengths(prompt_ids, min_tokens)
        stored = [self.prefix_store.longest(ids) for ids in prompt_ids]
        return [max(a, b if b >= min_tokens else 0) for a, b in zip(shared, stored)]

    def _pad_left(self, prompt_ids: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in prompt_ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids) :] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def _plain_transcript(self, request: GenerationRequest) -> bool:
        return request.messages is not None and request.prompt is None and not self.tokenizer.chat_template

    def request_key(self, request: GenerationRequest) -> dict[str, Any]:
        # The turn stop of a plain transcript shapes the output, so it belongs in the cache key.
        return {"transcript_stop": TRANSCRIPT_TURN_STOP} if self._plain_transcript(request) else {}

    def _with_turn_stop(self, request: GenerationRequest) -> GenerationRequest:
        if not self._plain_transcript(request) or TRANSCRIPT_TURN_STOP in request.stop:
            return request
        return dataclasses.replace(request, stop=(*request.stop, TRANSCRIPT_TURN_STOP))

    @property
    def decode_mode(self) -> str:
        """``options["decode"]``: "compact" (default) drops each row from the batch once it has
        stopped; "lockstep" is transformers' ``generate``, which decodes every row until the
        longest ends (the code before the profile, kept to measure against)."""
        mode = self.spec.options.get("decode", "compact")
        if mode not in DECODE_MODES:
            raise BackendError(f"Model {self.spec.name!r}: unknown decode {mode!r}; use one of {list(DECODE_MODES)}.")
        return mode

    @torch.inference_mode()
    def generate(self, requests: Sequence[GenerationRequest], prompt_ids: Sequence[list[int]]) -> list[Completion]:
        requests = [self._with_turn_stop(r) for r in requests]
        model, tokenizer = self.model, self.tokenizer
        adapters = [getattr(r, "adapter", None) for r in requests]
        lengths = self._shared_prefixes(prompt_ids, adapters)
        extra = {}
        stats = profile(self.spec.name)
        if any(lengths):
            input_ids, attention_mask, extra["cache"] = prefilled_batch(
                model, prompt_ids, lengths, tokenizer.pad_token_id, self.device, self.prefix_store
            )
            head = max(lengths)
        else:
            input_ids, attention_mask = self._pad_left(prompt_ids)
            head = 0
        stats.prefill_tokens += sum(len(p) - n for p, n in zip(prompt_ids, lengths))
        stats.prefill_row_tokens += len(prompt_ids) * (input_ids.shape[1] - head)
        eos = {tokenizer.eos_token_id} | set(_as_list(model.generation_config.eos_token_id))
        eos.discard(None)
        # Rows that REINFORCE will score through the last layer alone: keep that layer's inputs.
        kept_rows = [row for row, a in enumerate(adapters) if a is not None and self._keeps_base_cache(a)]
        capture = TailCapture(model) if kept_rows and self._tails_from_generation() else None
        try:
            if self.decode_mode == "compact" and self.model.config.model_type in SUPPORTED_MODEL_TYPES:
                generated = self._decode_compact(requests, input_ids, attention_mask, extra.get("cache"), head,
                                                 adapters, eos, stats, capture)
            else:
                generated = self._decode_lockstep(requests, input_ids, attention_mask, extra, adapters, eos, stats)
        finally:
            if capture is not None:
                capture.close()
        stats.row_steps_useful += sum(self._steps_to_stop(r, row, eos) for r, row in zip(requests, generated))
        completions = [self._finish(request, row, eos) for request, row in zip(requests, generated)]
        if capture is not None:
            self._keep_tails(capture, kept_rows, prompt_ids, generated, completions)
        stats.completions += len(completions)
        stats.cap_hits += sum(c.finish_reason == "length" for c in completions)
        return completions

    def _keep_tails(self, capture: TailCapture, rows, prompt_ids, generated, completions) -> None:
        """Store each kept row's last-layer inputs at the positions that score its completion.

        The completion may be cut (a stop string, EOS, ``max_new_tokens``) but is always a prefix
        of the generated tokens, and the forward pass that picked generated token i saw the
        position that scores it; anything else is not stored, and scoring prefills as before.
        """
        for row in rows:
            completion = list(completions[row].completion_ids)
            if not completion or capture.passes(row) != len(generated[row]):
                continue
            if generated[row][: len(completion)] != completion:
                continue
            resid, attn = capture.row(row, len(completion))
            self.generation_tails.put(tail_key(self.dtype, prompt_ids[row], completion), resid, attn)

    def _steps_to_stop(self, request: GenerationRequest, tokens: list[int], eos: set[int]) -> int:
        """The steps a row needed: up to its EOS, its stop string's detection or its length."""
        for step, token in enumerate(tokens, start=1):
            if token in eos or _row_done(request, tokens[:step], self.tokenizer):
                return step
        return len(tokens)

    def _decode_lockstep(self, requests, input_ids, attention_mask, extra, adapters, eos, stats) -> list[list[int]]:
        """transformers' ``generate``: one batch, every row decoded until the longest row ends."""
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        tokenizer = self.tokenizer
        config = GenerationConfig(
            max_new_tokens=max(r.max_new_tokens for r in requests),
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(eos),
        )
        start = time.perf_counter()
        with self._injected(adapters):
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                **extra,
                logits_processor=LogitsProcessorList([_PerRowSampler(requests)]),
                stopping_criteria=StoppingCriteriaList([_PerRowStop(requests, input_ids.shape[1], tokenizer)]),
            )
        steps = output.shape[1] - input_ids.shape[1]
        stats.decode_steps += steps
        stats.row_steps_computed += steps * len(requests)
        stats.decode_s += time.perf_counter() - start  # prefill and decode are one call here
        return output[:, input_ids.shape[1] :].tolist()

    def _decode_compact(self, requests, input_ids, attention_mask, cache, head, adapters, eos, stats,
                        capture: TailCapture | None = None) -> list[list[int]]:
        """Greedy or per-row sampled decoding that drops each row from the batch as it stops.

        It feeds the model what ``generate`` feeds it (positions from the attention mask, the
        same cache), so a row's tokens are those of the lockstep batch; a finished row simply
        costs nothing more. transformers' ``generate`` keeps the batch whole, hence this loop.
        """
        from transformers import DynamicCache

        model = self.model
        sampler = _PerRowSampler(requests)
        cache = cache if cache is not None else DynamicCache(config=model.config)
        positions = attention_mask.long().cumsum(-1) - 1
        positions.masked_fill_(attention_mask == 0, 1)  # as generate does for padding
        step_ids, step_positions = input_ids[:, head:], positions[:, head:]
        active = list(range(len(requests)))  # original row of each batch row
        tokens: list[list[int]] = [[] for _ in requests]
        prefill = True
        with contextlib.ExitStack() as injected:
            injected.enter_context(self._injected(adapters))
            while active:
                start = time.perf_counter()
                logits = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions,
                               cache=cache, use_cache=True, logits_to_keep=1).logits[:, -1].float()
                picked = logits.argmax(-1).tolist()
                if capture is not None:
                    capture.mark_rows(active)
                elapsed = time.perf_counter() - start
                if prefill:
                    stats.prefill_s += elapsed
                else:
                    stats.decode_s += elapsed
                prefill = False
                stats.decode_steps += 1
                stats.row_steps_computed += len(active)
                keep = []
                for batch_row, row in enumerate(active):
                    token = picked[batch_row] if sampler.generators[row] is None else sampler.sample(row, logits[batch_row])
                    tokens[row].append(token)
                    if token not in eos and not _row_done(requests[row], tokens[row], self.tokenizer):
                        keep.append(batch_row)
                if not keep:
                    break
                next_ids = torch.tensor([[tokens[active[b]][-1]] for b in keep], dtype=torch.long, device=self.device)
                if len(keep) < len(active):
                    index = torch.tensor(keep, dtype=torch.long, device=self.device)
                    cache.batch_select_indices(index)
                    attention_mask, step_positions = attention_mask[index], step_positions[index]
                    active = [active[b] for b in keep]
                    injected.close()  # the hooks are sized to the batch: re-attach for the rows left
                    injected.enter_context(self._injected([adapters[row] for row in active]))
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(active), 1))], dim=-1)
                step_ids, step_positions = next_ids, step_positions[:, -1:] + 1
        return tokens

    def _finish(self, request: GenerationRequest, tokens: list[int], eos: set[int]) -> Completion:
        """Cut one row at its EOS, stop string or length, and decode it."""
        tokens = tokens[: request.max_new_tokens]
        decode = self.tokenizer.decode
        # Whichever comes first ends the row: a stop string or EOS. (EOS may double as the
        # pad token, so what follows a row's own end must never count.)
        eos_at = next((i for i, token in enumerate(tokens) if token in eos), None)
        body = tokens if eos_at is None else tokens[:eos_at]
        if request.stop:
            for end in range(1, len(body) + 1):
                text = decode(body[:end], skip_special_tokens=True)
                hits = [text.find(s) for s in request.stop if s in text]
                if hits:
                    return Completion(text[: min(hits)], body[:end], "stop")
        if eos_at is not None:
            return Completion(decode(body, skip_special_tokens=True), tokens[: eos_at + 1], "stop")
        return Completion(decode(tokens, skip_special_tokens=True), tokens, "length")

    # -- scoring ----------------------------------------------------------------------------
    def token_logprobs(
        self,
        prompt_ids: Sequence[list[int]],
        completion_ids: Sequence[list[int]],
        adapters: Sequence[LoRAAdapter | None] | None = None,
    ) -> list[torch.Tensor]:
        """Per-token log-probs of each completion given its prompt, by teacher forcing.

        Runs with autograd enabled, so gradients flow to anything the forward pass
        depends on (e.g. the factors of ``adapters``, one LoRA or None per row);
        wrap in ``torch.no_grad()`` to score only.
        """
        if len(prompt_ids) != len(completion_ids):
            raise ValueError("token_logprobs needs one completion per prompt.")
        for row, completion in enumerate(completion_ids):
            if not completion:
                raise ValueError(f"token_logprobs: completion {row} is empty.")
        sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
        adapters = self._adapters(adapters, len(sequences))
        # Completions are right-aligned, so only the last (longest + 1) positions need logits:
        # with a 262k vocabulary, full-sequence logits would dominate time and memory.
        longest = max(len(c) for c in completion_ids)
        stats = profile(self.spec.name)
        start = time.perf_counter()
        tail_only = self._tail_only(prompt_ids, adapters)
        tails = self._stored_tails(prompt_ids, completion_ids) if tail_only else None
        if tails is not None:
            input_ids, logits = self._tail_logits_from_generation(tails, completion_ids, adapters, longest)
            stats.rows_tail_from_generation += len(tails)
        elif tail_only:
            input_ids, logits = self._tail_logits(prompt_ids, sequences, adapters, longest)
        else:
            input_ids, attention_mask = self._pad_left(sequences)
            with self._injected(adapters):
                logits = self.model(
                    input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=longest + 1
                ).logits
        stats.scoring_passes += 1
        # Tokens run through the model: from generation's hidden states, only the completions.
        stats.scoring_tokens += sum(len(q) for q in (completion_ids if tails is not None else sequences))
        stats.scoring_s += time.perf_counter() - start
        # Half precision is upcast for the softmax; float64 stays float64 (gradient checks).
        logprobs = torch.log_softmax(logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        targets = input_ids[:, -longest:]
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return [picked[row, longest - len(c) :] for row, c in enumerate(completion_ids)]

    def _tail_only(self, prompt_ids: Sequence[list[int]], adapters: Sequence[LoRAAdapter | None]) -> bool:
        """Whether ``token_logprobs`` may take the prompts' keys and values from a pass without
        gradient and run only the completions with it (``options["tail_logprobs"]``, default on).

        Exact when no adapter changes a prompt's cache (see ``_keeps_base_cache``): the
        gradient reaches the factors only through the completion positions. Used only with
        autograd on: scoring keeps its one plain pass. Where generation kept every row's
        last-layer inputs (``_stored_tails``), not even the prompts are run.
        """
        return (
            torch.is_grad_enabled()
            and bool(self.spec.options.get("tail_logprobs", True))
            and self.model.config.model_type in SUPPORTED_MODEL_TYPES
            and any(a is not None for a in adapters)
            and all(self._keeps_base_cache(a) for a in adapters)
            and all(len(p) > 1 for p in prompt_ids)
        )

    def _tail_logits(self, prompt_ids, sequences, adapters, longest: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, logits)`` of the last ``longest + 1`` positions, with each prompt but its
        last token prefilled without gradient (from the prefix store where it holds a prefix)."""
        lengths = [len(p) - 1 for p in prompt_ids]
        input_ids, attention_mask, cache = prefilled_batch(
            self.model, sequences, lengths, self.tokenizer.pad_token_id, self.device, self.prefix_store, keep=False
        )
        head = max(lengths)
        # The store works under inference mode; what autograd sees must be plain tensors.
        with torch.no_grad():
            input_ids, attention_mask = input_ids.clone(), attention_mask.clone()
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.clone(), layer.values.clone()
        with self._injected(adapters):
            logits = self.model(
                input_ids=input_ids[:, head:], attention_mask=attention_mask, cache=cache,
                position_ids=rest_positions(attention_mask, head), logits_to_keep=longest + 1,
            ).logits
        return input_ids, logits

    def _stored_tails(self, prompt_ids, completion_ids) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        """Every row's ``(resid, attn)`` kept by the generation that produced it, or None if any
        row's is missing (a completion from the response cache, an evicted one)."""
        if not self._tails_from_generation():
            return None
        tails = []
        for prompt, completion in zip(prompt_ids, completion_ids):
            tail = self.generation_tails.get(tail_key(self.dtype, prompt, completion))
            if tail is None:
                return None
            tails.append(tail)
        return tails

    def _tail_logits_from_generation(self, tails, completion_ids, adapters, longest: int):
        """``(input_ids, logits)`` laid out as ``_tail_logits``'s (completions right-aligned, one
        more logit column than ``longest``) from stored last-layer inputs: no prompt is run."""
        rows, hidden, width = len(tails), tails[0][0].shape[-1], tails[0][1].shape[-1]
        resid = tails[0][0].new_zeros((rows, longest + 1, hidden))
        attn = tails[0][1].new_zeros((rows, longest + 1, width))
        input_ids = torch.full((rows, longest), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        for row, ((r, a), completion) in enumerate(zip(tails, completion_ids)):
            # Zeros elsewhere stay finite through the norms; their logits are never read.
            resid[row, longest - len(completion) : longest] = r
            attn[row, longest - len(completion) : longest] = a
            input_ids[row, longest - len(completion) :] = torch.tensor(completion, dtype=torch.long)
        with self._injected(adapters):
            logits = tail_logits(self.model, resid, attn)
        return input_ids, logits

    # -- the rest of the Backend interface ------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(white_box=True, choice_scoring="teacher-forcing")

    def score_choices(
        self, request: GenerationRequest, prompt_ids: list[int] | None, choices: Sequence[str]
    ) -> ChoiceScores:
        """Each choice's summed token log-prob after the prompt (teacher forcing, the request's adapter if any)."""
        return self.score_choices_batch([request], [prompt_ids], [choices])[0]

    def score_choices_batch(
        self,
        requests: Sequence[GenerationRequest],
        prompt_ids: Sequence[list[int] | None],
        choices: Sequence[Sequence[str]],
    ) -> list[ChoiceScores]:
        """Every choice of every request scored in one teacher-forced batch.

        A request whose choices are all one token each (answer letters) takes a single row:
        one pass over its prompt gives every choice's log-prob at once. Other requests take a
        row per choice. The price is the same either way: one pass over the prompt per choice,
        as a server scoring each choice would charge.
        """
        tokenized = []
        for request, ids, options in zip(requests, prompt_ids, choices):
            prompt = list(ids) if ids is not None else self.prompt_ids(request)
            tokenized.append((prompt, [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in options]))
        single = [i for i, (_, conts) in enumerate(tokenized) if conts and all(len(c) == 1 for c in conts)]
        one_pass = set(single)
        rows: list[tuple[int, list[int], list[int]]] = [  # (request, prompt, continuation)
            (index, prompt, c) for index, (prompt, conts) in enumerate(tokenized) if index not in one_pass for c in conts
        ]
        logprobs: dict[int, list[float]] = {i: [] for i in range(len(requests))}
        with torch.no_grad():
            if single:
                next_token = self._next_token_logprobs(
                    [tokenized[i][0] for i in single], [getattr(requests[i], "adapter", None) for i in single]
                )
                for row, index in enumerate(single):
                    logprobs[index] = [float(next_token[row, c[0]]) for c in tokenized[index][1]]
            if rows:
                adapters = [getattr(requests[i], "adapter", None) for i, _, _ in rows]
                per_token = self.token_logprobs(
                    [p for _, p, _ in rows],
                    [c for _, _, c in rows],
                    adapters=adapters if any(a is not None for a in adapters) else None,
                )
                for (index, _, _), values in zip(rows, per_token):
                    logprobs[index].append(float(values.sum()))
        out = []
        for index, (prompt, conts) in enumerate(tokenized):
            out.append(
                ChoiceScores(
                    logprobs=logprobs[index],
                    source="teacher-forcing",
                    prompt_tokens=len(prompt) * len(conts),
                    completion_tokens=sum(len(c) for c in conts),
                )
            )
        return out

    def _next_token_logprobs(
        self, prompt_ids: Sequence[list[int]], adapters: Sequence[LoRAAdapter | None]
    ) -> torch.Tensor:
        """``(rows, vocab)`` log-probs of the token after each prompt (one forward pass)."""
        adapters = self._adapters(adapters, len(prompt_ids))
        lengths = self._shared_prefixes(prompt_ids, adapters)
        if any(lengths):  # the prompt's prefix is usually stored by the generation it scores
            input_ids, attention_mask, cache = prefilled_batch(
                self.model, prompt_ids, lengths, self.tokenizer.pad_token_id, self.device, self.prefix_store
            )
            head = max(lengths)
            with self._injected(adapters):  # only adapters that leave the stored cache exact get here
                logits = self.model(input_ids=input_ids[:, head:], attention_mask=attention_mask, cache=cache,
                                    position_ids=rest_positions(attention_mask, head), logits_to_keep=1).logits
        else:
            input_ids, attention_mask = self._pad_left(prompt_ids)
            with self._injected(adapters):
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=1).logits
        return torch.log_softmax(logits[:, -1].to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)

    def lora_shapes(self) -> dict[int, tuple[int, int]]:
        return o_proj_shapes(self.model)

    def white_box_model(self) -> tuple[Any, Any]:
        return self.model, self.tokenizer


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


"""The LLM pool: batched generation across models, through the response cache."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from routing_gym.errors import UnknownModelError
from routing_gym.llm.backends import Backend, make_backend
from routing_gym.llm.cache import ResponseCache
from routing_gym.llm.lora import LoRAAdapter
from routing_gym.llm.requests import GenerationRequest, GenerationResult
from routing_gym.llm.spec import ModelSpec, resolve_spec

ModelLike = ModelSpec | str | Mapping[str, Any]


class LLMPool:
    """A set of models that answers a batch of requests at once.

    Requests are bucketed by model; each bucket first consults the cache, and only the
    misses run on the model, in left-padded batches of at most ``max_batch_size``.
    Models load lazily on the first miss, once per process.

    Args:
        models: built-in names (see ``routing_gym.llm.spec.BUILTIN_SPECS``), dicts or ModelSpecs.
        cache: a ResponseCache, a path to one, or None for no cache.
        cache_mode: "rw", "ro" or "off" when ``cache`` is a path.
        max_batch_size: the largest batch sent to one model at once.
        progress: show a progress bar over model batches.
    """

    def __init__(
        self,
        models: Sequence[ModelLike],
        cache: ResponseCache | str | os.PathLike | None = None,
        cache_mode: str = "rw",
        max_batch_size: int = 32,
        progress: bool = False,
    ):
        specs = [resolve_spec(m) for m in models]
        if not specs:
            raise ValueError("LLMPool needs at least one model.")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"LLMPool model names must be unique, got {names}.")
        if max_batch_size < 1:
            raise ValueError(f"LLMPool max_batch_size must be >= 1, got {max_batch_size}.")
        self.specs: dict[str, ModelSpec] = {s.name: s for s in specs}
        self.backends: dict[str, Backend] = {s.name: make_backend(s) for s in specs}
        if cache is None or isinstance(cache, ResponseCache):
            self.cache = cache if cache is not None else ResponseCache(mode="off")
        else:
            self.cache = ResponseCache(cache, mode=cache_mode)
        self.max_batch_size = max_batch_size
        self.progress = progress

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    def backend(self, name: str) -> Backend:
        if name not in self.backends:
            raise UnknownModelError(f"Model {name!r} is not in this pool; the pool has {self.names}.")
        return self.backends[name]

    def cost(self, name: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD cost of a call from the pool's price table."""
        return float(self.specs[name].price.cost(prompt_tokens, completion_tokens))

    # -- generation -------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Complete every request; results come back in request order."""
        results: list[GenerationResult | None] = [None] * len(requests)
        buckets: dict[str, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            self.backend(request.model)  # unknown model fails before any work
            if getattr(request, "adapter", None) is not None:
                self._check_open(request.model)
            buckets[request.model].append(index)
        for name, indices in buckets.items():
            for index, result in zip(indices, self._generate_bucket(name, [requests[i] for i in indices])):
                results[index] = result
        return results  # type: ignore[return-value]

    def _generate_bucket(self, name: str, requests: list[GenerationRequest]) -> list[GenerationResult]:
        backend = self.backends[name]
        prompt_ids = [backend.prompt_ids(r) for r in requests]
        keys = [
            ResponseCache.make_key(backend.model_id, ids, r.decoding_params(), self._adapter_digest(r))
            for r, ids in zip(requests, prompt_ids)
        ]
        found = self.cache.get_many(keys, model=name)
        results: list[GenerationResult | None] = [
            self._result(name, ids, found[key], cached=True) if key in found else None
            for key, ids in zip(keys, prompt_ids)
        ]
        # One run per distinct key: identical requests in a batch share a completion.
        pending: dict[str, int] = {}
        for index, key in enumerate(keys):
            if results[index] is None and key not in pending:
                pending[key] = index
        order = sorted(pending.values(), key=lambda i: len(prompt_ids[i]))  # similar lengths pad less
        batches = [order[s : s + self.max_batch_size] for s in range(0, len(order), self.max_batch_size)]
        fresh: dict[str, dict] = {}
        for batch in tqdm(batches, desc=f"generate {name}", disable=not self.progress or not batches):
            completions = backend.generate([requests[i] for i in batch], [prompt_ids[i] for i in batch])
            records = []
            for i, completion in zip(batch, completions):
                record = {
                    "text": completion.text,
                    "prompt_ids": prompt_ids[i],
                    "completion_ids": completion.completion_ids,
                    "finish_reason": completion.finish_reason,
                }
                fresh[keys[i]] = record
                records.append((keys[i], name, record))
            self.cache.put_many(records)  # each batch lands whole, so a kill loses at most one batch
        for index, key in enumerate(keys):
            if results[index] is None:
                results[index] = self._result(name, prompt_ids[index], fresh[key], cached=False)
        return results  # type: ignore[return-value]

    def _check_open(self, name: str) -> None:
        """Per-query LoRA needs the weights: refuse it for a closed model."""
        if not self.specs[name].open:
            raise ValueError(
                f"Model {name!r} is closed (open=False): it cannot take a per-query LoRA adapter; "
                "drop the adapter or route to an open model."
            )

    @staticmethod
    def _adapter_digest(request: GenerationRequest) -> str:
        adapter = getattr(request, "adapter", None)
        return "" if adapter is None else adapter.digest

    def _result(self, name: str, prompt_ids: list[int], record: dict, cached: bool) -> GenerationResult:
        completion_ids = list(record["completion_ids"])
        return GenerationResult(
            model=name,
            text=record["text"],
            prompt_ids=list(prompt_ids),
            completion_ids=completion_ids,
            cost=self.cost(name, len(prompt_ids), len(completion_ids)),
            cached=cached,
            finish_reason=record.get("finish_reason", "length"),
        )

    # -- scoring ----------------------------------------------------------------------------
    def token_logprobs(
        self,
        name: str,
        prompt_ids: Sequence[list[int]],
        completion_ids: Sequence[list[int]],
        adapters: Sequence[LoRAAdapter | None] | None = None,
    ) -> list[torch.Tensor]:
        """Differentiable per-token log-probs of completions under model ``name`` (teacher forcing).

        ``adapters`` gives one LoRA (or None) per row; gradients reach its factors.
        """
        backend = self.backend(name)
        if not backend.supports_scoring:
            raise ValueError(f"Model {name!r} ({self.specs[name].backend}) cannot score tokens.")
        if adapters is not None and any(a is not None for a in adapters):
            self._check_open(name)
            return backend.token_logprobs(prompt_ids, completion_ids, adapters=adapters)
        return backend.token_logprobs(prompt_ids, completion_ids)

    def choice_logprobs(self, name: str, request: GenerationRequest, choices: Sequence[str]) -> list[float]:
        """Log-probability of each choice string as the continuation of ``request``'s prompt.

        Used to read an answer letter from small models robustly; cached like generations.
        """
        if not choices:
            raise ValueError("choice_logprobs needs at least one choice.")
        backend = self.backend(name)
        adapter = getattr(request, "adapter", None)
        if adapter is not None:
            self._check_open(name)
        prompt = backend.prompt_ids(request)
        key = ResponseCache.make_key(
            backend.model_id, prompt, {"choices": list(choices)}, self._adapter_digest(request), kind="choice-logprobs"
        )
        hit = self.cache.get(key, model=name)
        if hit is not None:
            return list(hit["logprobs"])
        tokenizer = backend.tokenizer
        continuations = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        with torch.no_grad():
            rows = len(choices)
            if adapter is None:
                per_token = backend.token_logprobs([prompt] * rows, continuations)
            else:
                per_token = backend.token_logprobs([prompt] * rows, continuations, adapters=[adapter] * rows)
        logprobs = [float(t.sum()) for t in per_token]
        self.cache.put(key, name, {"logprobs": logprobs})
        return logprobs

    def loaded_models(self) -> list[str]:
        """Names of the models whose weights are in memory in this process."""
        return [name for name, backend in self.backends.items() if backend.is_loaded()]

    def close(self) -> None:
        self.cache.close()

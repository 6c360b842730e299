"""The LLM pool: batched generation across models, through the response cache."""

from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from routing_gym.errors import UnknownModelError
from routing_gym.llm.backends import Backend, make_backend
from routing_gym.llm.backends.base import Capabilities
from routing_gym.llm.cache import ResponseCache
from routing_gym.llm.lora import LoRAAdapter
from routing_gym.llm.requests import GenerationRequest, GenerationResult, ScoringRequest, ScoringResult
from routing_gym.llm.spec import ModelSpec, resolve_spec

ModelLike = ModelSpec | str | Mapping[str, Any]


class LLMPool:
    """A set of models that answers a batch of requests at once.

    Requests are bucketed by model; each bucket first consults the cache, and only the
    misses run on the model, in batches of at most ``max_batch_size`` (left-padded on a
    local model, sent concurrently to a server). Models load lazily on the first miss,
    once per process. A batch that fails writes nothing to the cache.

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

    def capabilities(self, name: str) -> Capabilities:
        """What model ``name``'s backend offers (white-box or not, how it scores choices)."""
        return self.backend(name).capabilities

    def is_open(self, name: str) -> bool:
        """Whether model ``name`` takes a per-query LoRA: declared open and its weights in this process."""
        return bool(self.specs[name].open) and self.capabilities(name).lora

    def lora_shapes(self, name: str) -> dict[int, tuple[int, int]]:
        """``{layer: (out, in)}`` of model ``name``'s ``o_proj`` layers (loads an open model's weights)."""
        self._check_open(name)
        return self.backend(name).lora_shapes()

    def white_box_model(self, name: str) -> tuple[Any, Any]:
        """Model ``name``'s loaded ``(model, tokenizer)`` (loads its weights); white-box backends only.

        The model is shared by every pool in the process: train a copy, never it.
        """
        return self.backend(name).white_box_model()  # a backend that is not white-box raises, named

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
            ResponseCache.make_key(
                backend.model_id, ids or [], {**r.decoding_params(), **backend.request_key(r)}, self._adapter_digest(r)
            )
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
        order = sorted(pending.values(), key=lambda i: len(prompt_ids[i] or ()))  # similar lengths pad less
        batches = [order[s : s + self.max_batch_size] for s in range(0, len(order), self.max_batch_size)]
        fresh: dict[str, dict] = {}
        for batch in tqdm(batches, desc=f"generate {name}", disable=not self.progress or not batches):
            completions = backend.generate([requests[i] for i in batch], [prompt_ids[i] for i in batch])
            records = []
            for i, completion in zip(batch, completions):
                record = {
                    "text": completion.text,
                    "prompt_ids": prompt_ids[i] or [],
                    "completion_ids": completion.completion_ids,
                    "finish_reason": completion.finish_reason,
                }
                if completion.prompt_tokens is not None:  # a server's usage: its token ids are unknown here
                    record["usage"] = {
                        "prompt_tokens": int(completion.prompt_tokens),
                        "completion_tokens": int(completion.completion_tokens or 0),
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
        if not self.is_open(name):
            why = "open=False" if not self.specs[name].open else f"its {self.specs[name].backend} backend is not white-box"
            raise ValueError(
                f"Model {name!r} is closed ({why}): it cannot take a per-query LoRA adapter; "
                "drop the adapter or route to an open model."
            )

    @staticmethod
    def _adapter_digest(request: GenerationRequest) -> str:
        adapter = getattr(request, "adapter", None)
        return "" if adapter is None else adapter.digest

    def _result(self, name: str, prompt_ids: list[int] | None, record: dict, cached: bool) -> GenerationResult:
        usage = record.get("usage")
        result = GenerationResult(
            model=name,
            text=record["text"],
            prompt_ids=list(prompt_ids or []),
            completion_ids=list(record["completion_ids"]),
            cost=0.0,
            cached=cached,
            finish_reason=record.get("finish_reason", "length"),
            usage=None if usage is None else dict(usage),
        )
        result.cost = self.cost(name, result.prompt_tokens, result.completion_tokens)
        return result

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
        if not self.capabilities(name).token_logprobs:
            raise ValueError(
                f"Model {name!r} ({self.specs[name].backend} backend) is not white-box: it gives no "
                "differentiable token log-probs, so it cannot be trained through; train only the open models."
            )
        if adapters is not None and any(a is not None for a in adapters):
            self._check_open(name)
            return backend.token_logprobs(prompt_ids, completion_ids, adapters=adapters)
        return backend.token_logprobs(prompt_ids, completion_ids)

    def episode_logprob(
        self,
        calls: Sequence[Mapping[str, Any]],
        adapters: Mapping[str, LoRAAdapter | None] | Sequence[LoRAAdapter | None],
        include_unadapted: bool = False,
    ) -> torch.Tensor:
        """Differentiable sum of the token log-probs of an episode's recorded completions.

        ``calls`` are dicts with ``model``, ``prompt_ids`` and ``completion_ids`` (the live env's
        ``info["calls"]``). ``adapters`` is either ``{model: adapter}`` or one adapter per call.
        Calls without an adapter do not depend on the adapters; they are skipped unless
        ``include_unadapted``. Calls of one model are scored in batches of ``max_batch_size``.
        """
        if isinstance(adapters, Mapping):
            per_call = [adapters.get(call["model"]) for call in calls]
        else:
            per_call = list(adapters)
            if len(per_call) != len(calls):
                raise ValueError(f"episode_logprob: {len(per_call)} adapters for {len(calls)} calls.")
        buckets: dict[str, list[int]] = {}
        for index, call in enumerate(calls):
            missing = {"model", "prompt_ids", "completion_ids"} - set(call)
            if missing:
                raise ValueError(f"episode_logprob: call {index} lacks {sorted(missing)}.")
            if not call["completion_ids"] or (per_call[index] is None and not include_unadapted):
                continue
            buckets.setdefault(call["model"], []).append(index)
        terms = []
        for name, indices in buckets.items():
            for start in range(0, len(indices), self.max_batch_size):
                chunk = indices[start : start + self.max_batch_size]
                per_token = self.token_logprobs(
                    name,
                    [list(calls[i]["prompt_ids"]) for i in chunk],
                    [list(calls[i]["completion_ids"]) for i in chunk],
                    adapters=[per_call[i] for i in chunk],
                )
                terms.extend(t.sum() for t in per_token)
        if not terms:
            params = [p for a in per_call if a is not None for p in a.parameters()]
            return torch.zeros((), dtype=params[0].dtype if params else torch.float32)
        return torch.stack([t.to(terms[0].dtype) for t in terms]).sum()

    def choice_logprobs(self, name: str, request: GenerationRequest, choices: Sequence[str]) -> list[float]:
        """Log-probability of each choice string as the continuation of ``request``'s prompt.

        One ``score`` call (cached and priced the same way); episodes read scores through the
        engine, which batches them with ``score``.
        """
        if not choices:
            raise ValueError("choice_logprobs needs at least one choice.")
        if request.model != name:
            request = dataclasses.replace(request, model=name)
        return self.score([ScoringRequest(request, choices)])[0].logprobs

    def score(self, requests: Sequence[ScoringRequest]) -> list[ScoringResult]:
        """Score every request's choices; results come back in request order, priced.

        Like ``generate``: bucketed by model, the cache first, and the misses of one model sent
        to its backend together (``Backend.score_choices_batch``), at most ``max_batch_size``
        choice rows at a time. How a backend reads them is in ``capabilities(name).choice_scoring``.
        """
        results: list[ScoringResult | None] = [None] * len(requests)
        buckets: dict[str, list[int]] = defaultdict(list)
        for index, scoring in enumerate(requests):
            self.backend(scoring.model)  # unknown model fails before any work
            if getattr(scoring.request, "adapter", None) is not None:
                self._check_open(scoring.model)
            buckets[scoring.model].append(index)
        for name, indices in buckets.items():
            for index, result in zip(indices, self._score_bucket(name, [requests[i] for i in indices])):
                results[index] = result
        return results  # type: ignore[return-value]

    def _score_bucket(self, name: str, requests: list[ScoringRequest]) -> list[ScoringResult]:
        backend = self.backends[name]
        prompt_ids = [backend.prompt_ids(s.request) for s in requests]
        keys = [
            ResponseCache.make_key(
                backend.model_id,
                ids or [],
                {"choices": list(s.choices), **backend.request_key(s.request)},
                self._adapter_digest(s.request),
                kind="choice-logprobs",
            )
            for s, ids in zip(requests, prompt_ids)
        ]
        # Entries written before scoring was priced hold no usage: score those again.
        found = {k: v for k, v in self.cache.get_many(keys, model=name).items() if "usage" in v}
        pending: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key not in found and key not in pending:
                pending[key] = index
        batches: list[list[int]] = [[]]
        for index in pending.values():  # at most max_batch_size choice rows per backend call
            rows = sum(len(requests[i].choices) for i in batches[-1])
            if batches[-1] and rows + len(requests[index].choices) > self.max_batch_size:
                batches.append([])
            batches[-1].append(index)
        fresh: dict[str, dict] = {}
        for batch in batches:
            if not batch:
                continue
            scored = backend.score_choices_batch(
                [requests[i].request for i in batch],
                [prompt_ids[i] for i in batch],
                [requests[i].choices for i in batch],
            )
            records = []
            for i, scores in zip(batch, scored):
                record = {
                    "logprobs": [float(x) for x in scores.logprobs],
                    "source": scores.source,
                    "usage": {"prompt_tokens": scores.prompt_tokens, "completion_tokens": scores.completion_tokens},
                }
                fresh[keys[i]] = record
                records.append((keys[i], name, record))
            self.cache.put_many(records)
        out = []
        for key in keys:
            record, cached = (found[key], True) if key in found else (fresh[key], False)
            usage = record["usage"]
            out.append(
                ScoringResult(
                    model=name,
                    logprobs=list(record["logprobs"]),
                    prompt_tokens=int(usage["prompt_tokens"]),
                    completion_tokens=int(usage["completion_tokens"]),
                    cost=self.cost(name, int(usage["prompt_tokens"]), int(usage["completion_tokens"])),
                    cached=cached,
                    source=record.get("source", ""),
                )
            )
        return out

    def loaded_models(self) -> list[str]:
        """Names of the models whose weights are in memory in this process."""
        return [name for name, backend in self.backends.items() if backend.is_loaded()]

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.cache.close()

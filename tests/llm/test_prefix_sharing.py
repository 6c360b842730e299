"""A prompt prefix shared within a batch is prefilled once, and generation is unchanged."""

from dataclasses import replace

import pytest
import torch

from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.backends import prefix_sharing
from routing_gym.llm.backends.prefix_sharing import shared_prefix_lengths
from routing_gym.llm.lora import LoRAAdapter, o_proj_shapes
from routing_gym.llm.spec import BUILTIN_SPECS

SYSTEM = "You answer in one short sentence and never explain. " * 6


def chat(question: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def test_each_row_gets_the_longest_prefix_it_shares_and_keeps_a_token_to_run():
    a, b, c = [1] * 40 + [2, 3], [1] * 40 + [4], [9] * 50
    assert shared_prefix_lengths([a, b, c], min_tokens=8) == [40, 40, 0]
    assert shared_prefix_lengths([a, b, c], min_tokens=41) == [0, 0, 0]
    # Identical prompts share all but their last token; a prefix of another prompt keeps one token.
    assert shared_prefix_lengths([a, list(a), a[:20]], min_tokens=8) == [41, 41, 19]
    assert shared_prefix_lengths([a], min_tokens=1) == [0]


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_shared_prefix_generation_equals_the_plain_batch(model, monkeypatch):
    base = BUILTIN_SPECS[model]
    shared = replace(base, name=f"{model}-shared", options={**base.options, "prefix_min_tokens": 8})
    plain = replace(base, name=f"{model}-plain", options={**base.options, "prefix_sharing": False})
    pool = LLMPool([shared, plain], cache_mode="off")
    # Two groups sharing prefixes of different lengths, a row that shares nothing, and sampling.
    messages = [chat("What is the capital of France?"), chat("Name a prime number."),
                chat("Which ocean is largest?", system="Reply briefly. " * 9),
                chat("Which river is longest?", system="Reply briefly. " * 9), [{"role": "user", "content": "Hi"}]]
    prefilled = []
    original = prefix_sharing.prefilled_batch
    monkeypatch.setattr("routing_gym.llm.backends.transformers_backend.prefilled_batch",
                        lambda *a, **k: prefilled.append(a[2]) or original(*a, **k))
    for temperature in (0.0, 0.9):
        results = {
            spec.name: pool.generate([
                GenerationRequest(model=spec.name, messages=m, max_new_tokens=10, temperature=temperature, seed=7)
                for m in messages
            ])
            for spec in (shared, plain)
        }
        assert [r.completion_ids for r in results[shared.name]] == [r.completion_ids for r in results[plain.name]]
    none, short, _, long_, _ = sorted(prefilled[0])  # the pool orders rows by length
    assert sorted(prefilled[0]) == [none, short, short, long_, long_]
    assert none == 0 and 8 < short < long_
    pool.close()


def test_rows_with_a_lora_adapter_before_the_last_layer_are_never_prefix_shared():
    pool = LLMPool(["tiny-llama"], cache_mode="off")
    backend = pool.backend("tiny-llama")
    prompts = [[5] * 60 + [6], [5] * 60 + [7]]
    assert backend._shared_prefixes(prompts, [None, None]) == [60, 60]
    shapes = o_proj_shapes(backend.model)
    rank = 2
    first, (d_out, d_in) = min(shapes.items())
    factors = {first: (torch.zeros(d_out, rank), torch.zeros(rank, d_in))}
    # Layer 0's o_proj changes what layer 1 reads, hence layer 1's keys and values.
    assert backend._shared_prefixes(prompts, [LoRAAdapter(factors, model="tiny-llama"), None]) == [0, 0]
    last = max(shapes)
    factors = {last: (torch.zeros(d_out, rank), torch.zeros(rank, d_in))}
    assert backend._shared_prefixes(prompts, [LoRAAdapter(factors, model="tiny-llama"), None]) == [60, 60]
    pool.close()


def test_the_store_keeps_prefixes_across_calls_and_extends_a_stored_one(tmp_path):
    import pickle

    base = BUILTIN_SPECS["tiny-qwen2"]
    shared = replace(base, name="stored", options={**base.options, "prefix_min_tokens": 8})
    plain = replace(base, name="plain", options={**base.options, "prefix_sharing": False})
    pool = LLMPool([shared, plain], cache_mode="off")
    store = pool.backend("stored").prefix_store

    def both(questions):
        out = {}
        for spec in (shared, plain):
            out[spec.name] = [r.completion_ids for r in pool.generate(
                [GenerationRequest(model=spec.name, messages=chat(q), max_new_tokens=6) for q in questions])]
        assert out["stored"] == out["plain"]

    both(["What is the capital of France? Say it.", "What is the capital of France? Spell it."])
    first = store.prefilled_tokens
    assert len(store) == 1 and first > 40
    # The next call shares the same prefix: read back from the store, nothing prefilled.
    both(["What is the capital of France? Say it.", "What is the capital of France? Spell it."])
    assert store.prefilled_tokens == first and store.hits == 1
    # Rows that share a longer prefix extend the stored one by the new tokens only, and the
    # stored one stays as it was.
    (key, entry), = store._entries.items()
    snapshot = [(k.clone(), v.clone()) for k, v in entry]
    both(["What is the capital of France? Say it now.", "What is the capital of France? Say it later."])
    assert len(store) == 2 and 0 < store.prefilled_tokens - first < 10
    assert all(torch.equal(k, k0) and torch.equal(v, v0) for (k, v), (k0, v0) in zip(store._entries[key], snapshot))
    # A pickled backend (a subprocess env) starts with an empty store.
    assert pickle.loads(pickle.dumps(pool.backend("stored")))._prefix_store is None
    pool.close()


def test_the_store_drops_the_least_recently_used_prefix_past_its_budget():
    from routing_gym.llm.backends.prefix_sharing import PrefixStore

    pool = LLMPool(["tiny-llama"], cache_mode="off")
    model = pool.backend("tiny-llama").model
    store = PrefixStore(max_bytes=1)
    store.get(model, tuple(range(5, 25)), "cpu")
    store.get(model, tuple(range(30, 50)), "cpu")
    assert len(store) == 1 and tuple(range(30, 50)) in store._entries
    pool.close()


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_letter_scoring_reads_the_stored_prefix_and_equals_the_plain_pass(model):
    base = BUILTIN_SPECS[model]
    stored = replace(base, name=f"{model}-stored", options={**base.options, "prefix_min_tokens": 8})
    plain = replace(base, name=f"{model}-plain", options={**base.options, "prefix_sharing": False})
    pool = LLMPool([stored, plain], cache_mode="off")
    questions = ["Which is red? A. sky B. blood", "Which is wet? A. water B. sand C. salt"]
    scores = {}
    for spec in (stored, plain):
        asks = [GenerationRequest(model=spec.name, messages=chat(q), max_new_tokens=4) for q in questions]
        pool.generate(asks)  # fills the store with the prompts' shared prefix
        scoring = [replace(r, response_prefix="Answer: ", max_new_tokens=1) for r in asks]
        backend = pool.backend(spec.name)
        prompts = [backend.prompt_ids(r) for r in scoring]
        if spec is stored:
            assert min(backend._shared_prefixes(prompts, [None, None])) > 40
            assert all(len(backend.tokenizer(c, add_special_tokens=False)["input_ids"]) == 1 for c in "ABC")
        scores[spec.name] = [s.logprobs for s in backend.score_choices_batch(scoring, prompts, [["A", "B"], ["A", "B", "C"]])]
    for got, want in zip(scores[stored.name], scores[plain.name]):
        assert got == pytest.approx(want, abs=1e-4)
    pool.close()

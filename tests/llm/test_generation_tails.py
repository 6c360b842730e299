"""REINFORCE from the hidden states kept at generation gives the full pass's log-probs and gradients."""

from dataclasses import replace

import pytest
import torch

from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.backends import transformers_backend
from routing_gym.llm.lora import LoRAAdapter, o_proj_shapes
from routing_gym.llm.spec import BUILTIN_SPECS, TINY_LLAMA_CONFIG, TINY_QWEN2_CONFIG

SYSTEM = "You answer in one short sentence and never explain. " * 3
QUESTIONS = ["What is the capital of France?", "Hi", "Name a prime number, please.", "Which ocean is largest?"]
CONFIGS = {"llama": TINY_LLAMA_CONFIG, "qwen2": TINY_QWEN2_CONFIG}


def _pool(arch: str = "llama", cache=None, **options) -> LLMPool:
    """One float64 random model twice: "new" keeps generation's tails, "old" runs the full pass."""
    base = {"config": CONFIGS[arch], "seed": 0, "dtype": "float64", "prefix_min_tokens": 4, **options}
    new = {"name": "new", "location": f"random:{arch}", "options": base}
    old = {"name": "old", "location": f"random:{arch}", "options": {**base, "tail_logprobs": False}}
    transformers_backend._GENERATION_TAILS.clear()  # one store per loaded model, shared by every pool
    return LLMPool([new, old], cache=cache, cache_mode="rw" if cache else "off")


def _adapter(pool: LLMPool, k: int = 1, grad: bool = False) -> LoRAAdapter:
    shapes = o_proj_shapes(pool.backend("new").model)
    return LoRAAdapter.random(shapes, rank=2, k=k, seed=3, scale=2.0, alpha=1.0, dtype=torch.float64,
                              requires_grad=grad)


def _requests(adapters, temperature: float, budgets=(3, 12, 7, 10), stops=((), (), (), ())):
    return [
        GenerationRequest(model="new", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
                          max_new_tokens=n, temperature=temperature, seed=5 + i, stop=s, adapter=a)
        for i, (q, n, s, a) in enumerate(zip(QUESTIONS, budgets, stops, adapters))
    ]


def _score_both(pool: LLMPool, results, k: int = 1):
    """``{name: (log-probs, adapter gradients)}`` of ``results`` under a fresh adapter, new and old."""
    out = {}
    for name in ("new", "old"):
        adapter = _adapter(pool, k=k, grad=True)
        values = pool.token_logprobs(name, [r.prompt_ids for r in results], [r.completion_ids for r in results],
                                     adapters=[adapter] * len(results))
        torch.stack([v.sum() for v in values]).sum().backward()
        out[name] = ([v.detach() for v in values], [p.grad for p in adapter.parameters()])
    return out


def _assert_equal_scores(scores) -> None:
    (new_values, new_grads), (old_values, old_grads) = scores["new"], scores["old"]
    assert [v.shape for v in new_values] == [v.shape for v in old_values]
    # float64 weights, float32 rotary angles counted from different origins: ~1e-8, not the last bit.
    for a, b in zip(new_values, old_values):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)
    assert all(g.abs().sum() > 0 for g in old_grads)
    for a, b in zip(new_grads, old_grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * float(b.abs().max()))


def _served() -> int:
    return transformers_backend.profile("new").rows_tail_from_generation


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("decode", ["compact", "lockstep"])
@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_logprobs_and_gradients_from_generation_equal_the_full_pass(arch, decode, temperature):
    pool = _pool(arch, decode=decode)
    adapter = _adapter(pool)
    results = pool.generate(_requests([adapter, None, adapter, adapter], temperature))
    # Prompts of different lengths (left padding), rows that stop at different steps.
    assert len({len(r.prompt_ids) for r in results}) == 4
    assert len({len(r.completion_ids) for r in results}) > 2
    backend = pool.backend("new")
    assert len(backend.generation_tails) == 3  # only the rows with an adapter
    assert not any(t.is_inference() for entry in backend.generation_tails._entries.values() for t in entry)
    transformers_backend.reset_profiles()
    adapted = [results[0], results[2], results[3]]
    scores = _score_both(pool, adapted)
    assert _served() == 3
    assert transformers_backend.profile("new").scoring_tokens == sum(len(r.completion_ids) for r in adapted)
    _assert_equal_scores(scores)
    pool.close()


@pytest.mark.parametrize("decode", ["compact", "lockstep"])
def test_a_completion_cut_at_a_stop_string_is_served_from_generation(decode):
    pool = _pool(decode=decode)
    adapter = _adapter(pool)
    adapters = [adapter] * 4
    free = pool.generate(_requests(adapters, 0.0, budgets=(12, 12, 12, 12)))
    # A stop string taken from the middle of row 2's own answer cuts that row short.
    text = free[2].text
    stop = next(c for c in text[3:] if c.strip())
    stops = ((), (), (stop,), ())
    results = pool.generate(_requests(adapters, 0.0, budgets=(12, 12, 12, 12), stops=stops))
    assert results[2].finish_reason == "stop" and len(results[2].completion_ids) < len(free[2].completion_ids)
    assert results[2].completion_ids == free[2].completion_ids[: len(results[2].completion_ids)]
    transformers_backend.reset_profiles()
    _assert_equal_scores(_score_both(pool, results))
    assert _served() == 4
    pool.close()


def test_completions_from_a_warm_response_cache_fall_back_to_the_tail_pass(tmp_path):
    cold = _pool(cache=tmp_path / "cache.sqlite")
    cold.generate(_requests([_adapter(cold)] * 4, 0.9))
    cold.close()
    warm = _pool(cache=tmp_path / "cache.sqlite")  # a new process: its backend kept no tails
    results = warm.generate(_requests([_adapter(warm)] * 4, 0.9))
    assert all(r.cached for r in results) and len(warm.backend("new").generation_tails) == 0
    transformers_backend.reset_profiles()
    _assert_equal_scores(_score_both(warm, results))
    assert _served() == 0
    warm.close()


def test_one_evicted_row_sends_the_whole_batch_to_the_tail_pass_with_the_same_values():
    pool = _pool(generation_tails_mb=0)  # a store that keeps nothing
    results = pool.generate(_requests([_adapter(pool)] * 4, 0.0))
    assert len(pool.backend("new").generation_tails) == 0
    transformers_backend.reset_profiles()
    _assert_equal_scores(_score_both(pool, results))
    assert _served() == 0
    pool.close()
    pool = _pool()
    results = pool.generate(_requests([_adapter(pool)] * 4, 0.0))
    store = pool.backend("new").generation_tails
    store._entries.popitem(last=False)  # the least recently used row's tail is gone
    transformers_backend.reset_profiles()
    _assert_equal_scores(_score_both(pool, results))
    assert _served() == 0
    pool.close()


def test_adapters_below_the_last_layer_keep_no_tails_and_score_with_the_full_pass():
    pool = _pool()
    two = _adapter(pool, k=2)
    results = pool.generate(_requests([two] * 4, 0.0))
    assert len(pool.backend("new").generation_tails) == 0
    transformers_backend.reset_profiles()
    _assert_equal_scores(_score_both(pool, results, k=2))
    assert _served() == 0
    pool.close()


def test_a_model_type_without_a_checked_tail_falls_back(monkeypatch):
    monkeypatch.setattr(transformers_backend, "TAIL_LAYER_TYPES", ("qwen2",))  # llama unchecked
    pool = _pool("llama")
    results = pool.generate(_requests([_adapter(pool)] * 4, 0.0))
    assert len(pool.backend("new").generation_tails) == 0
    transformers_backend.reset_profiles()
    _assert_equal_scores(_score_both(pool, results))
    assert _served() == 0
    pool.close()


def test_the_option_off_keeps_no_tails():
    pool = _pool(tail_from_generation=False)
    pool.generate(_requests([_adapter(pool)] * 4, 0.0))
    assert len(pool.backend("new").generation_tails) == 0
    pool.close()


@pytest.mark.slow
def test_smollm2_logprobs_and_gradients_from_generation_equal_the_full_pass():
    base = BUILTIN_SPECS["smollm2-135m"]
    options = {**base.options, "dtype": "float32"}
    new = replace(base, name="new", options=options)
    old = replace(base, name="old", options={**options, "tail_logprobs": False})
    pool = LLMPool([new, old], cache_mode="off")
    shapes = o_proj_shapes(pool.backend("new").model)

    def adapter(grad: bool = False) -> LoRAAdapter:
        return LoRAAdapter.random(shapes, rank=8, k=1, seed=0, scale=1.0, alpha=0.05, requires_grad=grad)

    questions = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 3?",
                 "Write a haiku about rain.", "Who wrote Hamlet?", "Spell 'cat' backwards."]
    budgets = [24, 6, 24, 40, 24, 12]
    requests = [GenerationRequest(model="new", messages=[{"role": "user", "content": q}], max_new_tokens=n,
                                  stop=("\n",), adapter=adapter()) for q, n in zip(questions, budgets)]
    results = [r for r in pool.generate(requests) if r.completion_ids]
    assert len({len(r.completion_ids) for r in results}) > 2  # rows did stop at different steps
    transformers_backend.reset_profiles()
    scores = {}
    for name in ("new", "old"):
        a = adapter(grad=True)
        values = pool.token_logprobs(name, [r.prompt_ids for r in results], [r.completion_ids for r in results],
                                     adapters=[a] * len(results))
        torch.stack([v.sum() for v in values]).sum().backward()
        scores[name] = ([v.detach() for v in values], [p.grad for p in a.parameters()])
    assert _served() == len(results)
    for a, b in zip(scores["new"][0], scores["old"][0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(scores["new"][1], scores["old"][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))
    pool.close()


def test_a_second_pool_of_the_same_model_scores_from_the_first_pools_generation():
    """HAPS plays episodes in lockstep env copies (a pool each) and scores them through another
    env's pool: the kept tails belong to the loaded model, not to one pool."""
    player = _pool("qwen2")
    scorer = _pool("qwen2")
    assert player.backend("new") is not scorer.backend("new")
    adapter = _adapter(player)
    results = player.generate(_requests([adapter, None, adapter, adapter], 0.0))
    with_tails = [r for r in results if len(r.completion_ids) > 0]
    transformers_backend.reset_profiles()
    scorer.token_logprobs("new", [r.prompt_ids for r in with_tails[2:]], [r.completion_ids for r in with_tails[2:]],
                          adapters=[_adapter(scorer, grad=True)] * len(with_tails[2:]))
    assert _served() == len(with_tails[2:]) > 0

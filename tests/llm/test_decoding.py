"""The compact decode, LoRA rows on shared prefixes and REINFORCE through the tail equal the old paths."""

from dataclasses import replace

import pytest
import torch

from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.backends import transformers_backend
from routing_gym.llm.lora import LoRAAdapter, o_proj_shapes
from routing_gym.llm.spec import BUILTIN_SPECS, TINY_LLAMA_CONFIG

SYSTEM = "You answer in one short sentence and never explain. " * 6


def chat(question: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def _pair(model: str, **options):
    """Two specs of one model (same weights, one load): the new defaults and the old paths."""
    base = BUILTIN_SPECS[model]
    new = replace(base, name=f"{model}-new", options={**base.options, "prefix_min_tokens": 8, **options})
    old = replace(base, name=f"{model}-old", options={**base.options, "prefix_min_tokens": 8, "decode": "lockstep",
                                                      "lora_prefix_sharing": False, "tail_logprobs": False})
    return new, old


def _requests(name: str, temperature: float, adapters=None):
    questions = ["What is the capital of France?", "Name a prime number.", "Which ocean is largest?", "Hi"]
    budgets = [3, 12, 7, 12]
    stops = [(), ("e",), (), (" ",)]  # rows stop at different steps
    adapters = adapters or [None] * len(questions)
    return [
        GenerationRequest(model=name, messages=chat(q), max_new_tokens=n, temperature=temperature, seed=3 + i,
                          stop=s, adapter=a)
        for i, (q, n, s, a) in enumerate(zip(questions, budgets, stops, adapters))
    ]


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_dropping_finished_rows_gives_the_lockstep_tokens_and_computes_only_useful_steps(model):
    new, old = _pair(model)
    pool = LLMPool([new, old], cache_mode="off")
    shapes = o_proj_shapes(pool.backend(new.name).model)
    adapter = LoRAAdapter.random(shapes, rank=4, k=2, seed=1, scale=0.5, alpha=0.5)
    for temperature in (0.0, 0.9):
        for adapters in (None, [adapter, None, adapter, None]):
            transformers_backend.reset_profiles()
            got = {s.name: pool.generate(_requests(s.name, temperature, adapters)) for s in (new, old)}
            assert [r.completion_ids for r in got[new.name]] == [r.completion_ids for r in got[old.name]]
            assert [r.text for r in got[new.name]] == [r.text for r in got[old.name]]
            fresh, lockstep = transformers_backend.PROFILES[new.name], transformers_backend.PROFILES[old.name]
            # The same rows needed the same steps; only the lockstep batch computed more.
            assert fresh.row_steps_useful == lockstep.row_steps_useful
            assert fresh.row_steps_computed == fresh.row_steps_useful
            assert lockstep.row_steps_computed == 4 * lockstep.decode_steps > lockstep.row_steps_useful
    pool.close()


def test_an_unknown_decode_mode_is_refused_by_name():
    spec = replace(BUILTIN_SPECS["tiny-llama"], options={**BUILTIN_SPECS["tiny-llama"].options, "decode": "fast"})
    pool = LLMPool([spec], cache_mode="off")
    with pytest.raises(Exception, match="unknown decode 'fast'"):
        pool.generate([GenerationRequest(model="tiny-llama", prompt="hi", max_new_tokens=2)])
    pool.close()


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-qwen2"])
def test_rows_with_a_last_layer_lora_share_prefixes_and_decode_as_unshared(model, monkeypatch):
    new, old = _pair(model)
    pool = LLMPool([new, old], cache_mode="off")
    backend = pool.backend(new.name)
    shapes = o_proj_shapes(backend.model)
    last = LoRAAdapter.random(shapes, rank=4, k=1, seed=1, scale=2.0, alpha=1.0)
    two = LoRAAdapter.random(shapes, rank=4, k=2, seed=2, scale=2.0, alpha=1.0)
    prompts = [[5] * 60 + [6], [5] * 60 + [7]]
    # The last layer's o_proj acts after that layer's keys and values: every layer's cache is the base one.
    assert backend._shared_prefixes(prompts, [last, None]) == [60, 60]
    # An adapter one layer earlier changes the next layer's keys and values: no sharing.
    assert backend._shared_prefixes(prompts, [last, two]) == [0, 0]
    assert pool.backend(old.name)._shared_prefixes(prompts, [last, None]) == [0, 0]
    shared = []
    original = transformers_backend.prefilled_batch
    monkeypatch.setattr(transformers_backend, "prefilled_batch", lambda *a, **k: shared.append(a[2]) or original(*a, **k))
    adapters = [last, None, last, None]
    for temperature in (0.0, 0.9):
        got = {s.name: pool.generate(_requests(s.name, temperature, adapters)) for s in (new, old)}
        assert [r.completion_ids for r in got[new.name]] == [r.completion_ids for r in got[old.name]]
    assert shared and all(min(lengths) > 8 for lengths in shared)  # only the new path shared, and every row
    # The adapter matters: without it the rows decode otherwise.
    plain = pool.generate(_requests(new.name, 0.0))
    assert [r.completion_ids for r in plain] != [r.completion_ids for r in got[new.name]]
    pool.close()


def _float64_pair():
    """tiny-llama in float64 twice: the tail path (new) and the full pass (old)."""
    options = {"config": TINY_LLAMA_CONFIG, "seed": 0, "dtype": "float64", "prefix_min_tokens": 4}
    new = {"name": "f64-new", "location": "random:llama", "options": options}
    old = {"name": "f64-old", "location": "random:llama", "options": {**options, "tail_logprobs": False}}
    return LLMPool([new, old], cache_mode="off")


def test_reinforce_through_the_last_layer_only_gives_the_full_pass_logprobs_and_gradients():
    pool = _float64_pair()
    model = pool.backend("f64-new").model
    shapes = o_proj_shapes(model)
    prompts = [[5, 9, 11, 40, 41, 42, 43], [60, 61], [5, 9, 11, 40, 41, 7, 7, 7, 7, 7]]
    completions = [[7, 8, 100], [62, 63, 64, 65, 66], [3]]
    results = {}
    for name in ("f64-new", "f64-old"):
        adapter = LoRAAdapter.random(shapes, rank=2, k=1, seed=3, scale=0.3, alpha=0.5,
                                     dtype=torch.float64, requires_grad=True)
        values = pool.token_logprobs(name, prompts, completions, adapters=[adapter, None, adapter])
        torch.stack([v.sum() for v in values]).sum().backward()
        results[name] = ([v.detach() for v in values], [p.grad for p in adapter.parameters()])
    (new_values, new_grads), (old_values, old_grads) = results["f64-new"], results["f64-old"]
    assert [v.shape for v in new_values] == [torch.Size([3]), torch.Size([5]), torch.Size([1])]
    # float64 weights, but the rotary angles are float32: the old pass counts positions from the
    # padding's end, the new from each row's start, so they agree to ~1e-9, not to the last bit.
    for a, b in zip(new_values, old_values):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    assert all(g.abs().sum() > 0 for g in old_grads)
    for a, b in zip(new_grads, old_grads):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * float(b.abs().max()))
    pool.close()


def test_the_tail_path_runs_only_the_completions_with_autograd_and_only_for_last_layer_adapters(monkeypatch):
    pool = _float64_pair()
    backend = pool.backend("f64-new")
    shapes = o_proj_shapes(backend.model)
    last = LoRAAdapter.random(shapes, rank=2, k=1, seed=3, dtype=torch.float64, requires_grad=True)
    two = LoRAAdapter.random(shapes, rank=2, k=2, seed=3, dtype=torch.float64, requires_grad=True)
    seen = []
    forward = backend.model.forward
    monkeypatch.setattr(backend.model, "forward",
                        lambda *a, **k: seen.append((torch.is_grad_enabled(), k["input_ids"].shape)) or forward(*a, **k))
    prompts, completions = [[5] * 30 + [6], [5] * 30 + [8, 9]], [[7, 8], [1, 2, 3]]
    pool.token_logprobs("f64-new", prompts, completions, adapters=[last, None])
    # Two prompts without their last token, each run once with no gradient; then 1 + 3 columns with it.
    assert seen == [(False, torch.Size([1, 30])), (False, torch.Size([1, 31])), (True, torch.Size([2, 4]))]
    seen.clear()
    pool.token_logprobs("f64-new", prompts, completions, adapters=[two, None])
    assert seen == [(True, torch.Size([2, 35]))]  # k = 2: the full pass over prompt and completion, as before
    pool.close()


@pytest.mark.slow
def test_smollm2_compact_decode_and_reinforce_tail_equal_the_old_paths():
    new, old = _pair("smollm2-135m")
    new = replace(new, options={**new.options, "dtype": "float32"})
    old = replace(old, options={**old.options, "dtype": "float32"})
    pool = LLMPool([new, old], cache_mode="off")
    questions = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 3?",
                 "Write a haiku about rain.", "Who wrote Hamlet?", "Spell 'cat' backwards."]
    budgets = [24, 6, 24, 40, 24, 12]
    got = {}
    for spec in (new, old):
        requests = [GenerationRequest(model=spec.name, messages=chat(q), max_new_tokens=n, stop=("\n",))
                    for q, n in zip(questions, budgets)]
        got[spec.name] = pool.generate(requests)
    assert [r.completion_ids for r in got[new.name]] == [r.completion_ids for r in got[old.name]]
    assert len({len(r.completion_ids) for r in got[new.name]}) > 2  # rows did stop at different steps
    shapes = o_proj_shapes(pool.backend(new.name).model)
    prompts = [r.prompt_ids for r in got[new.name]]
    completions = [r.completion_ids or [2] for r in got[new.name]]
    results = {}
    for spec in (new, old):
        adapter = LoRAAdapter.random(shapes, rank=8, k=1, seed=0, scale=1.0, alpha=0.05, requires_grad=True)
        values = pool.token_logprobs(spec.name, prompts, completions, adapters=[adapter] * len(prompts))
        torch.stack([v.sum() for v in values]).sum().backward()
        results[spec.name] = ([v.detach() for v in values], [p.grad for p in adapter.parameters()])
    for a, b in zip(results[new.name][0], results[old.name][0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(results[new.name][1], results[old.name][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))
    pool.close()

"""Per-query LoRA on o_proj: batched injection, exact detach, gradients, PEFT export, pool caching."""

import copy

import pytest
import torch

from routing_gym.llm import GenerationRequest, LLMPool, ResponseCache
from routing_gym.llm.lora import (
    LoRAAdapter,
    LoRAInjector,
    export_peft,
    o_proj_modules,
    o_proj_shapes,
    target_layers,
)
from routing_gym.llm.spec import TINY_LLAMA_CONFIG

FAMILIES = ["tiny-llama", "tiny-qwen2", "tiny-gemma3"]


def _tiny_gemma3():
    """A random two-layer Gemma3 whose o_proj is 48 x 64 (in != out), built offline."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    config = Gemma3TextConfig(
        vocab_size=300, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=256, sliding_window=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model = Gemma3ForCausalLM(config)
    return model.eval().requires_grad_(False)


_MODELS = {}


def tiny_model(family: str):
    if family not in _MODELS:
        if family == "tiny-gemma3":
            _MODELS[family] = _tiny_gemma3()
        else:
            backend = LLMPool([family]).backend(family)
            backend.tokenizer  # noqa: B018 - loads before the model, as the pool does
            _MODELS[family] = backend.model
    return _MODELS[family]


def _batch(vocab: int, lengths, seed=0):
    """Left-padded random token rows of the given lengths."""
    generator = torch.Generator().manual_seed(seed)
    rows = [torch.randint(3, vocab, (n,), generator=generator) for n in lengths]
    width = max(lengths)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = row
        mask[i, width - len(row):] = 1
    return rows, ids, mask


def _merged_copy(model, adapter):
    """The per-sample reference: a deep copy with W + alpha * A @ B written into its o_proj weights."""
    merged = copy.deepcopy(model)
    modules = o_proj_modules(merged)
    with torch.no_grad():
        for layer, (a, b) in adapter.factors.items():
            weight = modules[layer][1].weight
            weight += (adapter.alpha * a.double() @ b.double()).to(weight.dtype)
    return merged


def _mixed_adapters(model):
    shapes = o_proj_shapes(model)
    last = LoRAAdapter.random(shapes, rank=8, k=1, seed=1, scale=0.5, alpha=0.5)
    every = LoRAAdapter.random(shapes, rank=4, k="all", seed=2, scale=0.5, alpha=0.3)
    return [last, None, every, last]


# -- shapes and layers ---------------------------------------------------------------------
def test_target_layers_are_the_last_k_or_all():
    assert target_layers(30, 1) == [29]
    assert target_layers(18, 3) == [15, 16, 17]
    assert target_layers(4, "all") == [0, 1, 2, 3]
    for bad in (0, 5, -1, "last", 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            target_layers(4, bad)


def test_o_proj_shapes_come_from_the_modules_including_in_not_equal_out():
    assert o_proj_shapes(tiny_model("tiny-gemma3")) == {0: (48, 64), 1: (48, 64)}
    assert o_proj_shapes(tiny_model("tiny-qwen2")) == {0: (48, 48), 1: (48, 48), 2: (48, 48)}
    names = [name for name, _ in o_proj_modules(tiny_model("tiny-llama")).values()]
    assert names == ["model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj"]


def test_random_adapter_targets_the_last_k_layers_with_the_model_shapes():
    adapter = LoRAAdapter.random(o_proj_shapes(tiny_model("tiny-gemma3")), rank=3, k=1, seed=0)
    assert adapter.layers == [1] and adapter.rank == 3 and adapter.alpha == 0.01
    a, b = adapter.factors[1]
    assert tuple(a.shape) == (48, 3) and tuple(b.shape) == (3, 64)
    again = LoRAAdapter.random(o_proj_shapes(tiny_model("tiny-gemma3")), rank=3, k=1, seed=0)
    assert again.digest == adapter.digest


def test_from_tensors_maps_a_stack_to_the_last_k_layers():
    a, b = torch.randn(2, 6, 2), torch.randn(2, 2, 4)
    adapter = LoRAAdapter.from_tensors(a, b, num_layers=5, k=2, alpha=0.1)
    assert adapter.layers == [3, 4]
    assert torch.equal(adapter.factors[4][0], a[1])
    with pytest.raises(ValueError, match="k=3 targets layers"):
        LoRAAdapter.from_tensors(a, b, num_layers=5, k=3)


# -- digest --------------------------------------------------------------------------------
def _fixed_adapter(alpha=0.01, layer=1, dtype=torch.float32):
    a = (torch.arange(12, dtype=torch.float32).reshape(6, 2) / 10).to(dtype)
    b = (torch.arange(8, dtype=torch.float32).reshape(2, 4) / 10).to(dtype)
    return LoRAAdapter({layer: (a, b)}, alpha=alpha)


def test_digest_is_fixed_across_processes_and_sensitive_to_every_input():
    # A literal: any process, any machine must compute the same key for the same factors.
    assert _fixed_adapter().digest == "53edbf98c2e222385884c822601317d30b4da53d265cb6177082b29c248ed7d9"
    base = _fixed_adapter()
    changed = _fixed_adapter()
    changed.factors[1][1][0, 0] += 1e-7  # in place, as an optimizer step would
    others = [changed, _fixed_adapter(alpha=0.02), _fixed_adapter(layer=2), _fixed_adapter(dtype=torch.float64)]
    digests = {base.digest} | {o.digest for o in others}
    assert len(digests) == 1 + len(others)


def test_adapter_pickles_and_copies_with_the_same_digest():
    import pickle

    adapter = _fixed_adapter(alpha=0.3)
    for clone in (pickle.loads(pickle.dumps(adapter)), copy.deepcopy(adapter)):
        assert clone.digest == adapter.digest and clone.alpha == 0.3 and clone.layers == [1]
    request = GenerationRequest(model="tiny-llama", prompt="x", adapter=adapter)
    assert pickle.loads(pickle.dumps(request)).adapter.digest == adapter.digest


# -- batched injection vs merged weights ---------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_batched_injection_equals_per_sample_merged_weights(family):
    model = tiny_model(family)
    adapters = _mixed_adapters(model)
    rows, ids, mask = _batch(model.config.vocab_size, [7, 5, 9, 4], seed=3)
    injector = LoRAInjector(model, name=family)
    with torch.no_grad():
        base = model(input_ids=ids, attention_mask=mask).logits
        with injector.apply(adapters):
            batched = model(input_ids=ids, attention_mask=mask).logits
    width = ids.shape[1]
    for i, (row, adapter) in enumerate(zip(rows, adapters)):
        got = batched[i, width - len(row):]
        if adapter is None:
            # Rows without an adapter skip the matmuls and keep the base output bit for bit.
            assert torch.equal(got, base[i, width - len(row):])
            continue
        with torch.no_grad():
            reference = _merged_copy(model, adapter)(input_ids=row[None]).logits[0]
            plain = model(input_ids=row[None]).logits[0]
        assert not torch.allclose(reference, plain, atol=1e-3), "the adapter must change the logits"
        torch.testing.assert_close(got, reference, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["tiny-llama", "tiny-gemma3"])
def test_generation_with_kv_cache_matches_merged_weights_per_row(family):
    model = tiny_model(family)
    adapters = _mixed_adapters(model)[:3]
    rows, ids, mask = _batch(model.config.vocab_size, [6, 3, 8], seed=4)
    settings = dict(max_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True,
                    pad_token_id=0, eos_token_id=None)
    with torch.no_grad(), LoRAInjector(model, name=family).apply(adapters):
        batched = model.generate(input_ids=ids, attention_mask=mask, **settings)
    for i, (row, adapter) in enumerate(zip(rows, adapters)):
        single = _merged_copy(model, adapter) if adapter is not None else model
        with torch.no_grad():
            alone = single.generate(input_ids=row[None], attention_mask=torch.ones_like(row)[None], **settings)
        assert batched.sequences[i, ids.shape[1]:].tolist() == alone.sequences[0, len(row):].tolist()
        for step_batched, step_alone in zip(batched.scores, alone.scores):  # prefill, then L=1 decode steps
            torch.testing.assert_close(step_batched[i], step_alone[0], atol=2e-5, rtol=1e-4)


# -- detach --------------------------------------------------------------------------------
def test_detach_restores_the_base_logits_bit_for_bit_even_after_an_exception():
    model = tiny_model("tiny-qwen2")
    _, ids, mask = _batch(model.config.vocab_size, [5, 7], seed=5)
    injector = LoRAInjector(model, name="tiny-qwen2")
    adapters = [LoRAAdapter.random(injector.shapes, k="all", seed=9, scale=0.5, alpha=0.5)] * 2
    weights = {i: m.weight.clone() for i, (_, m) in injector.modules.items()}
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        with injector.apply(adapters):
            during = model(input_ids=ids, attention_mask=mask).logits
        with pytest.raises(RuntimeError, match="boom"):
            with injector.apply(adapters):
                raise RuntimeError("boom")
        after = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(before, during)
    assert torch.equal(before, after)
    assert all(not m._forward_hooks for _, m in injector.modules.values())
    assert all(torch.equal(weights[i], m.weight) for i, (_, m) in injector.modules.items())


def test_a_batch_of_another_size_inside_the_context_is_refused():
    model = tiny_model("tiny-llama")
    injector = LoRAInjector(model, name="tiny-llama")
    adapter = LoRAAdapter.random(injector.shapes, seed=0)
    _, ids, mask = _batch(model.config.vocab_size, [4, 4, 4], seed=0)
    with torch.no_grad(), injector.apply([adapter, None]):
        with pytest.raises(RuntimeError, match="batch of 2 rows, but the forward pass has 3"):
            model(input_ids=ids, attention_mask=mask)


# -- validation ----------------------------------------------------------------------------
def test_bad_adapters_are_rejected_naming_the_model_and_the_layer():
    injector = LoRAInjector(tiny_model("tiny-gemma3"), name="tiny-gemma3")
    transposed = LoRAAdapter({1: (torch.randn(64, 8), torch.randn(8, 48))})
    with pytest.raises(ValueError, match=r"tiny-gemma3 layer 1 o_proj: A has shape \(64, 8\), expected \(48, 8\)"):
        injector.check(transposed)
    wrong_b = LoRAAdapter({0: (torch.randn(48, 8), torch.randn(8, 48))})
    with pytest.raises(ValueError, match=r"tiny-gemma3 layer 0 o_proj: B has shape \(8, 48\), expected \(8, 64\)"):
        injector.check(wrong_b)
    out_of_range = LoRAAdapter({2: (torch.randn(48, 8), torch.randn(8, 64))})
    with pytest.raises(ValueError, match=r"tiny-gemma3 layer 2 o_proj: layer index out of range.*0\.\.1"):
        with injector.apply([out_of_range]):
            pass
    for value, word in ((float("nan"), "NaN"), (float("inf"), "inf")):
        a = torch.randn(48, 8)
        a[3, 1] = value
        with pytest.raises(ValueError, match=f"tiny-gemma3 layer 1 o_proj: A contains {word}"):
            LoRAAdapter({1: (a, torch.randn(8, 64))}, model="tiny-gemma3")
    # Factors edited in place after construction are checked again when attached.
    good = LoRAAdapter.random(injector.shapes, seed=0)
    good.factors[1][1][0, 0] = float("nan")
    with pytest.raises(ValueError, match="tiny-gemma3 layer 1 o_proj: B contains NaN"):
        injector.check(good)
    with pytest.raises(ValueError, match="made for model 'tiny-llama' cannot be attached to 'tiny-gemma3'"):
        injector.check(LoRAAdapter.random(injector.shapes, model="tiny-llama"))
    with pytest.raises(ValueError, match="layer 1 o_proj: A has shape .* and B .*rank"):
        LoRAAdapter({1: (torch.randn(48, 8), torch.randn(4, 64))})
    assert not any(m._forward_hooks for _, m in injector.modules.values())


def test_a_closed_model_refuses_an_adapter_by_name():
    spec = {"name": "closed-llama", "location": "random:llama", "open": False,
            "options": {"config": TINY_LLAMA_CONFIG, "seed": 0}}
    pool = LLMPool([spec])
    adapter = LoRAAdapter({1: (torch.randn(64, 2), torch.randn(2, 64))})
    request = GenerationRequest(model="closed-llama", prompt="hi", max_new_tokens=2, adapter=adapter)
    with pytest.raises(ValueError, match="Model 'closed-llama' is closed"):
        pool.generate([request])
    with pytest.raises(ValueError, match="Model 'closed-llama' is closed"):
        pool.token_logprobs("closed-llama", [[5, 6]], [[7]], adapters=[adapter])
    with pytest.raises(ValueError, match="Model 'closed-llama' is closed"):
        pool.choice_logprobs("closed-llama", request, ["A", "B"])
    with pytest.raises(ValueError, match="Model 'closed-llama' is closed"):
        LoRAInjector(tiny_model("tiny-llama"), name="closed-llama", open=False).check(adapter)
    assert pool.generate([GenerationRequest(model="closed-llama", prompt="hi", max_new_tokens=2)])[0].completion_ids


# -- gradients -----------------------------------------------------------------------------
def _float64_rms_norm(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def test_episode_logprob_gradient_matches_finite_differences(monkeypatch):
    from transformers.models.llama import modeling_llama

    # Llama's RMSNorm rounds activations to float32 even in a float64 model; that noise
    # would swamp central differences, so the check runs the norm in float64.
    monkeypatch.setattr(modeling_llama.LlamaRMSNorm, "forward", _float64_rms_norm)
    spec = {"name": "tiny-llama-f64", "location": "random:llama",
            "options": {"config": TINY_LLAMA_CONFIG, "seed": 0, "dtype": "float64"}}
    pool = LLMPool([spec, "tiny-qwen2"])
    model = pool.backend("tiny-llama-f64").model
    assert model.dtype == torch.float64
    shapes = o_proj_shapes(model)
    adapter = LoRAAdapter.random(shapes, rank=2, k="all", seed=3, scale=0.3, alpha=0.5,
                                 dtype=torch.float64, requires_grad=True)
    calls = [
        {"model": "tiny-llama-f64", "prompt_ids": [5, 9, 11, 40], "completion_ids": [7, 8, 100], "role": "x"},
        {"model": "tiny-qwen2", "prompt_ids": [5, 6], "completion_ids": [9]},  # no adapter: skipped
        {"model": "tiny-llama-f64", "prompt_ids": [60, 61], "completion_ids": [62, 63, 64, 65]},
    ]
    adapters = {"tiny-llama-f64": adapter}
    value = pool.episode_logprob(calls, adapters)
    value.backward()
    params = adapter.parameters()
    grads = [p.grad.clone() for p in params]
    assert all(g.abs().sum() > 0 for g in grads)

    expected = sum(float(t.detach().sum()) for t in pool.token_logprobs(
        "tiny-llama-f64", [calls[0]["prompt_ids"], calls[2]["prompt_ids"]],
        [calls[0]["completion_ids"], calls[2]["completion_ids"]], adapters=[adapter, adapter]))
    assert float(value.detach()) == pytest.approx(expected, rel=1e-12)

    generator = torch.Generator().manual_seed(0)
    eps = 1e-6
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=generator, dtype=torch.float64) for p in params]
        with torch.no_grad():
            for p, d in zip(params, direction):
                p += eps * d
            plus = float(pool.episode_logprob(calls, adapters))
            for p, d in zip(params, direction):
                p -= 2 * eps * d
            minus = float(pool.episode_logprob(calls, adapters))
            for p, d in zip(params, direction):
                p += eps * d
        numeric = (plus - minus) / (2 * eps)
        analytic = float(sum((g * d).sum() for g, d in zip(grads, direction)))
        assert analytic == pytest.approx(numeric, rel=1e-7, abs=1e-9)


def test_episode_logprob_takes_one_adapter_per_call():
    pool = LLMPool(["tiny-llama"])
    shapes = o_proj_shapes(tiny_model("tiny-llama"))
    first = LoRAAdapter.random(shapes, seed=1, scale=0.5, alpha=0.5, requires_grad=True)
    second = LoRAAdapter.random(shapes, seed=2, scale=0.5, alpha=0.5, requires_grad=True)
    calls = [{"model": "tiny-llama", "prompt_ids": [5, 6, 7], "completion_ids": [8, 9]}] * 2
    value = pool.episode_logprob(calls, [first, second])
    value.backward()
    assert first.factors[1][0].grad is not None and second.factors[1][0].grad is not None
    with torch.no_grad():
        alone = [float(pool.episode_logprob(calls[:1], [a])) for a in (first, second)]
    assert float(value.detach()) == pytest.approx(sum(alone), rel=1e-5)
    assert alone[0] != alone[1]
    assert float(pool.episode_logprob(calls, {})) == 0.0


# -- PEFT export ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["tiny-llama", "tiny-gemma3"])
def test_peft_export_round_trips_to_the_same_logits(family, tmp_path):
    from peft import PeftModel

    model = tiny_model(family)
    adapter = LoRAAdapter.random(o_proj_shapes(model), rank=4, k="all", seed=7, scale=0.5, alpha=0.4)
    folder = export_peft(adapter, model, tmp_path / "adapter", name=family)
    assert {p.name for p in folder.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    _, ids, mask = _batch(model.config.vocab_size, [6, 6], seed=8)
    with torch.no_grad():
        with LoRAInjector(model, name=family).apply([adapter, adapter]):
            ours = model(input_ids=ids, attention_mask=mask).logits
        peft_model = PeftModel.from_pretrained(copy.deepcopy(model), str(folder)).eval()
        theirs = peft_model(input_ids=ids, attention_mask=mask).logits
        base = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(base, ours, atol=1e-3)
    torch.testing.assert_close(theirs, ours, atol=2e-5, rtol=1e-4)


# -- the pool ------------------------------------------------------------------------------
def _strong(model_name, seed):
    return LoRAAdapter.random(o_proj_shapes(tiny_model(model_name)), k="all", seed=seed, scale=0.5, alpha=1.0)


def test_pool_cache_never_mixes_adapters(tmp_path):
    pool = LLMPool(["tiny-llama"], cache=tmp_path / "responses.sqlite")
    first, second = _strong("tiny-llama", 1), _strong("tiny-llama", 2)
    make = lambda adapter: GenerationRequest(model="tiny-llama", prompt="same prompt", max_new_tokens=8,
                                             adapter=adapter)
    fresh = {}
    for label, adapter in (("first", first), ("second", second), ("none", None)):
        result = pool.generate([make(adapter)])[0]
        assert not result.cached, f"{label}: a different adapter must miss the cache"
        fresh[label] = result.completion_ids
    assert len({tuple(ids) for ids in fresh.values()}) == 3
    for label, adapter in (("first", first), ("second", second), ("none", None)):
        replay = pool.generate([make(adapter)])[0]
        assert replay.cached and replay.completion_ids == fresh[label]
    backend = pool.backend("tiny-llama")
    ids = backend.prompt_ids(make(None))
    keys = {ResponseCache.make_key(backend.model_id, ids, make(None).decoding_params(), digest)
            for digest in ("", first.digest, second.digest)}
    assert len(keys) == 3
    # Letter scoring applies the request's adapter, and caches it apart from the plain request.
    plain = pool.choice_logprobs("tiny-llama", make(None), ["A", "B"])
    adapted = pool.choice_logprobs("tiny-llama", make(first), ["A", "B"])
    assert plain != adapted
    assert pool.choice_logprobs("tiny-llama", make(first), ["A", "B"]) == adapted
    pool.close()


def test_pool_batch_with_adapters_equals_each_request_alone():
    shared = _strong("tiny-llama", 3)
    requests = [
        GenerationRequest(model="tiny-llama", prompt="first prompt here", max_new_tokens=7, adapter=shared),
        GenerationRequest(model="tiny-qwen2", prompt="qwen row", max_new_tokens=5, adapter=_strong("tiny-qwen2", 4)),
        GenerationRequest(model="tiny-llama", prompt="a plain row", max_new_tokens=6),
        GenerationRequest(model="tiny-llama", prompt="sampled", max_new_tokens=9, temperature=1.0, seed=2,
                          adapter=_strong("tiny-llama", 5)),
        GenerationRequest(model="tiny-llama", prompt="first prompt here", max_new_tokens=7,
                          adapter=_strong("tiny-llama", 6)),
    ]
    together = LLMPool(["tiny-llama", "tiny-qwen2"]).generate(requests)
    for request, result in zip(requests, together):
        alone = LLMPool(["tiny-llama", "tiny-qwen2"]).generate([request])[0]
        assert alone.completion_ids == result.completion_ids
    assert together[0].completion_ids != together[4].completion_ids


# -- real models ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_real_model_injection_equals_merged_weights(name):
    from dataclasses import replace

    from routing_gym.llm.spec import BUILTIN_SPECS

    # Pinned to float32: the merged-weight reference is compared at float32 tolerance (1e-3), and
    # under bf16 (``auto`` with avx512_bf16) merging rounds W + alpha*A@B differently from the hooks.
    spec = BUILTIN_SPECS[name]
    backend = LLMPool([replace(spec, options={**spec.options, "dtype": "float32"})]).backend(name)
    assert backend.dtype == torch.float32
    tokenizer = backend.tokenizer
    model = backend.model
    shapes = o_proj_shapes(model)
    adapter = LoRAAdapter.random(shapes, k=2, seed=0, scale=1.0, alpha=0.05, model=name)
    prompts = ["The capital of France is", "One, two, three,"]
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    with torch.no_grad():
        batched = backend.token_logprobs([r[:-1] for r in ids], [r[-1:] for r in ids], adapters=[adapter, None])
        reference = _merged_copy(model, adapter)(input_ids=torch.tensor([ids[0]])).logits[0, -2].log_softmax(-1)
        base = model(input_ids=torch.tensor([ids[1]])).logits[0, -2].log_softmax(-1)
        plain = model(input_ids=torch.tensor([ids[0]])).logits[0, -2].log_softmax(-1)
    assert abs(float(plain[ids[0][-1]]) - float(reference[ids[0][-1]])) > 1e-2, "the adapter must matter"
    assert float(batched[0][0]) == pytest.approx(float(reference[ids[0][-1]]), abs=1e-3)
    assert float(batched[1][0]) == pytest.approx(float(base[ids[1][-1]]), abs=1e-3)
    last = len(shapes) - 1
    out_features, in_features = shapes[last]
    wrong = LoRAAdapter({last: (torch.randn(in_features + 1, 8), torch.randn(8, in_features))})
    with pytest.raises(ValueError, match=rf"{name} layer {last} o_proj: A has shape \({in_features + 1}, 8\), "
                                         rf"expected \({out_features}, 8\)"):
        backend.injector.check(wrong)

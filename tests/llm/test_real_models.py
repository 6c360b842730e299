"""Every real PyPI-shipped model loads offline and answers a batch (slow: de-quantizes each GGUF once)."""

import os

import pytest

from routing_gym.llm import GenerationRequest, LLMPool
from dataclasses import replace

from routing_gym.llm.spec import BUILTIN_SPECS, REAL_MODELS, ModelSpec

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 3?"]


def float32(name: str) -> ModelSpec:
    """The built-in model pinned to float32: these tests compare paths at float32 tolerances and
    exact greedy tokens, which bf16 (``auto`` on a CPU with avx512_bf16) does not keep."""
    spec = BUILTIN_SPECS[name]
    return replace(spec, options={**spec.options, "dtype": "float32"})


@pytest.fixture(scope="module")
def real_pool(tmp_path_factory):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    pool = LLMPool([float32(m) for m in REAL_MODELS], cache=tmp_path_factory.mktemp("cache") / "responses.sqlite")
    yield pool
    pool.close()


@pytest.mark.parametrize("model", REAL_MODELS)
def test_real_model_answers_a_batch_offline(real_pool, model):
    requests = [
        GenerationRequest(model=model, messages=[{"role": "user", "content": q}], max_new_tokens=12)
        for q in QUESTIONS
    ]
    results = real_pool.generate(requests)
    tokenizer = real_pool.backend(model).tokenizer
    for request, result in zip(requests, results):
        assert result.text.strip(), f"{model} returned an empty answer"
        assert 1 <= result.completion_tokens <= 12
        rendered = real_pool.backend(model).render(request)
        add_special = not tokenizer.chat_template
        assert result.prompt_ids == tokenizer(rendered, add_special_tokens=add_special)["input_ids"]
        assert result.cost > 0
    # The same batch replays from the cache, identical.
    again = real_pool.generate(requests)
    assert all(r.cached for r in again)
    assert [r.completion_ids for r in again] == [r.completion_ids for r in results]


def test_real_model_shapes_come_from_the_weights(real_pool):
    smol = real_pool.backend("smollm2-135m").model
    gemma = real_pool.backend("gemma3-270m").model
    assert tuple(smol.model.layers[-1].self_attn.o_proj.weight.shape) == (576, 576)
    assert tuple(gemma.model.layers[-1].self_attn.o_proj.weight.shape) == (640, 1024)
    assert smol.config.num_hidden_layers == 30 and gemma.config.num_hidden_layers == 18


def test_qwen_models_assemble_from_their_parts_and_know_arithmetic(real_pool):
    ask = [{"role": "user", "content": "What is 17 * 3? Reply with the number only."}]
    for name, hidden, layers in (("qwen2.5-coder-0.5b", 896, 24), ("qwen2.5-coder-1.5b", 1536, 28)):
        backend = real_pool.backend(name)
        model = backend.model
        assert model.config.num_hidden_layers == layers
        assert tuple(model.model.layers[-1].self_attn.o_proj.weight.shape) == (hidden, hidden)
        assert backend.tokenizer.chat_template
    answers = real_pool.generate(
        [GenerationRequest(model="qwen2.5-coder-1.5b", messages=ask, max_new_tokens=8)]
    )
    assert "51" in answers[0].text


@pytest.mark.parametrize("model", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_answer_letters_scored_in_one_pass_match_per_letter_teacher_forcing(real_pool, model):
    import torch

    backend = real_pool.backend(model)
    ask = [{"role": "user", "content": "Which is a primary colour? A. green B. red C. purple D. orange"}]
    request = GenerationRequest(model=model, messages=ask, response_prefix="Answer: (", max_new_tokens=1)
    prompt = backend.prompt_ids(request)
    letters = ["A", "B", "C", "D"]
    assert all(len(backend.tokenizer(c, add_special_tokens=False)["input_ids"]) == 1 for c in letters)
    scores = backend.score_choices(request, prompt, letters)
    with torch.no_grad():
        expected = [float(t.sum()) for t in backend.token_logprobs(
            [prompt] * 4, [backend.tokenizer(c, add_special_tokens=False)["input_ids"] for c in letters])]
    assert scores.logprobs == pytest.approx(expected, abs=1e-3)


def test_a_base_model_answer_stops_before_a_made_up_next_question(real_pool):
    results = real_pool.generate([
        GenerationRequest(model="gemma3-270m", messages=[{"role": "user", "content": q}], max_new_tokens=48)
        for q in QUESTIONS
    ])
    assert all("\n\nQuestion:" not in r.text for r in results)


@pytest.mark.parametrize("model", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_prefix_shared_generation_matches_the_plain_batch(real_pool, model, monkeypatch):
    from dataclasses import replace

    backend = real_pool.backend(model)
    system = "You are a teacher. Review the student's step and reply with one word, then a reason. " * 3
    requests = [GenerationRequest(model=model, messages=[{"role": "system", "content": system},
                                                         {"role": "user", "content": q}], max_new_tokens=12)
                for q in QUESTIONS]
    prompts = [backend.prompt_ids(r) for r in requests]
    assert min(backend._shared_prefixes(prompts, [None] * 3)) > 40
    shared = backend.generate(requests, prompts)
    monkeypatch.setattr(backend, "spec", replace(backend.spec, options={**backend.spec.options, "prefix_sharing": False}))
    assert backend._shared_prefixes(prompts, [None] * 3) == [0, 0, 0]
    plain = backend.generate(requests, prompts)
    assert [c.completion_ids for c in shared] == [c.completion_ids for c in plain]


@pytest.mark.parametrize("model", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_letter_scoring_from_a_stored_prefix_matches_teacher_forcing(real_pool, model):
    import torch

    backend = real_pool.backend(model)
    system = "Answer the multiple-choice question with its letter. Think of the facts first. " * 3
    ask = [{"role": "system", "content": system},
           {"role": "user", "content": "Which is a primary colour? A. green B. red C. purple D. orange"}]
    other = [ask[0], {"role": "user", "content": "Which is a fruit? A. stone B. apple C. chair D. cloud"}]
    # Two rows sharing the system prompt: the batch stores it.
    real_pool.generate([GenerationRequest(model=model, messages=m, max_new_tokens=4) for m in (ask, other)])
    request = GenerationRequest(model=model, messages=ask, response_prefix="Answer: (", max_new_tokens=1)
    prompt = backend.prompt_ids(request)
    assert backend.prefix_store.longest(prompt) > 40
    letters = ["A", "B", "C", "D"]
    scores = backend.score_choices(request, prompt, letters)
    with torch.no_grad():
        expected = [float(t.sum()) for t in backend.token_logprobs(
            [prompt] * 4, [backend.tokenizer(c, add_special_tokens=False)["input_ids"] for c in letters])]
    assert scores.logprobs == pytest.approx(expected, abs=1e-3)

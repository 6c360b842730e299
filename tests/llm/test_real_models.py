"""Every real PyPI-shipped model loads offline and answers a batch (slow: de-quantizes each GGUF once)."""

import os

import pytest

from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.spec import REAL_MODELS

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 3?"]


@pytest.fixture(scope="module")
def real_pool(tmp_path_factory):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    pool = LLMPool(list(REAL_MODELS), cache=tmp_path_factory.mktemp("cache") / "responses.sqlite")
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

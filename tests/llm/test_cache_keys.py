"""Response-cache keys: the exact payload they hash, and which spellings must (not) collide."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from routing_gym.llm.cache import ResponseCache

make_key = ResponseCache.make_key


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_key_is_the_sha256_of_the_sorted_compact_payload():
    # keys sorted, no spaces, version 1, kind "generate", no adapter
    payload = (
        '{"adapter":"","decoding":{"max_new_tokens":8,"temperature":0.5},"kind":"generate",'
        '"model":"m@1","prompt_ids":[5,3,9],"v":1}'
    )
    assert make_key("m@1", [5, 3, 9], {"temperature": 0.5, "max_new_tokens": 8}) == sha256(payload)
    scoring = (
        '{"adapter":"ab12","decoding":{},"kind":"score","model":"m@1","prompt_ids":[],"v":1}'
    )
    assert make_key("m@1", [], {}, adapter_digest="ab12", kind="score") == sha256(scoring)


def test_a_bool_never_collides_with_an_int():
    base = dict(model_id="m", prompt_ids=[1])
    assert make_key(**base, decoding={"do_sample": True}) != make_key(**base, decoding={"do_sample": 1})
    assert make_key(**base, decoding={"do_sample": False}) != make_key(**base, decoding={"do_sample": 0})
    assert make_key(**base, decoding={"x": [True]}) != make_key(**base, decoding={"x": [1]})
    # the payload spells the bool as JSON true
    assert make_key(**base, decoding={"do_sample": True}) == sha256(
        '{"adapter":"","decoding":{"do_sample":true},"kind":"generate","model":"m","prompt_ids":[1],"v":1}'
    )
    assert make_key(**base, decoding={"do_sample": np.bool_(True)}) == make_key(**base, decoding={"do_sample": True})


def test_equal_numbers_share_a_key_and_different_ones_do_not():
    base = dict(model_id="m", prompt_ids=[1])
    # 1 and 1.0 are the same setting (a temperature given as int or float): one key, spelled 1
    assert make_key(**base, decoding={"t": 1}) == make_key(**base, decoding={"t": 1.0})
    assert make_key(**base, decoding={"t": 1.0}) == sha256(
        '{"adapter":"","decoding":{"t":1},"kind":"generate","model":"m","prompt_ids":[1],"v":1}'
    )
    assert make_key(**base, decoding={"t": np.int64(2)}) == make_key(**base, decoding={"t": 2})
    assert make_key(**base, decoding={"t": 0.5}) != make_key(**base, decoding={"t": 0.50001})
    assert make_key(**base, decoding={"t": 1}) != make_key(**base, decoding={"t": "1"})
    assert make_key(**base, decoding={"t": None}) != make_key(**base, decoding={})


def test_key_order_does_not_matter_but_token_order_does():
    assert make_key("m", [1], {"a": 1, "b": {"y": 2, "x": 3}}) == make_key("m", [1], {"b": {"x": 3, "y": 2}, "a": 1})
    assert make_key("m", [1, 2], {}) != make_key("m", [2, 1], {})
    assert make_key("m", (1, 2), {"stop": ("a", "b")}) == make_key("m", [1, 2], {"stop": ["a", "b"]})
    assert make_key("m", np.array([1, 2]), {"stop": np.array([3])}) == make_key("m", [1, 2], {"stop": [3]})


@pytest.mark.parametrize(
    "change",
    [
        {"model_id": "m@2"},
        {"prompt_ids": [1, 2, 4]},
        {"decoding": {"temperature": 0.7}},
        {"adapter_digest": "ab"},
        {"kind": "score"},
    ],
)
def test_every_part_changes_the_key(change):
    base = {"model_id": "m@1", "prompt_ids": [1, 2, 3], "decoding": {"temperature": 0.0},
            "adapter_digest": "", "kind": "generate"}
    assert make_key(**{**base, **change}) != make_key(**base)


def test_text_beyond_ascii_is_hashed_as_raw_utf8():
    # the payload keeps "é" as its UTF-8 bytes, not as a \u00e9 escape
    assert make_key("modèle", [1], {"stop": ["fin."]}) == sha256(
        '{"adapter":"","decoding":{"stop":["fin."]},"kind":"generate","model":"modèle","prompt_ids":[1],"v":1}'
    )
    assert make_key("m", [1], {"stop": ["é"]}) == sha256(
        '{"adapter":"","decoding":{"stop":["é"]},"kind":"generate","model":"m","prompt_ids":[1],"v":1}'
    )


@pytest.mark.parametrize(
    "decoding, error, words",
    [
        ({"t": float("nan")}, ValueError, "decoding\\['t'\\] = nan"),
        ({"stop": [1, float("nan")]}, ValueError, "decoding\\['stop'\\]\\[1\\] = nan"),  # the path names the item
        ({"t": np.float32("nan")}, ValueError, "decoding\\['t'\\] = nan"),  # numpy, not a float subclass
        ({"t": np.array([0.5, np.inf])}, ValueError, "decoding\\['t'\\]\\[1\\] = inf"),
        ({"t": float("inf")}, ValueError, "non-finite"),
        ({"t": {1, 2}}, TypeError, "set cannot be part of a cache key"),
    ],
)
def test_values_a_key_cannot_hold_are_named(decoding, error, words):
    with pytest.raises(error, match=words):
        make_key("m", [1], decoding)


def test_a_key_must_be_a_sha256_hex_digest(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    key = make_key("m", [1], {})
    cache.put(key, "m", {"text": "x"})
    assert cache.get(key, "m") == {"text": "x"}
    for bad in (key.upper(), key[:-1], key + "0", "g" * 64, 7):
        with pytest.raises(ValueError, match="64-char lowercase sha256"):
            cache.get(bad)
    cache.close()

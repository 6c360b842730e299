"""Hash-based splits: stable across order, subsets, processes and releases."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from routing_gym.data.splits import DEFAULT_FRACTIONS, assign_split, split_ids, unit_hash


def test_unit_hash_is_salted_sha256_prefix():
    digest = hashlib.sha256(b"routing_gym\x00HumanEval/0").digest()
    expected = int.from_bytes(digest[:8], "big") / 2**64
    assert unit_hash("HumanEval/0") == expected
    assert 0.0 <= unit_hash("x") < 1.0


def test_pinned_assignments_never_change():
    # pinned so that a change of hash, salt or edge rule shows up as a failing test:
    # every outcome-table split depends on these staying put
    pinned = {
        "5a7f113d55429934daa2fcbe": "test",  # unit hash 0.979
        "HumanEval/0": "train",  # 0.091
        "c": "test",  # 0.914
        "g": "valid",  # 0.864
        "e": "train",  # 0.424
    }
    assert {i: assign_split(i) for i in pinned} == pinned


def test_membership_ignores_order_and_other_ids():
    ids = [f"q{i}" for i in range(2000)]
    full = split_ids(ids)
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    reshuffled = split_ids(shuffled)
    assert {k: set(v) for k, v in full.items()} == {k: set(v) for k, v in reshuffled.items()}
    subset = split_ids(ids[::7])
    for name, members in subset.items():
        assert set(members) <= set(full[name])
    assert all(assign_split(i) == name for name, members in full.items() for i in members)


def test_split_ids_keeps_input_order_and_every_key():
    ids = [f"q{i}" for i in range(300)]
    out = split_ids(ids, fractions={"train": 0.5, "held_out": 0.0, "test": 0.5})
    assert list(out) == ["train", "held_out", "test"]
    assert out["held_out"] == []
    assert out["train"] == [i for i in ids if i in set(out["train"])]
    assert sorted(out["train"] + out["test"]) == sorted(ids)


def test_fractions_are_respected_on_many_ids():
    out = split_ids(range(20000))
    sizes = {k: len(v) / 20000 for k, v in out.items()}
    for name, fraction in DEFAULT_FRACTIONS.items():
        assert abs(sizes[name] - fraction) < 0.01, (name, sizes)


def test_salt_reshuffles_assignments():
    ids = [f"q{i}" for i in range(500)]
    a = split_ids(ids, salt="one")["train"]
    b = split_ids(ids, salt="two")["train"]
    assert set(a) != set(b)


def test_ids_compare_as_strings():
    assert assign_split(17) == assign_split("17")
    with pytest.raises(ValueError, match="duplicate id"):
        split_ids([17, "17"])


def test_same_split_in_a_fresh_process_with_another_hash_seed():
    code = (
        "from routing_gym.data.splits import split_ids; "
        "print(split_ids([f'q{i}' for i in range(50)])['test'])"
    )
    repo_root = str(Path(__file__).resolve().parents[2])
    pythonpath = os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": pythonpath}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(split_ids([f"q{i}" for i in range(50)])["test"])


@pytest.mark.parametrize(
    "fractions, match",
    [
        ({}, "at least one"),
        ({"train": 0.8, "test": 0.1}, "sum to 1"),
        ({"train": 1.2, "test": -0.2}, "'test'"),
        ({"train": float("nan"), "test": 1.0}, "'train'"),
        ({"train": "0.5", "test": 0.5}, "'train'"),
        ({"": 1.0}, "non-empty"),
    ],
)
def test_bad_fractions_raise_value_error_naming_the_split(fractions, match):
    with pytest.raises(ValueError, match=match):
        split_ids(["a"], fractions=fractions)
    with pytest.raises(ValueError, match=match):
        assign_split("a", fractions=fractions)

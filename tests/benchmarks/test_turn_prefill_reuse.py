"""benchmarks/turn_prefill_reuse.py: the append-only estimator and the prefix-store replay, on hand-made token lists."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "turn_prefill_reuse.py"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("turn_prefill_reuse", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_content_already_in_the_context_costs_nothing(bench):
    context = list(range(100, 140))
    assert bench.new_tokens(context[5:30], context) == 0
    assert bench.new_tokens(context, context) == 0


def test_with_no_context_every_token_is_new(bench):
    assert bench.new_tokens([1, 2, 3, 4, 5, 6, 7], []) == 7


def test_moved_and_reordered_runs_are_reused_and_only_inserted_tokens_count(bench):
    context = list(range(100, 140))
    # a later note, then an earlier one moved to the end, with 5 new tokens between
    content = context[20:32] + [1, 2, 3, 4, 5] + context[0:8]
    assert bench.new_tokens(content, context) == 5


def test_runs_shorter_than_min_run_count_as_new(bench):
    context = list(range(100, 140))
    content = [1, 2] + context[10:13] + [3, 4]  # a 3-token match: coincidence under min_run=4
    assert bench.new_tokens(content, context, min_run=4) == 7
    assert bench.new_tokens(content, context, min_run=3) == 4


def test_a_passage_shown_twice_in_one_prompt_is_prefilled_once(bench):
    passage = [7, 8, 9, 10, 11, 12]
    assert bench.new_tokens(passage + [1] + passage, [50, 51]) == 7
    # the second copy clipped shorter (as the notes clip a paragraph) is reused too
    assert bench.new_tokens(passage + passage[:4], []) == 6


def test_the_longest_run_wins_at_each_position(bench):
    context = [1, 2, 3, 4, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7]
    assert bench.new_tokens([1, 2, 3, 4, 5, 6, 7, 42], context) == 1


def test_min_run_below_one_is_refused(bench):
    with pytest.raises(ValueError, match="min_run"):
        bench.new_tokens([1], [1], min_run=0)


def test_store_replay_prefills_a_shared_prefix_once_and_reads_it_on_the_next_batch(bench):
    store = bench.PrefixStoreReplay(min_tokens=4)
    system = [1, 2, 3, 4, 5, 6]
    first = [system + [10, 11], system + [20, 21, 22]]
    rest, fills = store.batch(first)
    assert rest == [2, 3] and fills == [6, 0]  # the shared prefix runs once, for the first row
    rest, fills = store.batch([system + [30, 31, 32, 33]])  # alone in its batch: read from the store
    assert rest == [4] and fills == [0]
    rest, fills = store.batch([[9, 9, 9, 9, 9, 9]])  # nothing shared, nothing stored
    assert rest == [6] and fills == [0]
    assert store.filled == 6


def test_store_replay_ignores_shared_prefixes_under_min_tokens(bench):
    store = bench.PrefixStoreReplay(min_tokens=8)
    rest, fills = store.batch([[1, 2, 3, 10], [1, 2, 3, 20]])
    assert rest == [4, 4] and fills == [0, 0] and store.filled == 0


def test_common_prefix_length(bench):
    assert bench.common_prefix_length([1, 2, 3, 4], [1, 2, 5]) == 2
    assert bench.common_prefix_length([], [1]) == 0
    assert bench.common_prefix_length([1, 2], [1, 2]) == 2

"""Several hop tree files read as one: HopTree.merge and load_tree_folder on hand-made trees."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hop_tree_files import FIXTURES, MODELS, write_tree

from routing_gym.hop_tree import HopTree, load_tree_folder


def test_merge_joins_tasks_and_keeps_every_node(tmp_path):
    arc = HopTree.load(write_tree(tmp_path, "arc_challenge", "train"))
    math = HopTree.load(write_tree(tmp_path, "math", "train", limit=2))
    merged = HopTree.merge([arc, math])
    assert merged.header["config"]["tasks"] == ["arc_challenge", "math"]
    assert merged.header["config"]["split"] == "train"
    assert merged.header["config"]["limit"] == [3, 2]  # differing limits are listed
    assert merged.models == list(MODELS) and merged.depth == 2
    assert merged.header["cost_bounds"] == arc.header["cost_bounds"]
    assert [part["queries"] for part in merged.header["config"]["merged_from"]] == [
        len(arc.queries),
        len(math.queries),
    ]
    assert list(merged.queries) == [*arc.queries, *math.queries]
    question = next(iter(math.queries))
    assert merged.node(question, (1, 0)) == math.node(question, (1, 0))
    # written and read back: the same tree
    again = HopTree.load(merged.write(tmp_path / "merged.jsonl"))
    assert again.header == merged.header
    assert again.node(question, (1, 0)) == math.node(question, (1, 0))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"models": ["tiny-llama", "tiny-gpt2"]}, "different models"),
        ({"models": list(reversed(MODELS))}, "models are in another order"),
        ({"depth": 1}, "different depths"),
        ({"cost_bounds": {"low": 0.0, "high": 9.0}}, "different cost bounds"),
        ({"max_new_tokens": 16}, "different config 'max_new_tokens'"),
        ({"prices": {m: {"input_per_m": 1.0, "output_per_m": 1.0} for m in MODELS}}, "'prices'"),
    ],
)
def test_merge_refuses_trees_that_differ_beyond_tasks_split_and_limit(tmp_path, changes, message):
    arc = HopTree.load(write_tree(tmp_path, "arc_challenge", "train"))
    other = HopTree.load(write_tree(tmp_path, "math", "train", **changes))
    with pytest.raises(ValueError, match=f"cannot merge hop trees .*{message}"):
        HopTree.merge([arc, other])


def test_merge_refuses_a_query_held_twice(tmp_path):
    arc = HopTree.load(write_tree(tmp_path, "arc_challenge", "train"))
    copy = HopTree.load(write_tree(tmp_path, "arc_challenge", "train", name="copy.jsonl"))
    with pytest.raises(ValueError, match="both hold query 'arc_challenge/"):
        HopTree.merge([arc, copy])


def test_folder_merges_complete_tasks_and_names_the_others(tmp_path):
    for split in ("train", "test"):
        write_tree(tmp_path, "arc_challenge", split)
    write_tree(tmp_path, "math", "train", drop=1)  # one train query not built yet
    write_tree(tmp_path, "math", "test")
    write_tree(tmp_path, "mbpp", "test")  # no train tree
    folder = load_tree_folder(tmp_path, data_dir=str(FIXTURES))
    assert folder.tasks == ["arc_challenge"]
    assert set(folder.skipped) == {"math", "mbpp"}
    assert folder.skipped["mbpp"] == "no train tree"
    done, total = folder.skipped["math"].removeprefix("train ").removesuffix(" queries").split("/")
    assert int(done) == int(total) - 1
    assert set(folder.trees) == {"train", "test"}
    for split in ("train", "test"):
        assert folder.trees[split].header["config"]["tasks"] == ["arc_challenge"]
        assert {folder.trees[split].queries[q]["task"] for q in folder.trees[split].queries} == {
            "arc_challenge"
        }
    assert not set(folder.trees["train"].queries) & set(folder.trees["test"].queries)


def test_folder_reads_a_tree_still_being_written_up_to_its_last_whole_line(tmp_path):
    for split in ("train", "test"):
        path = write_tree(tmp_path, "arc_challenge", split)
    whole = HopTree.load(path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"question_id": "arc_challenge/half')  # a builder mid-write
    folder = load_tree_folder(tmp_path, data_dir=str(FIXTURES))
    assert folder.tasks == ["arc_challenge"]
    assert list(folder.trees["test"].queries) == list(whole.queries)


def test_folder_refuses_mismatched_duplicate_multitask_and_changed_files(tmp_path):
    write_tree(tmp_path, "arc_challenge", "train")
    write_tree(tmp_path, "arc_challenge", "test", cost_bounds={"low": 0.0, "high": 8.0})
    with pytest.raises(ValueError, match="cannot merge hop trees .*different cost bounds"):
        load_tree_folder(tmp_path, data_dir=str(FIXTURES))

    twice = tmp_path / "twice"
    twice.mkdir()
    write_tree(twice, "arc_challenge", "train")
    write_tree(twice, "arc_challenge", "train", limit=2)
    with pytest.raises(ValueError, match="are both trees of arc_challenge / train; keep one"):
        load_tree_folder(twice, data_dir=str(FIXTURES))

    several = tmp_path / "several"
    several.mkdir()
    path = write_tree(several, "arc_challenge", "train")
    tree = HopTree.load(path)
    tree.header["config"]["tasks"] = ["arc_challenge", "math"]
    tree.write(path)
    with pytest.raises(ValueError, match="one task per file"):
        load_tree_folder(several, data_dir=str(FIXTURES))

    changed = tmp_path / "changed"
    changed.mkdir()
    path = write_tree(changed, "arc_challenge", "train")
    tree = HopTree.load(path)
    next(iter(tree.queries.values()))["question_digest"] = "0" * 64
    tree.write(path)
    with pytest.raises(ValueError, match="has other content in the data than when its row was built"):
        load_tree_folder(changed, data_dir=str(FIXTURES))

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no hop tree files"):
        load_tree_folder(empty)

"""hierrouter_multihop.py --trees: the complete tasks of a folder of per-task trees, scored with
seeds and two feature sets, the rest named as left out; the result renders as computed blocks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hop_tree_files import FIXTURES, write_tree

from routing_gym.bench import published
from routing_gym.bench.hierrouter_report import verdict_table

WITH_LENGTH = "HierRouter (MaskablePPO) [embedding+task+length]"


@pytest.mark.timeout(300)
def test_trees_folder_seeds_and_feature_sets(tmp_path, run_example):
    trees = tmp_path / "trees"
    trees.mkdir()
    for task in ("arc_challenge", "math"):
        for split in ("train", "test"):
            write_tree(trees, task, split)
    write_tree(trees, "mbpp", "train")  # its test tree is not there yet
    argv = ["--trees", str(trees), "--data-dir", str(FIXTURES), "--seeds", "0", "1",
            "--feature-sets", "embedding,task;embedding,task,length", "--lams", "balanced",
            "--timesteps", "32", "--n-steps", "16", "--n-envs", "2", "--out-dir", str(tmp_path / "out")]
    done = run_example("hierrouter_multihop.py", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tasks"] == ["arc_challenge", "math"]
    assert result["skipped_tasks"] == {"mbpp": "no test tree"}
    assert result["seeds"] == [0, 1] and result["largest_model"] == "tiny-qwen2"
    assert result["live"] is None
    per_query = result["per_query"]["0.5"]
    assert set(per_query["tasks"]) == {"arc_challenge", "math"}
    assert per_query["groups"][WITH_LENGTH] == [f"{WITH_LENGTH} seed 0", f"{WITH_LENGTH} seed 1"]
    assert "knn (first hop) [embedding+task]" in per_query["methods"]  # no seed: fitted once
    # the larger model answers every query right in these trees, so it is the best single one
    assert result["best_single"]["0.5"] == "tiny-qwen2"
    assert all(q == 1.0 for q in per_query["methods"]["single tiny-qwen2"]["quality"])
    assert "tasks left out (trees not complete): mbpp: no test tree" in done.stdout
    assert verdict_table(result) in done.stdout
    # a results page recomputes its blocks from the written result
    page = tmp_path / "out" / "page.md"
    page.write_text("<!-- computed: hierrouter_seeds result.json 0.5 math -->\n<!-- end computed -->\n"
                    "<!-- computed: hierrouter_verdict result.json -->\n<!-- end computed -->\n")
    assert published.main([str(page)]) == 0
    assert published.main(["--check", str(page)]) == 0
    assert "| λ | router | arc_challenge | math | overall |" in page.read_text()


def test_trees_refuses_pool_flags_and_a_folder_without_complete_tasks(tmp_path, run_example):
    write_tree(tmp_path, "arc_challenge", "train")
    done = run_example("hierrouter_multihop.py", ["--trees", str(tmp_path), "--models", "tiny-llama",
                                                  "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: ValueError: --trees reads the pool, tasks, sizes and config from "
                                   "the tree files; drop --models.")
    done = run_example("hierrouter_multihop.py", ["--trees", str(tmp_path), "--data-dir", str(FIXTURES),
                                                  "--out-dir", str(tmp_path / "out")])
    assert done.returncode == 2
    assert "no task of" in done.stderr and "arc_challenge: no test tree" in done.stderr

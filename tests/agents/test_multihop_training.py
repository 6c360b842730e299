"""The multi-hop evaluation pipeline end to end: tiny random models, fixture queries, few PPO steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
METHODS_BESIDES_MODELS = ["HierRouter (MaskablePPO)", "best two-hop", "Random", "knn (first hop)", "mlp (first hop)",
                          "routellm-mf (first hop)", "irt-router (first hop)", "graphrouter (first hop)", "Oracle",
                          "Oracle (quality)"]


@pytest.mark.timeout(300)
def test_multihop_pipeline_scores_every_method_and_live_equals_replay(tmp_path, run_example):
    argv = ["--models", "tiny-llama,tiny-qwen2", "--tasks", "gsm8k,arc_challenge,mbpp",
            "--data-dir", str(FIXTURES), "--train-split", "test", "--heldout-split", "test",
            "--fractions", '{"test": 1.0}', "--limit", "3", "--max-new-tokens", "8",
            "--config", json.dumps({"sandbox": {"timeout_s": 3, "cpu_seconds": 2}}),
            "--timesteps", "64", "--n-steps", "16", "--n-envs", "2", "--out-dir", str(tmp_path)]
    done = run_example("hierrouter_multihop.py", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["train_queries"] > 0 and result["heldout_queries"] > 0
    assert result["train_queries"] + result["heldout_queries"] == 8  # gsm8k 2, arc 3, mbpp 3 (limit 3)
    expected = METHODS_BESIDES_MODELS + ["single tiny-llama", "single tiny-qwen2"]
    assert sorted(result["results"]) == ["0.1", "0.5", "1.0"]
    for lam, table in result["results"].items():
        assert sorted(table) == sorted(expected)
        for method, cells in table.items():
            assert set(cells) == set(result["tasks"]) | {"overall"}
            for column, cell in cells.items():
                assert cell["reward"] == pytest.approx(cell["quality"] - float(lam) * cell["cost"])
                assert table["Oracle (quality)"][column]["quality"] >= cell["quality"] - 1e-12, (lam, method)
                assert table["Oracle"][column]["reward"] >= cell["reward"] - 1e-12, (lam, method)
        assert f"λ = {lam}" in out
        overall = table["HierRouter (MaskablePPO)"]["overall"]
        assert (f"| HierRouter (MaskablePPO) |" in out and f"{overall['quality']:.3f} / {overall['cost']:.3f} / "
                f"{overall['reward']:+.3f} |" in out)
        # the per-query outcomes behind every row: their means are the overall cells
        per_query = result["per_query"][lam]
        assert len(per_query["question_ids"]) == len(per_query["tasks"]) == result["heldout_queries"]
        assert sorted(per_query["methods"]) == sorted(expected)
        for method, outcomes in per_query["methods"].items():
            for key in ("quality", "cost", "reward"):
                assert sum(outcomes[key]) / len(outcomes[key]) == pytest.approx(table[method]["overall"][key])
    # the interval table: n and the paired Δ from the best two-hop pipeline on train
    assert f"| method | n | quality ↑ [95% CI] |" in out and "Δ reward vs best two-hop [95% CI]" in out
    assert f"| best two-hop | {result['heldout_queries']} | " in out
    for lam, by_method in result["ppo_first_hop"].items():
        assert list(by_method) == ["HierRouter (MaskablePPO)"]  # one seed, one feature set
        for part in ("train", "heldout"):
            shares = by_method["HierRouter (MaskablePPO)"][part]
            assert sorted(shares) == ["tiny-llama", "tiny-qwen2"]
            assert sum(shares.values()) == pytest.approx(1.0)
    live = result["live"]
    assert result["live_equals_replay"] and live["mismatches"] == []
    assert live["episodes"] == 3 * result["heldout_queries"] and live["cache_hits"] > 0
    # a second run resumes the trees from disk and the responses from the cache: the same table
    done = run_example("hierrouter_multihop.py", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads(done.stdout.strip().splitlines()[-1])
    assert again["results"] == result["results"]

"""examples/quickstart.py and examples/quickstart_live.py run as a newcomer runs them, with small settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from routing_gym.cost import resolve_lambda

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "data" / "fixtures"


def run_script(name: str, *args: str, cwd: Path) -> dict[str, list[str]]:
    """Run an example in a fresh interpreter; its table's rows by router name."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(REPO / "examples" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0][:2] == ["router", "n"]
    return {row[0].strip(): [cell.strip() for cell in row[1:]] for row in rows[1:]}


@pytest.mark.timeout(300)
def test_quickstart_compares_ppo_knn_and_the_best_fixed_model_on_every_test_question(tmp_path):
    env_id = "LLMRouting-Table-GSM8K-v0"
    rows = run_script("quickstart.py", "--env", env_id, "--timesteps", "128", "--n-steps", "64",
                      cwd=tmp_path)
    assert list(rows) == ["PPO", "kNN", "best fixed"]
    train = gym.make(env_id, split="train", lam="balanced").unwrapped
    test = gym.make(env_id, split="test", lam="balanced").unwrapped
    lam = resolve_lambda("balanced")
    for n, _, _ in rows.values():
        assert int(n) == test.num_queries
    # the best fixed model by hand: the highest mean train reward, then its mean test reward
    best = int(np.argmax((train.scores - lam * train.normalized_costs).mean(axis=0)))
    expected = (test.scores[:, best] - lam * test.normalized_costs[:, best]).mean()
    assert rows["best fixed"][1].startswith(f"{expected:.3f} [")
    assert rows["best fixed"][2] == "0.000 [0.000, 0.000]"  # paired with itself


@pytest.mark.timeout(300)
def test_quickstart_live_trains_ppo_on_tiny_models_and_compares_each_fixed_model(tmp_path):
    protocol = '{"student_max_new_tokens": 6, "teacher_max_new_tokens": 4, "search_budget": 1}'
    rows = run_script("quickstart_live.py", "--data-dir", str(FIXTURES), "--train-split", "valid",
                      "--timesteps", "32", "--protocol", protocol, "--cache", str(tmp_path / "r.sqlite"),
                      cwd=tmp_path)
    assert list(rows) == ["PPO", "always tiny-llama", "always tiny-qwen2"]
    questions = gym.make("LLMRouting-HotpotQA-v0", config={"data_dir": str(FIXTURES)}).unwrapped.examples
    assert all(int(n) == len(questions) for n, _, _ in rows.values())
    assert rows["always tiny-llama"][2] == "0.000 [0.000, 0.000]"
    # the random tiny models never answer: every reward is minus λ times a positive cost
    for _, reward, _ in rows.values():
        assert float(reward.split(" [")[0]) < 0
    assert (tmp_path / "r.sqlite").is_file()

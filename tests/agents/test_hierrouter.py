"""HierRouter: PPO trains on the table envs, logs routing metrics to TensorBoard, saves, and runs in rl-zoo3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import routing_gym  # noqa: F401
from agents import HierRouter
from agents.evaluation import evaluate_agent

REPO = Path(__file__).resolve().parents[2]
HYPERPARAMS = REPO / "examples" / "hyperparams" / "ppo.yml"
SMALL = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "seed": 0}


def _scalar_tags(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in logdir.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    return tags


def test_ppo_trains_on_the_table_env_and_logs_routing_metrics(tmp_path):
    agent = HierRouter(**SMALL, tensorboard_log=str(tmp_path / "tb"))
    agent.fit(
        "LLMRouting-Table-GSM8K-v0", total_timesteps=256, env_kwargs={"config": {"split": "train"}}
    )
    assert agent.model.num_timesteps >= 256
    tags = _scalar_tags(tmp_path / "tb")
    assert {"routing/perf", "routing/cost", "routing/episodes"} <= tags
    assert any(tag.startswith("routing/share/") for tag in tags)
    env = gym.make("LLMRouting-Table-GSM8K-v0", split="valid")
    scores = evaluate_agent(agent, env)
    assert scores["episodes"] == env.unwrapped.num_queries and 0.0 <= scores["perf"] <= 1.0


def test_ppo_uses_the_dict_policy_on_the_cascade_env():
    agent = HierRouter(**SMALL).fit("LLMRouting-Table-Cascade-GSM8K-v0", total_timesteps=128)
    assert type(agent.model.policy).__name__ == "MultiInputActorCriticPolicy"
    obs, _ = gym.make("LLMRouting-Table-Cascade-GSM8K-v0").reset(seed=0)
    action, _ = agent.predict(obs)
    assert np.ndim(action) == 0


def test_predict_batches_and_save_load_round_trip(tmp_path):
    agent = HierRouter(**SMALL).fit("LLMRouting-Table-GSM8K-v0", total_timesteps=128)
    env = gym.make("LLMRouting-Table-GSM8K-v0", split="valid")
    batch = np.stack([env.reset(options={"index": i})[0] for i in range(6)])
    actions, _ = agent.predict(batch)
    assert actions.shape == (6,)
    path = agent.save(tmp_path / "hier")
    loaded = HierRouter.load(path)
    np.testing.assert_array_equal(loaded.predict(batch)[0], actions)
    assert loaded.config == agent.config


def test_subprocess_vector_env_trains(tmp_path):
    agent = HierRouter(**{**SMALL, "vec_env": "subproc"})
    agent.fit("LLMRouting-Table-GSM8K-v0", total_timesteps=128)
    assert type(agent.model.get_env()).__name__ == "SubprocVecEnv"
    agent.model.get_env().close()


def test_train_script_trains_saves_and_scores(tmp_path, run_example):
    done = run_example(
        "train_hierrouter.py",
        [
            "--env",
            "LLMRouting-Table-GSM8K-v0",
            "--timesteps",
            "128",
            "--n-envs",
            "2",
            "--no-progress-bar",
            "--out",
            str(tmp_path / "agent.zip"),
            "--tensorboard-log",
            str(tmp_path / "tb"),
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Held-out (test)" in out and (tmp_path / "agent.zip").is_file()
    assert "routing/perf" in _scalar_tags(tmp_path / "tb")


def test_hyperparams_file_names_registered_envs():
    entries = yaml.safe_load(HYPERPARAMS.read_text())
    assert entries and all(env_id in gym.registry for env_id in entries)
    for env_id, params in entries.items():
        assert params["callback"] == "agents.hierrouter.RoutingInfoCallback", env_id
        expected = "MlpPolicy" if env_id == "LLMRouting-Table-v0" else "MultiInputPolicy"
        assert params["policy"] == expected, env_id


def test_rl_zoo3_trains_a_few_hundred_steps(tmp_path):
    pytest.importorskip("rl_zoo3")
    command = [
        sys.executable,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        "LLMRouting-Table-v0",
        "--gym-packages",
        "routing_gym",
        "-conf",
        str(HYPERPARAMS),
        "-n",
        "256",
        "-f",
        str(tmp_path),
        "--eval-freq",
        "-1",
        "--seed",
        "0",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "routing/" in result.stdout  # RoutingInfoCallback logged through the zoo
    assert list(tmp_path.glob("ppo/LLMRouting-Table-v0_*/LLMRouting-Table-v0.zip"))

"""Agents match models by name: a table with the same models in another order routes the same,
a table without one of them is refused, and checkpoints keep the names and fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from agents import HierRouter, KNNRouter
from agents.base import env_models
from agents.evaluation import evaluate_agent, evaluate_on_data
from routing_gym.errors import CheckpointError
from routing_gym.outcomes import Outcomes

ENV = "LLMRouting-Table-GSM8K-v0"
CASCADE = "LLMRouting-Table-Cascade-GSM8K-v0"
SMALL_PPO = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "seed": 0}


def write_reordered_table(path: Path, order=reversed, drop: tuple[str, ...] = ()) -> Path:
    """The GSM8K variant's rows as a bring-your-own JSONL table: same ids, splits, embeddings,
    scores and USD costs, with the model columns in another order (and ``drop`` left out)."""
    with open(path, "w", encoding="utf-8") as handle:
        for split in ("train", "valid", "test"):
            base = gym.make(ENV, split=split).unwrapped
            models = list(env_models(base))
            for i, qid in enumerate(base.query_ids):
                row = {
                    "id": qid,
                    "task": base.query_tasks[i],
                    "split": split,
                    "embedding": base.embeddings[i].tolist(),
                }
                for model in order(models):
                    if model not in drop:
                        j = models.index(model)
                        row[model] = float(base.scores[i, j])
                        row[f"{model}|cost"] = float(base.costs[i, j])
                handle.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="module")
def reordered(tmp_path_factory) -> Path:
    return write_reordered_table(tmp_path_factory.mktemp("tables") / "reordered.jsonl")


@pytest.fixture(scope="module")
def knn() -> KNNRouter:
    return KNNRouter(k=5).fit_env(gym.make(ENV, split="train"))


@pytest.fixture(scope="module")
def ppo() -> HierRouter:
    return HierRouter(**SMALL_PPO).fit(ENV, total_timesteps=256)


def test_the_reordered_table_really_reorders_the_models(reordered):
    default = gym.make(ENV, split="test").unwrapped
    other = gym.make("LLMRouting-Table-v0", table=str(reordered), split="test").unwrapped
    assert env_models(other) == tuple(reversed(env_models(default)))
    assert other.query_ids == default.query_ids


def test_knn_scores_the_same_on_a_table_with_the_models_reordered(knn, reordered):
    default = evaluate_agent(knn, gym.make(ENV, split="test"))
    other = evaluate_agent(knn, gym.make("LLMRouting-Table-v0", table=str(reordered), split="test"))
    assert other["perf"] == default["perf"] and other["cost"] == pytest.approx(default["cost"])
    assert other["share"] == default["share"]  # the same models, by name, query by query


def test_knn_predict_follows_the_env_it_was_adapted_to(knn, reordered):
    default = gym.make(ENV, split="test").unwrapped
    other = gym.make("LLMRouting-Table-v0", table=str(reordered), split="test").unwrapped
    queries = default.embeddings[:10]
    knn.adapt_to(default)
    on_default = [env_models(default)[a] for a in knn.predict(queries)[0]]
    knn.adapt_to(other)
    on_other = [env_models(other)[a] for a in knn.predict(queries)[0]]
    knn.adapt_to(default)
    assert on_other == on_default
    assert knn.models == env_models(default)  # it keeps the names it was trained on


def test_routers_refuse_a_table_missing_one_of_their_models_naming_it(knn, ppo, tmp_path):
    dropped = "codegemma-7b"
    path = write_reordered_table(tmp_path / "eight.jsonl", order=list, drop=(dropped,))
    env = gym.make("LLMRouting-Table-v0", table=str(path), split="test")
    for agent in (knn, ppo):
        with pytest.raises(ValueError, match=f"lacks \\['{dropped}'\\]"):
            evaluate_agent(agent, env)


def test_offline_scores_match_arms_to_data_columns_by_name(knn, reordered):
    default = Outcomes.from_table_env(gym.make(ENV, split="test"))
    other = Outcomes.from_table_env(
        gym.make("LLMRouting-Table-v0", table=str(reordered), split="test")
    )
    ours, theirs = evaluate_on_data(knn, other), evaluate_on_data(knn, default)
    for key in ("perf", "cost", "reward", "share"):
        assert ours[key] == theirs[key], key


def test_hierrouter_scores_the_same_on_a_table_with_the_models_reordered(ppo, reordered):
    assert ppo.models == env_models(gym.make(ENV))
    default = evaluate_agent(ppo, gym.make(ENV, split="test"))
    other = evaluate_agent(ppo, gym.make("LLMRouting-Table-v0", table=str(reordered), split="test"))
    assert other["perf"] == default["perf"] and other["share"] == default["share"]


def test_hierrouter_cascade_remaps_actions_and_per_model_observations(reordered):
    agent = HierRouter(**SMALL_PPO).fit(CASCADE, total_timesteps=256)
    default = evaluate_agent(agent, gym.make(CASCADE, split="test"), return_episodes=True)
    other_env = gym.make("LLMRouting-Table-Cascade-v0", table=str(reordered), split="test")
    other = evaluate_agent(agent, other_env, return_episodes=True)
    # after the first call the policy reads "tried"/"outcomes": they must be reordered too
    assert other["share"] == default["share"] and other["perf"] == default["perf"]
    assert other["calls_per_episode"] == default["calls_per_episode"]


def test_saved_ppo_zip_keeps_the_model_names(ppo, reordered, tmp_path):
    loaded = HierRouter.load(ppo.save(tmp_path / "ppo"))  # save appends .zip, load finds it
    assert loaded.models == ppo.models
    other = gym.make("LLMRouting-Table-v0", table=str(reordered), split="test")
    assert evaluate_agent(loaded, other)["share"] == evaluate_agent(ppo, other)["share"]


def test_loaded_one_shot_router_keeps_the_model_names(knn, reordered, tmp_path):
    loaded = KNNRouter.load(knn.save(tmp_path / "knn.pt"))
    other = gym.make("LLMRouting-Table-v0", table=str(reordered), split="test")
    assert loaded.models == knn.models
    assert evaluate_agent(loaded, other)["share"] == evaluate_agent(knn, other)["share"]


# ---------------------------------------------------------------- checkpoints and observations


def test_checkpoint_errors_name_the_path_and_the_kind_of_file(knn, ppo, tmp_path):
    knn_file, ppo_file = knn.save(tmp_path / "knn.pt"), ppo.save(tmp_path / "ppo.zip")
    with pytest.raises(CheckpointError, match="knn.pt is not a HierRouter checkpoint"):
        HierRouter.load(knn_file)
    with pytest.raises(CheckpointError, match="ppo.zip is a HierRouter checkpoint.*Router.load"):
        KNNRouter.load(ppo_file)
    with pytest.raises(FileNotFoundError, match=r"checkpoint nope\.zip does not exist\.$"):
        HierRouter.load("nope.zip")
    for source, suffix, cls in ((knn_file, ".pt", KNNRouter), (ppo_file, ".zip", HierRouter)):
        cut = tmp_path / f"truncated{suffix}"
        cut.write_bytes(source.read_bytes()[:400])
        with pytest.raises(CheckpointError, match=f"truncated{suffix}"):
            cls.load(cut)
        garbage = tmp_path / f"garbage{suffix}"
        garbage.write_bytes(b"not a checkpoint at all\n" * 10)
        with pytest.raises(CheckpointError, match=f"garbage{suffix}"):
            cls.load(garbage)


def test_saving_an_unfitted_router_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="KNNRouter is not fitted: nothing to save"):
        KNNRouter().save(tmp_path / "knn.pt")
    assert not (tmp_path / "knn.pt").exists()


def test_knn_rejects_wrong_size_and_nan_observations(knn):
    with pytest.raises(ValueError, match="384-dimensional.*has 10 values"):
        knn.predict(np.zeros(10, dtype=np.float32))
    bad = np.zeros(384, dtype=np.float32)
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn.predict(bad)
    with pytest.raises(ValueError, match="NaN"):
        knn.select_arms(np.stack([np.ones(384, dtype=np.float32), bad]))


def test_hierrouter_rejects_nan_observations(ppo):
    with pytest.raises(ValueError, match="NaN"):
        ppo.predict(np.full(384, np.nan, dtype=np.float32))


def test_haps_remaps_its_assignment_on_a_pool_in_another_order(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_haps import MODELS, make_env, quick

    from agents.haps import HAPSAgent

    config = quick()
    forward = make_env(tmp_path / "ab", config)
    backward = make_env(tmp_path / "ba", config, models=list(reversed(MODELS)))
    try:
        agent = HAPSAgent(config)
        agent.adapt_to(forward)
        question = "Which river flows through the capital of Freedonia?"
        names = {}
        for label, env in (("forward", forward), ("backward", backward)):
            agent.adapt_to(env)
            action = agent.predict_episode(question)
            pool = env.unwrapped.model_names
            names[label] = [pool[i] for i in action["assignment"]]
            assert env.action_space.contains(action)
        assert backward.unwrapped.model_names == list(reversed(forward.unwrapped.model_names))
        assert names["backward"] == names["forward"]
        short = make_env(tmp_path / "a", config, models=[MODELS[0]])
        with pytest.raises(ValueError, match=f"lacks \\['{MODELS[1]}'\\]"):
            agent.adapt_to(short)
        short.close()
    finally:
        forward.close()
        backward.close()


def test_load_checkpoint_names_a_damaged_file(knn, tmp_path):
    from routing_gym.bench import load_checkpoint

    cut = tmp_path / "knn.pt"
    cut.write_bytes(knn.save(tmp_path / "whole.pt").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="knn.pt is not a readable agent checkpoint"):
        load_checkpoint(cut)

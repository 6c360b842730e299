"""HAPS on the hybrid HotpotQA env with tiny random models: warm-up, joint phase, ablations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import routing_gym  # noqa: F401
from agents.base import single_threaded
from agents.evaluation import evaluate_agent
from agents.haps import HAPSAgent, HAPSConfig, haps_env_config, haps_reward, warmup_targets
from routing_gym.action_table import ActionTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "envs"))
from test_live_envs import tiny_config  # noqa: E402

ENV_ID = "LLMRouting-HotpotQA-HAPS-v0"
QUESTIONS = {
    "toy-bridge-1": "Which river flows through the capital of Freedonia?",
    "toy-comparison-2": "Are Red Hill and Green Hill both made up?",
}
MODELS = ("tiny-llama", "tiny-qwen2")


def quick(**overrides) -> HAPSConfig:
    """A small, fast configuration on the tiny random backbone."""
    base = dict(
        backbone="tiny-llama", progress_bar=False, joint_updates=1, episodes_per_update=1, lr=1e-3
    )
    return HAPSConfig(**{**base, **overrides})


def make_env(tmp_path: Path, config: HAPSConfig, **extra) -> gym.Env:
    # lora_scale=30 makes the tiny models' adapters matter, so the token log-likelihood moves
    env_config = tiny_config(ENV_ID, tmp_path, lora_scale=30.0, **extra)
    return gym.make(ENV_ID, config=haps_env_config(config, temperature=1.0, **env_config))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on short prompts: one torch thread is faster than two on a busy CPU."""
    with single_threaded():
        yield


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("haps"), quick())
    yield env
    env.close()


def lora_of(agent: HAPSAgent, question: str) -> dict[str, np.ndarray]:
    return agent.predict_episode(question)["lora"]


def test_warmup_targets_break_ties_as_configured():
    rewards = np.array([[0.5, 0.9, 0.9, 0.1]])
    costs = np.array([[0.0, 0.8, 0.2, 0.0]])
    assert warmup_targets(rewards, costs, "cheapest").tolist() == [[0, 0, 1, 0]]
    assert warmup_targets(rewards, costs, "first").tolist() == [[0, 1, 0, 0]]
    assert warmup_targets(rewards, costs, "soft").tolist() == [[0, 0.5, 0.5, 0]]


def test_haps_reward_is_f1_or_minus_one_minus_lambda_cost():
    assert haps_reward(0.4, 0.5, lam=0.2) == pytest.approx(0.4 - 0.1)
    assert haps_reward(0.0, 0.5, lam=0.2) == pytest.approx(-1.0 - 0.1)
    assert haps_reward(0.0, 0.5, lam=0.2, shaping="none") == pytest.approx(-0.1)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="'router'"):
        HAPSAgent(quick(router="greedy"))
    with pytest.raises(ValueError, match="'fixed_assignment'"):
        HAPSAgent(quick(router="fixed"))
    with pytest.raises(ValueError, match="'share_backbone'"):
        HAPSAgent(quick(share_backbone=False))
    with pytest.raises(ValueError, match="'lora_layers'"):
        HAPSAgent(quick(lora_layers=0))
    with pytest.raises(ValueError, match="unknown_key"):
        HAPSAgent(quick(), unknown_key=1)


def test_agent_rejects_an_env_with_other_lora_depth(env):
    with pytest.raises(ValueError, match="lora_layers"):
        HAPSAgent(quick(lora_layers=2)).adapt_to(env)


def test_warmup_reaches_the_argmax_of_a_hand_written_table(env, tmp_path):
    # (student, teacher): question 1 is best with (llama, qwen2), question 2 with (qwen2, qwen2)
    best = {"toy-bridge-1": (MODELS[0], MODELS[1]), "toy-comparison-2": (MODELS[1], MODELS[1])}
    rows = []
    for index, qid in enumerate(QUESTIONS):
        for student in MODELS:
            for teacher in MODELS:
                perf = 1.0 if (student, teacher) == best[qid] else 0.2
                row = {
                    "question_id": qid,
                    "index": index,
                    "assignment": {"student": student, "teacher": teacher},
                    "perf": perf,
                    "cost": 1e-6,
                    "prompt_tokens": 100,
                    "completion_tokens": 10,
                    "turns": 4,
                }
                rows.append(json.dumps(row))
    path = tmp_path / "table.jsonl"
    path.write_text("\n".join(rows) + "\n")
    agent = HAPSAgent(quick(warmup_epochs=80, warmup_lr=3e-3))
    agent.fit_env(env, action_table=ActionTable.load(path), updates=0)
    assert agent.last_warmup["accuracy"] == 1.0
    for qid, question in QUESTIONS.items():
        chosen = agent.predict_episode(question)["assignment"].tolist()
        assert [MODELS[i] for i in chosen] == list(best[qid])


def test_generated_adapters_are_the_envs_adapters(env):
    agent = HAPSAgent(quick(zero_init_a=False))
    agent.adapt_to(env)
    action = agent.predict_episode(QUESTIONS["toy-bridge-1"])
    from_env = env.unwrapped.adapters_from_action(action["lora"])
    prompt = agent.prompt_for(QUESTIONS["toy-bridge-1"])
    for model, adapter in from_env.items():
        generator = agent.policy.generator(model)
        flat = generator(agent.features([prompt])[1])[0]
        ours = generator.adapter(flat, agent.layout.alpha, agent.layout.scale, model)
        assert ours.digest == adapter.digest
        assert flat.requires_grad


def test_joint_updates_reduce_the_loss_and_change_the_adapters(env):
    agent = HAPSAgent(quick())
    agent.adapt_to(env)
    episodes = agent.rollout(env, 2)
    assert all(e.calls for e in episodes) and all(-2.0 <= e.reward <= 1.0 for e in episodes)
    before = lora_of(agent, QUESTIONS["toy-bridge-1"])
    pool, advantages = env.unwrapped.pool, [1.0, 1.0]
    losses = [agent.joint_loss(episodes, advantages, pool)]
    for _ in range(3):
        stats = agent.update(episodes, advantages, pool)
        assert np.isfinite(stats["loss"]) and stats["token_logprob"] < 0
        losses.append(agent.joint_loss(episodes, advantages, pool))
    assert losses[-1] < losses[0]
    after = lora_of(agent, QUESTIONS["toy-bridge-1"])
    assert any(not np.array_equal(before[m], after[m]) for m in before)


@pytest.mark.parametrize("finetune", [False, True], ids=["frozen-backbone", "finetuned-backbone"])
def test_checkpoint_round_trips_with_the_same_predictions(env, tmp_path, finetune):
    config = quick(
        tensorboard_log=str(tmp_path / "runs"), zero_init_a=False, finetune_backbone=finetune
    )
    agent = HAPSAgent(config)
    agent.fit_env(env, updates=1)
    assert list((tmp_path / "runs").glob("events.out.tfevents.*"))
    folder = agent.save(tmp_path / "haps")
    loaded = HAPSAgent.load(folder)
    for question in QUESTIONS.values():
        a, b = agent.predict_episode(question), loaded.predict_episode(question)
        np.testing.assert_array_equal(a["assignment"], b["assignment"])
        for model in a["lora"]:
            np.testing.assert_array_equal(a["lora"][model], b["lora"][model])
    np.testing.assert_array_equal(
        agent.assignment_logits([agent.prompt_for("q")]),
        loaded.assignment_logits([loaded.prompt_for("q")]),
    )


def test_predict_reads_the_bound_envs_question_and_plugs_into_evaluation(env):
    agent = HAPSAgent(quick())
    agent.adapt_to(env)
    obs, _ = env.reset(seed=0, options={"index": 1})
    action, state = agent.predict(obs)
    assert state is None and env.action_space.contains(action)
    same = agent.predict_episode(QUESTIONS["toy-comparison-2"])
    np.testing.assert_array_equal(action["assignment"], same["assignment"])
    scores = evaluate_agent(agent, env, n_eval_episodes=2)
    assert scores["episodes"] == 2 and 0.0 <= scores["perf"] <= 1.0


@pytest.mark.parametrize(
    "ablation",
    [
        {"router": "random"},
        {"router": "fixed", "fixed_assignment": ["tiny-qwen2", "tiny-llama"]},
        {"use_lora": False},
        {"share_backbone": False, "finetune_backbone": True},
        {"lora_layers": "all"},
    ],
    ids=["random-router", "fixed-router", "no-lora", "no-sharing", "lora-all-layers"],
)
def test_each_ablation_trains(ablation, env, tmp_path):
    config = quick(**ablation, zero_init_a=False)
    train_env = env if "lora_layers" not in ablation else make_env(tmp_path, config)
    agent = HAPSAgent(config)
    agent.adapt_to(train_env)
    high = [p.detach().clone() for p in agent.policy.high.parameters()]
    before = lora_of(agent, QUESTIONS["toy-bridge-1"])
    agent.fit_env(train_env, updates=1)
    episode = agent.rollout(train_env, 1)[0]
    after = lora_of(agent, QUESTIONS["toy-bridge-1"])
    high_moved = any(not torch.equal(a, b) for a, b in zip(high, agent.policy.high.parameters()))
    lora_moved = any(not np.array_equal(before[m], after[m]) for m in before)
    if ablation.get("router") == "fixed":
        assert agent.arms[episode.arm] == (1, 0)
    if "router" in ablation:
        assert not high_moved and lora_moved
    if ablation.get("use_lora") is False:
        assert high_moved and not lora_moved and not any(v.any() for v in after.values())
    if ablation.get("share_backbone") is False:
        assert agent.encoder_low is not agent.encoder_high and agent.encoder_low.trainable
        assert not agent.encoder_high.trainable and lora_moved
    if ablation.get("lora_layers") == "all":
        shapes = train_env.unwrapped.lora_shapes
        assert all(len(agent.policy.generator(m).layers) == len(shapes[m]) > 1 for m in shapes)
        assert lora_moved
        train_env.close()


def test_early_stopping_keeps_the_best_validated_policy(env, monkeypatch):
    agent = HAPSAgent(quick(eval_every=1, patience=1, zero_init_a=False))
    agent.adapt_to(env)
    scores, snapshots = iter([0.5, 0.2, 0.1]), []

    def fake_evaluate(valid_env, episodes):
        snapshots.append({k: v.clone() for k, v in agent.policy.state_dict().items()})
        return {"env_reward": next(scores)}

    monkeypatch.setattr(agent, "evaluate", fake_evaluate)
    agent.train_joint(env, valid_env=env, updates=3)
    assert len(snapshots) == 2  # the second score is worse and patience is 1: stop
    for key, value in agent.policy.state_dict().items():
        assert torch.equal(value, snapshots[0][key])
    assert any(not torch.equal(v, snapshots[0][k]) for k, v in snapshots[1].items())


def assert_same_state(a, b, where=""):
    """Nested dicts / lists of tensors and numbers are equal, bit for bit."""
    if isinstance(a, dict):
        assert sorted(a, key=str) == sorted(b, key=str), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize(("rollout_envs", "best"), [(1, "last"), (2, "first")],
                         ids=["one-env-best-last", "lockstep-copies-best-first"])
def test_a_stopped_joint_phase_resumes_to_the_state_of_an_unstopped_one(
    env, tmp_path, monkeypatch, rollout_envs, best
):
    config = quick(joint_updates=3, episodes_per_update=2, rollout_envs=rollout_envs, zero_init_a=False,
                   eval_every=1, valid_episodes=1, patience=5)
    # validation scores by update. Best last: the final weights are the third update's, which
    # depend on the restored Adam moments. Best first: they depend on early stopping's state.
    score = (lambda step: float(step)) if best == "last" else (lambda step: 1.0 / step)
    monkeypatch.setattr(HAPSAgent, "evaluate",
                        lambda self, valid_env, episodes: {"env_reward": score(self.logged_steps["joint"])})
    straight = tmp_path / "straight.pt"
    HAPSAgent(config).fit_env(env, valid_env=env, checkpoint=straight)

    path = tmp_path / "joint.pt"
    original = HAPSAgent.update
    calls = []

    def killed_in_the_third_update(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(HAPSAgent, "update", killed_in_the_third_update)
        with pytest.raises(KeyboardInterrupt):
            HAPSAgent(config).fit_env(env, valid_env=env, checkpoint=path)
    saved = torch.load(path, weights_only=True)
    assert saved["next_update"] == 2 and not saved["finished"]

    resumed = HAPSAgent(config)
    steps = []
    schedule = HAPSAgent.training_schedule
    with monkeypatch.context() as patch:
        patch.setattr(HAPSAgent, "training_schedule",
                      lambda self, step, n: steps.append(step) or schedule(self, step, n))
        resumed.fit_env(env, valid_env=env, checkpoint=path)
    assert steps == [2]  # only the update the stopped run did not finish
    expected, got = torch.load(straight, weights_only=True), torch.load(path, weights_only=True)
    assert got["finished"] and "optimizer" not in got  # a finished run keeps its weights only
    assert (expected["stopper"]["best"], expected["stopper"]["stale"]) == ((3.0, 0) if best == "last" else (1.0, 2))
    # the final weights, the baseline, early stopping's record: all bit for bit
    assert_same_state(expected, got)

    finished = HAPSAgent(config)
    finished.fit_env(env, valid_env=env, checkpoint=path)  # a finished run only loads its weights
    assert_same_state(resumed.policy.state_dict(), finished.policy.state_dict())
    with pytest.raises(ValueError, match="another run"):
        HAPSAgent(quick(**{**config.__dict__, "lr": 5e-4})).fit_env(env, valid_env=env, checkpoint=path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable HAPS checkpoint"):
        HAPSAgent(config).fit_env(env, valid_env=env, checkpoint=path)


def test_the_joint_schedule_walks_every_question_once_per_epoch():
    agent = HAPSAgent(quick(episodes_per_update=3))
    episodes = [e for step in range(4) for e in agent.training_schedule(step, 4)]
    assert sorted(i for i, _ in episodes[:4]) == [0, 1, 2, 3] == sorted(i for i, _ in episodes[4:8])
    assert len({seed for _, seed in episodes}) == len(episodes)
    assert agent.training_schedule(2, 4) == HAPSAgent(quick(episodes_per_update=3)).training_schedule(2, 4)
    assert agent.training_schedule(2, 4) != HAPSAgent(quick(episodes_per_update=3, seed=1)).training_schedule(2, 4)


@pytest.mark.parametrize("use_lora", [False, True], ids=["no-lora", "lora"])
def test_lockstep_evaluation_plays_each_question_once_like_one_at_a_time(tmp_path, use_lora):
    config = quick(use_lora=use_lora, zero_init_a=False)
    greedy = gym.make(ENV_ID, config=haps_env_config(
        config, temperature=None, **tiny_config(ENV_ID, tmp_path, lora_scale=30.0)))
    agent = HAPSAgent(config)
    agent.adapt_to(greedy)
    alone = evaluate_agent(agent, greedy, return_episodes=True)
    one = agent.evaluate_questions(greedy)
    three = agent.evaluate_questions(greedy, copies=3)
    count = len(greedy.unwrapped.examples)
    assert count == 2  # three copies: one round with a spare copy
    assert [row["index"] for row in one["per_episode"]] == list(range(count))
    for mine, theirs in zip(one["per_episode"], sorted(alone["per_episode"], key=lambda row: row["index"])):
        # SB3's vec env hands rewards back as float32; the env's own are float64
        assert mine == {**theirs, "reward": pytest.approx(theirs["reward"], abs=1e-6)}
    assert three["per_episode"] == one["per_episode"]
    for key in ("perf", "cost", "reward", "usd", "episodes", "share"):
        assert three[key] == pytest.approx(alone[key]), key
    # early stopping's check plays the same episodes in lockstep copies as one at a time
    lockstep = HAPSAgent(quick(use_lora=use_lora, zero_init_a=False, rollout_envs=2, episodes_per_update=2))
    lockstep.adapt_to(greedy)
    assert lockstep.evaluate(greedy, 2) == agent.evaluate(greedy, 2)
    greedy.close()


def hand_written_table(path: Path, roles: tuple[str, ...]) -> ActionTable:
    """Every assignment of the tiny pool on both questions, the assignment's keys in ``roles`` order."""
    rows = [
        json.dumps({"question_id": qid, "index": index, "assignment": dict(zip(roles, (a, b))), "perf": 0.5,
                    "cost": 1e-6, "prompt_tokens": 10, "completion_tokens": 2, "turns": 2})
        for index, qid in enumerate(QUESTIONS) for a in MODELS for b in MODELS
    ]
    path.write_text("\n".join(rows) + "\n")
    return ActionTable.load(path)


def test_roles_come_from_the_env_and_are_saved_with_the_agent(env, tmp_path):
    from agents.haps import HybridLayout, table_outcomes

    agent = HAPSAgent(quick())
    agent.adapt_to(env)
    roles = list(env.unwrapped.roles)
    assert agent.layout.roles == roles == ["student", "teacher"]
    assert len(agent.arms) == len(MODELS) ** len(roles) == agent.policy.high[-1].out_features
    saved = json.loads((agent.save(tmp_path / "haps") / "config.json").read_text())
    assert saved["layout"]["roles"] == roles
    # a folder written before layouts recorded roles was a Teacher–Student one
    older = {k: v for k, v in saved["layout"].items() if k != "roles"}
    assert HybridLayout.from_dict(older).roles == ["student", "teacher"]
    with pytest.raises(ValueError, match="'fixed_assignment' must name one model per role"):
        HAPSAgent(quick(router="fixed", fixed_assignment=["tiny-llama"])).adapt_to(env)
    # a table whose assignments list the roles in another order is refused, not misread
    assert table_outcomes(hand_written_table(tmp_path / "same.jsonl", ("student", "teacher")), env).num_arms == 4
    with pytest.raises(ValueError, match="roles"):
        table_outcomes(hand_written_table(tmp_path / "swapped.jsonl", ("teacher", "student")), env)

"""Hybrid-action (HAPS) envs and their wrappers, with tiny random models."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import routing_gym  # noqa: F401
from routing_gym.llm.spec import BUILTIN_SPECS
from routing_gym.wrappers import DiscreteOnly, FlattenHybridAction, LatentLoRA
from test_live_envs import tiny_config

HAPS_IDS = ["LLMRouting-HotpotQA-HAPS-v0", "LLMRouting-MMLU-HAPS-v0"]
WRAPPERS = {
    "flat": FlattenHybridAction,
    "latent": lambda env: FlattenHybridAction(LatentLoRA(env, latent_dim=4, seed=0)),
    "discrete": DiscreteOnly,
}


def make(env_id, tmp_path, **extra):
    return gym.make(env_id, config=tiny_config(env_id, tmp_path, **extra))


def hybrid_action(env, assignment=(0, 1), value=0.5):
    lora = {name: np.full(box.shape, value, dtype=np.float32) for name, box in env.action_space["lora"].spaces.items()}
    return {"assignment": np.array(assignment), "lora": lora}


# The raw hybrid IDs, and the flat wrapper under SB3's checker: tests/envs/test_registry_checkers.py.
@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@pytest.mark.parametrize("env_id", HAPS_IDS)
def test_wrapped_hybrid_env_passes_both_checkers(env_id, wrapper, tmp_path):
    env = WRAPPERS[wrapper](make(env_id, tmp_path).unwrapped)
    assert set(env.unwrapped.action_space.spaces) == {"assignment", "lora"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)
    env.close()
    # a checker's warning is a failure, but for Gymnasium's note that a wrapped env is checked:
    # here the wrapper is the env under test
    wrapped_note = "is different from the unwrapped version"
    assert [str(w.message) for w in caught if wrapped_note not in str(w.message)] == []


def test_lora_boxes_take_their_shapes_from_each_model(tmp_path):
    env = make("LLMRouting-HotpotQA-HAPS-v0", tmp_path, lora_rank=4, lora_layers=2).unwrapped
    for name in ("tiny-llama", "tiny-qwen2"):
        layers = BUILTIN_SPECS[name].options["config"]["num_hidden_layers"]
        hidden = BUILTIN_SPECS[name].options["config"]["hidden_size"]
        assert sorted(env.lora_shapes[name]) == [layers - 2, layers - 1]
        assert env.action_space["lora"][name].shape == (2 * (hidden * 4 + 4 * hidden),)


def test_closed_models_get_no_lora_entry(tmp_path):
    closed = {**BUILTIN_SPECS["tiny-qwen2"].to_dict(), "name": "tiny-qwen2-api", "open": False}
    env = make("LLMRouting-HotpotQA-HAPS-v0", tmp_path, models=["tiny-llama", closed]).unwrapped
    assert list(env.action_space["lora"].spaces) == ["tiny-llama"]
    assert env.action_space["assignment"].nvec.tolist() == [2, 2]


def test_lora_changes_the_episode_and_zero_lora_is_no_lora(tmp_path):
    env = make("LLMRouting-HotpotQA-HAPS-v0", tmp_path, record_text=True, lora_scale=30.0).unwrapped
    env.reset(seed=0, options={"index": 0})
    _, _, _, _, with_lora = env.step(hybrid_action(env, (0, 0), 0.5))
    env.reset(seed=0, options={"index": 0})
    _, _, _, _, zero = env.step(hybrid_action(env, (0, 0), 0.0))
    assert set(with_lora["adapters"]) == {"tiny-llama", "tiny-qwen2"} and zero["adapters"] == {}
    assert [c["completion_ids"] for c in with_lora["calls"]] != [c["completion_ids"] for c in zero["calls"]]
    plain = make("LLMRouting-HotpotQA-Assign-v0", tmp_path, record_text=True).unwrapped
    plain.reset(seed=0, options={"index": 0})
    _, _, _, _, assigned = plain.step(np.array([0, 0]))
    assert [c["completion_ids"] for c in assigned["calls"]] == [c["completion_ids"] for c in zero["calls"]]


def test_nan_lora_weight_is_rejected_naming_the_model(tmp_path):
    env = make("LLMRouting-HotpotQA-HAPS-v0", tmp_path).unwrapped
    env.reset(seed=0)
    action = hybrid_action(env)
    action["lora"]["tiny-qwen2"][3] = np.nan
    with pytest.raises(ValueError, match="tiny-qwen2.*NaN"):
        env.step(action)


def test_latent_lora_maps_few_numbers_to_every_factor(tmp_path):
    raw = make("LLMRouting-HotpotQA-HAPS-v0", tmp_path).unwrapped
    latent = LatentLoRA(raw, latent_dim=3, seed=7)
    again = LatentLoRA(raw, latent_dim=3, seed=7)
    z = {"assignment": np.array([1, 0]), "lora": {n: np.array([0.2, -0.4, 0.9], np.float32) for n in latent.bases}}
    mapped = latent.action(z)
    for name, box in raw.action_space["lora"].spaces.items():
        assert mapped["lora"][name].shape == box.shape and box.contains(mapped["lora"][name])
        np.testing.assert_array_equal(mapped["lora"][name], again.action(z)["lora"][name])
        assert np.count_nonzero(mapped["lora"][name]) > box.shape[0] // 2


def test_flat_action_decodes_assignment_by_argmax(tmp_path):
    raw = make("LLMRouting-HotpotQA-HAPS-v0", tmp_path).unwrapped
    flat = FlattenHybridAction(raw)
    vector = np.zeros(flat.action_space.shape, np.float32)
    vector[1] = 1.0  # student block [0, 1] -> model 1
    vector[2] = 1.0  # teacher block [1, 0] -> model 0
    decoded = flat.action(vector)
    assert decoded["assignment"].tolist() == [1, 0]
    assert raw.action_space.contains(decoded)


@pytest.mark.parametrize("env_id", ["LLMRouting-HotpotQA-HAPS-v0", "LLMRouting-MMLU-Assign-v0"])
def test_batched_vector_env_plays_whole_episodes_in_lockstep(env_id, tmp_path, monkeypatch):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from routing_gym.vector import make_batched_vec_env

    config = tiny_config(env_id, tmp_path)
    vec = make_batched_vec_env(env_id, n_envs=4, seed=0, env_kwargs={"config": config})
    template = vec.envs[0].unwrapped
    if "HAPS" in env_id:
        actions = [hybrid_action(template, (i % 2, (i // 2) % 2), value=0.1 * i) for i in range(4)]
    else:
        actions = [np.array([i % 2, (i // 2) % 2]) for i in range(4)]
    pool = template.pool
    calls = []
    original = type(pool).generate
    monkeypatch.setattr(type(pool), "generate", lambda self, reqs: calls.append(len(reqs)) or original(self, reqs))
    vec.reset()
    vec.step_async(actions)
    _, batched_rewards, dones, batched_infos = vec.step_wait()
    monkeypatch.undo()
    assert dones.all()
    # one generation call per round of turns, each with a turn of every unfinished episode
    assert len(calls) == max(len(info["roles"]) for info in batched_infos)
    assert calls[0] == 4
    vec.close()
    # The same seeds and actions stepped one env at a time give the same episodes.
    plain = DummyVecEnv([lambda: gym.make(env_id, config=config) for _ in range(4)])
    plain.seed(0)
    plain.reset()
    plain.step_async(actions)
    _, rewards, _, infos = plain.step_wait()
    np.testing.assert_allclose(rewards, batched_rewards)
    for one, batched in zip(infos, batched_infos):
        assert one["cost"] == batched["cost"] and one["answer"] == batched["answer"]
        assert one["assignment"] == batched["assignment"] and one.get("adapters") == batched.get("adapters")


def test_the_vector_env_checks_each_action_once_and_calls_no_model_for_a_bad_one(tmp_path, monkeypatch):
    import routing_gym.envs.live_base as live_base

    env_id = "LLMRouting-MMLU-Assign-v0"
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", config=tiny_config(env_id, tmp_path))
    vec.reset(seed=0)
    checks, calls = [], []
    check = live_base.require_action
    monkeypatch.setattr(live_base, "require_action", lambda space, action: checks.append(1) or check(space, action))
    pool = vec.envs[0].pool
    generate = type(pool).generate
    monkeypatch.setattr(type(pool), "generate", lambda self, reqs: calls.append(len(reqs)) or generate(self, reqs))
    with pytest.raises(ValueError, match="outside the action space"):
        vec.step(np.array([[0, 1], [0, 2]]))  # env 1 asks for model 2 of a pool of two
    assert calls == []  # nothing was played: the bad action was caught before any batch ran
    checks.clear()
    _, _, terminated, _, infos = vec.step(np.array([[0, 1], [1, 0]]))
    assert len(checks) == 2  # one check per env and step, none behind the step's back
    assert terminated.all() and calls and calls[0] == 2
    assert [infos["final_info"]["assignment"]["student"][i] for i in range(2)] == ["tiny-llama", "tiny-qwen2"]
    vec.close()
"""Rewards, normalized costs and masks of every env kind, against numbers worked out by hand.

Each expected value is written as its arithmetic, from prices and token counts; none is read
back from the env's own normalizer or from ``info["normalized_cost"]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import routing_gym  # noqa: F401
from routing_gym.llm import TINY_POOL

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"

# A three-model table. Every query has 100 prompt tokens and, by config, 10 completion tokens,
# so each model's call costs the same on every row (USD = (100·in + 10·out) / 1e6):
#   cheap (1, 2 USD/M):   (100·1  + 10·2)  / 1e6 =  120e-6
#   mid   (3, 6 USD/M):   (100·3  + 10·6)  / 1e6 =  360e-6
#   dear  (10, 20 USD/M): (100·10 + 10·20) / 1e6 = 1200e-6
# and whichever rows the id hash puts into the train split, the fitted bounds are the same.
PRICES = {
    "cheap": {"input_price": 1.0, "output_price": 2.0},
    "mid": {"input_price": 3.0, "output_price": 6.0},
    "dear": {"input_price": 10.0, "output_price": 20.0},
}
COST = {"cheap": 120e-6, "mid": 360e-6, "dear": 1200e-6}
# row 0 scores; the other rows only fill the splits
ROW0 = {"cheap": 0.25, "mid": 0.5, "dear": 1.0}


@pytest.fixture
def tiny_table(tmp_path) -> dict:
    """Paths of the three-model table (24 rows) and its prices."""
    rows = []
    for i in range(24):
        scores = ROW0 if i == 0 else {"cheap": float(i % 2), "mid": 1.0, "dear": 0.0}
        rows.append({"id": f"q{i}", "task": "toy", "prompt_tokens": 100,
                     "embedding": [1.0, 0.0, 0.0, 0.0], **scores})
    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows))
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps(PRICES))
    return {"table": str(table), "prices": str(prices), "completion_tokens": 10, "split": "all",
            "shuffle": False}


def step_row0(env, model: str):
    env.reset(seed=0, options={"index": 0})
    return env.step(list(env.model_names).index(model))


# ---------------------------------------------------------------- one-step table env


def test_table_reward_is_score_minus_lambda_times_min_max_cost(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, lam=0.9, cost_quantile=1.0).unwrapped
    assert env.model_names == ("cheap", "mid", "dear")
    # bounds: low = 120e-6 (cheapest call), high = 1200e-6 (dearest), span 1080e-6
    # mid: (360 - 120) / 1080 = 2/9; reward 0.5 - 0.9 · 2/9 = 0.5 - 0.2 = 0.3
    _, reward, terminated, truncated, info = step_row0(env, "mid")
    assert terminated and not truncated
    assert info["cost"] == pytest.approx(360e-6, rel=1e-12)
    assert info["normalized_cost"] == pytest.approx(2 / 9, rel=1e-12)
    assert reward == pytest.approx(0.3, rel=1e-12)
    assert info["vector_reward"].tolist() == pytest.approx([0.5, -2 / 9], rel=1e-6)
    assert info["oracle_score"] == 1.0 and info["model"] == "mid"
    # cheap: normalized 0, reward = its score 0.25; dear: normalized 1, reward 1.0 - 0.9 = 0.1
    assert step_row0(env, "cheap")[1] == pytest.approx(0.25, rel=1e-12)
    assert step_row0(env, "dear")[1] == pytest.approx(0.1, rel=1e-12)
    # every (query, model) at once: each column is 0, 2/9, 1
    np.testing.assert_allclose(env.normalized_costs, np.tile([0.0, 2 / 9, 1.0], (24, 1)), rtol=1e-12)


def test_table_default_quantile_bound_on_a_table_with_three_cost_levels(tiny_table):
    # 3 calls per train row at 120e-6, 360e-6, 1200e-6: with n >= 2 train rows the 0.99 quantile
    # sits at position 0.99·(3n - 1) >= 2n, inside the run of 1200e-6 values, so high = 1200e-6
    env = gym.make("LLMRouting-Table-v0", **tiny_table, lam=1.0).unwrapped
    assert (env.cost_normalizer.low, env.cost_normalizer.high) == pytest.approx((120e-6, 1200e-6))
    assert step_row0(env, "mid")[1] == pytest.approx(0.5 - 2 / 9, rel=1e-12)


def test_table_given_cost_bounds_shift_and_clip(tiny_table):
    env = gym.make("LLMRouting-Table-v0", **tiny_table, lam=2.0, cost_bounds=[240e-6, 1440e-6]).unwrapped
    # span 1200e-6: mid (360 - 240) / 1200 = 0.1 -> 0.5 - 2·0.1 = 0.3
    _, reward, _, _, info = step_row0(env, "mid")
    assert info["normalized_cost"] == pytest.approx(0.1, rel=1e-9) and reward == pytest.approx(0.3, rel=1e-9)
    # cheap is under the low bound: clipped to 0 -> reward 0.25
    assert step_row0(env, "cheap")[1] == pytest.approx(0.25, rel=1e-12)
    # dear: (1200 - 240) / 1200 = 0.8 -> 1.0 - 1.6 = -0.6
    assert step_row0(env, "dear")[1] == pytest.approx(-0.6, rel=1e-9)


def test_table_lambda_regimes_and_lambda_in_the_observation(tiny_table):
    for regime, lam in (("performance-first", 0.1), ("balanced", 0.5), ("cost-first", 1.0)):
        env = gym.make("LLMRouting-Table-v0", **tiny_table, lam=regime, cost_quantile=1.0, lam_in_obs=True).unwrapped
        obs, _ = env.reset(seed=0, options={"index": 0})
        assert obs["lam"].tolist() == pytest.approx([lam / (1 + lam)], rel=1e-6)  # λ/(1+λ)
        assert env.step(1)[1] == pytest.approx(0.5 - lam * 2 / 9, rel=1e-12)


# ---------------------------------------------------------------- cascade


def cascade(tiny_table, **config):
    return gym.make("LLMRouting-Table-Cascade-v0", **tiny_table, **config).unwrapped


def test_cascade_final_reward_uses_the_worst_episode_as_the_cost_bound(tiny_table):
    # max_depth 2: the worst episode calls the two dearest models, 1200e-6 + 360e-6 = 1560e-6;
    # low is 0 (no call). cheap then mid: best score max(0.25, 0.5) = 0.5,
    # cost 120e-6 + 360e-6 = 480e-6 -> normalized 480 / 1560 = 4/13; reward 0.5 - 0.65 · 4/13 = 0.3
    env = cascade(tiny_table, max_depth=2, lam=0.65)
    env.reset(seed=0, options={"index": 0})
    obs, reward, terminated, _, info = env.step(0)
    assert not terminated and reward == 0.0
    assert obs["cost"].tolist() == pytest.approx([120 / 1560], rel=1e-6)
    assert obs["depth"].tolist() == [0.5] and obs["outcomes"].tolist() == [0, 0, 0]  # 0.25 < 0.5
    obs, reward, terminated, _, info = env.step(1)
    assert terminated and info["depth"] == 2 and info["called"] == ["cheap", "mid"]
    assert info["cost"] == pytest.approx(480e-6, rel=1e-12)
    assert info["normalized_cost"] == pytest.approx(4 / 13, rel=1e-12)
    assert reward == pytest.approx(0.3, rel=1e-12)
    assert obs["outcomes"].tolist() == [0, 1, 0]  # mid's 0.5 reaches the 0.5 threshold


def test_cascade_per_step_rewards_by_hand(tiny_table):
    env = cascade(tiny_table, max_depth=2, lam=0.65, reward_mode="per_step")
    env.reset(seed=0, options={"index": 0})
    # cheap: -0.65 · 120/1560 = -0.05; mid ends it: 0.5 - 0.65 · 360/1560 = 0.5 - 0.15 = 0.35
    assert env.step(0)[1] == pytest.approx(-0.05, rel=1e-12)
    assert env.step(1)[1] == pytest.approx(0.35, rel=1e-12)


def test_cascade_stop_and_a_repeated_model_end_with_the_best_answer(tiny_table):
    env = cascade(tiny_table, max_depth=2, lam=0.65)
    env.reset(seed=0, options={"index": 0})
    env.step(2)  # dear: score 1.0, cost 1200e-6
    _, reward, terminated, _, info = env.step(env.stop_action)
    # 1.0 - 0.65 · 1200/1560 = 1.0 - 0.5 = 0.5
    assert terminated and info["model"] == "STOP" and reward == pytest.approx(0.5, rel=1e-12)
    env.reset(seed=0, options={"index": 0})
    env.step(1)  # mid: 0.5 at 360e-6
    _, reward, terminated, _, info = env.step(1)  # tried already: taken as STOP, costs nothing
    # 0.5 - 0.65 · 360/1560 = 0.5 - 0.15 = 0.35
    assert terminated and info["invalid_action"] and reward == pytest.approx(0.35, rel=1e-12)


@pytest.mark.parametrize("model", [0, 1, 2])
def test_cascade_mask_hides_each_called_model_and_only_it(tiny_table, model):
    env = cascade(tiny_table, max_depth=3)
    _, info = env.reset(seed=0, options={"index": 0})
    assert info["action_mask"].tolist() == [True, True, True, True]
    _, _, terminated, _, info = env.step(model)
    expected = [k != model for k in range(3)] + [True]  # STOP stays valid
    assert not terminated
    assert env.action_masks().tolist() == expected and info["action_mask"].tolist() == expected


def test_cascade_mask_after_every_model_was_called(tiny_table):
    env = cascade(tiny_table, max_depth=3)
    env.reset(seed=0, options={"index": 0})
    env.step(2)
    _, _, _, _, info = env.step(0)
    assert info["action_mask"].tolist() == [False, True, False, True]
    obs, _, terminated, _, info = env.step(1)
    assert terminated and info["action_mask"].tolist() == [False, False, False, True]
    assert obs["tried"].tolist() == [1, 1, 1]


# ---------------------------------------------------------------- multi-hop (live, tiny models)


def multihop_config(tmp_path: Path, **extra) -> dict:
    config = {
        "models": list(TINY_POOL),
        "data_dir": str(FIXTURES),
        "fractions": {"test": 1.0},
        "cache_path": str(tmp_path / "responses.sqlite"),
        "max_new_tokens": 8,
        "horizon": 2,
        "shuffle": False,
        "sandbox": {"timeout_s": 3, "cpu_seconds": 2},
    }
    config.update(extra)
    return config


def tiny_qwen2_cost(prompt_tokens: int, completion_tokens: int) -> float:
    """tiny-qwen2's price is 0.02 USD/M in, 0.04 USD/M out."""
    return (prompt_tokens * 0.02 + completion_tokens * 0.04) / 1e6


def test_multihop_default_bound_is_the_dearest_hop_times_the_horizon(tmp_path):
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=multihop_config(tmp_path, lam=2.0)).unwrapped
    # the dearest hop: 1024 prompt tokens (cost_norm_prompt_tokens) and 8 new tokens on
    # tiny-qwen2, (1024·0.02 + 8·0.04) / 1e6 = 20.8e-6; two hops: high = 41.6e-6, low = 0
    env.reset(seed=0, options={"index": 0})
    # a boolean mask (MaskablePPO reads it so): every model, and no STOP before a hop has answered
    mask = env.action_masks()
    assert mask.dtype == np.bool_ and mask.tolist() == [i != env.stop_action for i in range(env.action_space.n)]
    obs, reward, terminated, _, info = env.step(1)
    cost1 = tiny_qwen2_cost(info["prompt_tokens"], info["completion_tokens"])
    assert info["cost"] == pytest.approx(cost1, rel=1e-9) and cost1 > 0
    assert env.action_masks().dtype == np.bool_ and env.action_masks().all()
    assert obs["cost"].tolist() == pytest.approx([cost1 / 41.6e-6], rel=1e-5)
    assert not terminated and reward == 0.0
    _, reward, terminated, _, info = env.step(1)
    cost2 = tiny_qwen2_cost(info["prompt_tokens"], info["completion_tokens"])
    assert terminated and info["perf"] in (0.0, 1.0)
    assert info["normalized_cost"] == pytest.approx(cost2 / 41.6e-6, rel=1e-9)
    assert reward == pytest.approx(info["perf"] - 2.0 * cost2 / 41.6e-6, rel=1e-9)


def test_multihop_given_bounds_subtract_the_low_bound(tmp_path):
    probe = gym.make("LLMRouting-MultiHop-GSM8K-v0", config=multihop_config(tmp_path, horizon=1)).unwrapped
    probe.reset(seed=0, options={"index": 0})
    info = probe.step(1)[4]
    cost = tiny_qwen2_cost(info["prompt_tokens"], info["completion_tokens"])
    probe.close()
    # bounds [cost/4, 7·cost/4]: (cost - cost/4) / (6·cost/4) = 1/2 exactly; λ = 0.4 -> perf - 0.2
    bounds = {"low": cost / 4, "high": 7 * cost / 4}
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0",
                   config=multihop_config(tmp_path, horizon=1, lam=0.4, cost_bounds=bounds)).unwrapped
    env.reset(seed=0, options={"index": 0})
    _, reward, terminated, _, info = env.step(1)  # replayed from the cache: the same tokens
    assert terminated and info["normalized_cost"] == pytest.approx(0.5, rel=1e-9)
    assert reward == pytest.approx(info["perf"] - 0.2, rel=1e-9)


def test_multihop_per_step_cost_pays_each_hop_by_hand(tmp_path):
    env = gym.make("LLMRouting-MultiHop-GSM8K-v0",
                   config=multihop_config(tmp_path, lam=2.0, per_step_cost=True)).unwrapped
    env.reset(seed=0, options={"index": 0})
    _, first, _, _, info = env.step(1)
    cost1 = tiny_qwen2_cost(info["prompt_tokens"], info["completion_tokens"])
    assert first == pytest.approx(-2.0 * cost1 / 41.6e-6, rel=1e-9)
    _, second, terminated, _, info = env.step(1)
    cost2 = tiny_qwen2_cost(info["prompt_tokens"], info["completion_tokens"])
    assert terminated
    assert second == pytest.approx(info["perf"] - 2.0 * (cost2 - cost1) / 41.6e-6, rel=1e-9)


# ---------------------------------------------------------------- live Teacher–Student envs


def live_config(env_id: str, tmp_path: Path, **extra) -> dict:
    protocol = {"student_max_new_tokens": 6, "teacher_max_new_tokens": 4}
    config = {"models": list(TINY_POOL), "data_dir": str(FIXTURES), "shuffle": False,
              "cache_path": str(tmp_path / "responses.sqlite"), "protocol": protocol}
    if "MMLU" in env_id:
        config["split"] = "dev"
    else:
        protocol["search_budget"] = 1
    config.update(extra)
    return config


def live_cost(info: dict) -> float:
    """The episode's USD cost when tiny-qwen2 made every call, generation and scoring passes."""
    return tiny_qwen2_cost(info["prompt_tokens"] + info["scoring_prompt_tokens"],
                           info["completion_tokens"] + info["scoring_completion_tokens"])


@pytest.mark.parametrize("env_id", ["LLMRouting-MMLU-Assign-v0", "LLMRouting-HotpotQA-Assign-v0"])
def test_live_episode_reward_with_bounds_around_its_own_cost(env_id, tmp_path):
    probe = gym.make(env_id, config=live_config(env_id, tmp_path)).unwrapped
    probe.reset(seed=0, options={"index": 0})
    info = probe.step(np.array([1, 1]))[4]  # tiny-qwen2 in both roles
    cost = live_cost(info)
    assert cost > 0 and info["cost"] == pytest.approx(cost, rel=1e-9)
    assert set(info["models"]) == {"tiny-qwen2"}
    probe.close()
    # bounds [cost/3, 5·cost/3]: (cost - cost/3) / (4·cost/3) = 1/2; λ = 0.6 -> perf - 0.3
    bounds = {"low": cost / 3, "high": 5 * cost / 3}
    env = gym.make(env_id, config=live_config(env_id, tmp_path, lam=0.6, cost_bounds=bounds)).unwrapped
    env.reset(seed=0, options={"index": 0})
    _, reward, terminated, _, info = env.step(np.array([1, 1]))  # replayed from the cache
    assert terminated and info["normalized_cost"] == pytest.approx(0.5, rel=1e-9)
    assert reward == pytest.approx(info["perf"] - 0.3, rel=1e-9)
    if "MMLU" in env_id:  # the perf is the letter accuracy of the final answer
        assert info["perf"] == float(info["answer"] == env.current_example.answer)


# ---------------------------------------------------------------- the cost module itself


def test_resolve_lambda_reads_regime_names_loosely_and_numbers_as_floats():
    from routing_gym.cost import resolve_lambda

    # names are stripped, lower-cased and take "_" for "-"
    assert resolve_lambda(" Balanced ") == 0.5
    assert resolve_lambda("COST_FIRST") == 1.0
    assert resolve_lambda("performance_first") == 0.1
    for number, lam in ((0, 0.0), (0.25, 0.25), (3, 3.0), (np.float32(0.5), 0.5)):
        got = resolve_lambda(number)
        assert got == lam and type(got) is float


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), -0.1, float("inf"), float("nan"), None, [1.0], "fast"])
def test_resolve_lambda_refuses_what_is_not_a_lambda(bad):
    from routing_gym.cost import resolve_lambda

    with pytest.raises(ValueError, match="λ|regime"):
        resolve_lambda(bad)


def test_price_cost_by_hand_and_its_bounds():
    from routing_gym.cost import Price

    # (1000·2 + 500·8) / 1e6 = 6000 / 1e6
    assert Price(2.0, 8.0).cost(1000, 500) == pytest.approx(0.006, rel=1e-12)
    # a million prompt tokens costs the input price; a million completion tokens the output price
    np.testing.assert_allclose(Price(2.0, 8.0).cost(np.array([1e6, 0.0]), np.array([0.0, 1e6])), [2.0, 8.0])
    assert Price(0.0, 0.0).cost(10, 10) == 0.0 and Price(0.5, 0.5).cost(2e6, 0) == 1.0
    for field, bad in (("input_per_m", -1.0), ("output_per_m", -1.0), ("input_per_m", float("nan")),
                       ("output_per_m", float("inf"))):
        with pytest.raises(ValueError, match=f"Price.{field}"):
            Price(**{field: bad})


def test_cost_normalizer_fit_clip_and_round_trip():
    from routing_gym.cost import CostNormalizer

    norm = CostNormalizer.fit(c for c in (3.0, 1.0, 2.0))  # any iterable; bounds are its min and max
    assert (norm.low, norm.high) == (1.0, 3.0)
    # (2 - 1) / 2 = 0.5; 0 and 4 are outside [1, 3] and clip to 0 and 1
    assert norm(2.0) == 0.5 and type(norm(2.0)) is float
    assert (norm(0.0), norm(4.0), norm(1.5)) == (0.0, 1.0, 0.25)
    scaled = norm(np.array([0.0, 1.5, 2.0, 4.0]))
    assert isinstance(scaled, np.ndarray) and scaled.tolist() == [0.0, 0.25, 0.5, 1.0]
    assert norm(np.array([2.0], dtype=np.float32)).dtype == np.float64  # always float64, whatever comes in
    # a zero span scales everything to 0, keeping the shape
    flat = CostNormalizer(2.0, 2.0)
    assert flat(5.0) == 0.0 and type(flat(5.0)) is float
    zeros = flat(np.array([1, 2, 3]))
    assert zeros.dtype == np.float64 and zeros.tolist() == [0.0, 0.0, 0.0]
    assert norm.to_dict() == {"low": 1.0, "high": 3.0}
    back = CostNormalizer.from_dict({"low": "1", "high": 3})
    assert back == CostNormalizer(1.0, 3.0) and type(back.low) is float and type(back.high) is float
    for bad in ([], [1.0, float("nan")], [float("inf")]):
        with pytest.raises(ValueError, match="at least one finite cost"):
            CostNormalizer.fit(bad)


def test_routing_reward_is_performance_minus_lambda_times_cost():
    from routing_gym.cost import routing_reward

    assert routing_reward(1.0, 0.5, 0.5) == 0.75  # 1 - 0.5·0.5
    assert routing_reward(0.5, 0.25, 2.0) == 0.0  # 0.5 - 2·0.25
    assert type(routing_reward(np.float32(1.0), 0, 1)) is float

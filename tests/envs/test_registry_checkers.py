"""Every registered ID passes Gymnasium's and SB3's env checkers, and a checker warning fails it.

As Gymnasium's own ``tests/envs/test_envs.py`` does: make each spec, run ``check_env`` with
warnings recorded, and fail on any warning that is not on the short allow-list below. SB3's
``check_env`` runs where SB3 supports the spaces; the hybrid (HAPS) IDs have a ``Dict`` action,
which SB3 does not take, so SB3 checks them behind ``FlattenHybridAction``, as they are trained.
The live IDs run on the tiny random models and the fixture questions.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import routing_gym  # noqa: F401
from routing_gym.envs.registration import ENV_IDS
from routing_gym.llm import TINY_POOL
from routing_gym.wrappers import FlattenHybridAction

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"

#: (pattern, why it is tolerated). Keep it short: each entry hides a class of checker findings.
ALLOWED_WARNINGS: tuple[tuple[str, str], ...] = ()


def make(env_id: str, tmp_path: Path) -> gym.Env:
    """The registered env; live IDs on the tiny models, fixture questions and a private cache."""
    if env_id.startswith("LLMRouting-Table"):
        return gym.make(env_id)
    config = {"models": list(TINY_POOL), "data_dir": str(FIXTURES), "cache_path": str(tmp_path / "cache.sqlite")}
    if env_id.startswith("LLMRouting-MultiHop"):
        config.update(fractions={"test": 1.0}, splits={"mmlu": "train"}, max_new_tokens=8,
                      humaneval_path=str(FIXTURES / "humaneval_toy.jsonl"), sandbox={"timeout_s": 3, "cpu_seconds": 2})
    else:
        config["protocol"] = {"student_max_new_tokens": 6, "teacher_max_new_tokens": 4}
        if "MMLU" in env_id:
            config["split"] = "dev"
        else:
            config["protocol"]["search_budget"] = 1
    return gym.make(env_id, config=config)


def unexpected(caught: list[warnings.WarningMessage]) -> list[str]:
    """The recorded warnings that no allow-list entry covers."""
    return [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not any(re.search(pattern, str(w.message)) for pattern, _ in ALLOWED_WARNINGS)
    ]


def test_the_registry_lists_every_kind_of_env():
    kinds = {gym.spec(env_id).entry_point for env_id in ENV_IDS}
    assert {
        "routing_gym.envs.table:TableRoutingEnv",
        "routing_gym.envs.table_cascade:TableCascadeEnv",
        "routing_gym.envs.hotpotqa:HotpotQAEnv",
        "routing_gym.envs.mmlu:MMLUEnv",
        "routing_gym.envs.multihop:MultiHopEnv",
    } <= kinds
    assert len(ENV_IDS) == len(set(ENV_IDS)) and all(env_id in gym.registry for env_id in ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_passes_both_checkers_without_warnings(env_id, tmp_path):
    env = make(env_id, tmp_path)
    hybrid = isinstance(env.action_space, gym.spaces.Dict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=False)
        sb3_check_env(FlattenHybridAction(env.unwrapped) if hybrid else env.unwrapped, warn=True)
    env.close()
    assert unexpected(caught) == []

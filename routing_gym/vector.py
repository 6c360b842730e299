"""Vectors of live routing envs whose model calls run as one batch per step.

``RoutingVectorEnv`` is a Gymnasium ``VectorEnv`` that owns the batch: each step it asks every
env for the move its action asks for (``plan``, where the action is checked, once), lets the
episode engine play all the moves together (``play_moves``: one generation and one scoring
call per pool setup, whole episodes in lockstep rounds), and books each env's outcome
(``finish``). It is registered as the ``vector_entry_point`` of every live ID:

    gym.make_vec("LLMRouting-HotpotQA-v0", num_envs=8, vectorization_mode="vector_entry_point",
                 config={...})

On a CPU, generation throughput grows almost linearly with batch size (see
``benchmarks/generation.py``), so stepping 8 envs together is far faster than 8 envs that each
call the model alone. ``BatchedRoutingVecEnv`` presents any Gymnasium vector env to
stable-baselines3 (``make_batched_vec_env``).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from routing_gym.engine import play_moves
from routing_gym.envs.live_base import RoutingEnvBase


class RoutingVectorEnv(VectorEnv):
    """``num_envs`` live routing envs of one class, stepped together through the episode engine.

    Envs that finish an episode reset in the same step (``AutoresetMode.SAME_STEP``): the
    returned observation is the new episode's, and ``infos["final_obs"]`` /
    ``infos["final_info"]`` hold the finished one's. ``reset(options=...)`` takes one dict for
    every env or a list with one dict per env. Keyword arguments (``config``, ``render_mode``,
    a registered variant's keys) go to every env.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.SAME_STEP}
    #: The single env's entry point, "module:Class"; each registered family sets its own.
    env_entry_point: str = ""

    def __init__(self, num_envs: int, render_mode: str | None = None, **kwargs):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}.")
        env_class = load_env_creator(self.env_entry_point)
        self.envs: list[RoutingEnvBase] = [env_class(render_mode=render_mode, **kwargs) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | Sequence[dict] | None = None):
        """Reset every env: ``seed`` an int (env i gets seed + i), a list, or None."""
        if seed is None or isinstance(seed, (int, np.integer)):
            super().reset(seed=None if seed is None else int(seed))  # seeds the vector's own np_random
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        per_env = list(options) if isinstance(options, (list, tuple)) else [options] * self.num_envs
        if len(seeds) != self.num_envs or len(per_env) != self.num_envs:
            raise ValueError(f"reset needs one seed and one options dict per env ({self.num_envs}).")
        observations, infos = [], {}
        for i, (env, env_seed, env_options) in enumerate(zip(self.envs, seeds, per_env)):
            obs, info = env.reset(seed=env_seed, options=env_options)
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        return self._batch(observations), infos

    def step(self, actions):
        """One step of every env: a batched action, or a sequence of one action per env."""
        if isinstance(actions, (list, tuple)):
            actions = list(actions)
        else:
            actions = list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"step needs one action per env ({self.num_envs}), got {len(actions)}.")
        moves = [env.plan(action) for env, action in zip(self.envs, actions)]
        outcomes = play_moves([(env.engine, move) for env, move in zip(self.envs, moves)])
        observations, rewards = [], np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        infos: dict[str, Any] = {}
        for i, (env, move, outcome) in enumerate(zip(self.envs, moves, outcomes)):
            obs, rewards[i], terminations[i], truncations[i], info = env.finish(move, outcome)
            if terminations[i] or truncations[i]:
                infos = self._add_info(infos, {"final_obs": obs, "final_info": info}, i)
                obs, info = env.reset()
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        return self._batch(observations), rewards, terminations, truncations, infos

    def _batch(self, observations: list) -> Any:
        out = create_empty_array(self.single_observation_space, self.num_envs)
        return concatenate(self.single_observation_space, observations, out)

    def call(self, name: str, *args, **kwargs) -> tuple:
        """Call a method (or read an attribute) of every env."""
        results = []
        for env in self.envs:
            value = getattr(env, name)
            results.append(value(*args, **kwargs) if callable(value) else value)
        return tuple(results)

    def get_attr(self, name: str) -> tuple:
        """An attribute of every env."""
        return tuple(getattr(env, name) for env in self.envs)

    def render(self) -> tuple | None:
        """Each env's ``ansi`` transcript (None without a render mode)."""
        return None if self.render_mode is None else tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs) -> None:
        for env in self.envs:
            env.close()


class HotpotQAVectorEnv(RoutingVectorEnv):
    """A vector of ``HotpotQAEnv`` (the vector entry point of the HotpotQA IDs)."""

    env_entry_point = "routing_gym.envs.hotpotqa:HotpotQAEnv"


class MMLUVectorEnv(RoutingVectorEnv):
    """A vector of ``MMLUEnv`` (the vector entry point of the MMLU IDs)."""

    env_entry_point = "routing_gym.envs.mmlu:MMLUEnv"


class MultiHopVectorEnv(RoutingVectorEnv):
    """A vector of ``MultiHopEnv`` (the vector entry point of the multi-hop IDs)."""

    env_entry_point = "routing_gym.envs.multihop:MultiHopEnv"


class VectorEnvToSB3(VecEnv):
    """A Gymnasium ``VectorEnv`` with same-step autoreset as stable-baselines3's ``VecEnv``.

    SB3 trains on its own ``VecEnv`` interface only: this turns Gymnasium's batched ``infos``
    back into one dict per env and puts a finished episode's last observation in
    ``info["terminal_observation"]``, as SB3 expects.
    """

    def __init__(self, vector_env: VectorEnv):
        if vector_env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
            raise ValueError("VectorEnvToSB3 needs a vector env with autoreset_mode SAME_STEP.")
        self.vector_env = vector_env
        self.render_mode = vector_env.render_mode
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)
        self._actions: Any = None

    @property
    def envs(self) -> list[gym.Env]:
        """The single envs."""
        return list(self.vector_env.envs)

    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = None if not any(self._options) else [dict(o) for o in self._options]
        obs, infos = self.vector_env.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminations, truncations, infos = self.vector_env.step(self._actions)
        dones = np.logical_or(terminations, truncations)
        out = []
        for i in range(self.num_envs):
            info = unbatch_info(infos, i)
            final_info, final_obs = info.pop("final_info", None), info.pop("final_obs", None)
            if dones[i]:
                self.reset_infos[i] = info
                info = final_info
                info["terminal_observation"] = final_obs
                info["TimeLimit.truncated"] = bool(truncations[i] and not terminations[i])
            out.append(info)
        return obs, np.asarray(rewards, dtype=np.float32), dones, out

    def close(self) -> None:
        self.vector_env.close()

    def _targets(self, indices: VecEnvIndices) -> list[gym.Env]:
        return [self.vector_env.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(env, attr_name) for env in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for env in self._targets(indices):
            setattr(env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return [getattr(env, method_name)(*method_args, **method_kwargs) for env in self._targets(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [is_wrapped(env, wrapper_class) for env in self._targets(indices)]


def unbatch_info(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """Env ``index``'s own info from Gymnasium's batched ``infos`` (the inverse of ``_add_info``)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[index]:
            continue
        out[key] = unbatch_info(value, index) if isinstance(value, dict) else value[index]
    return out


class BatchedRoutingVecEnv(VecMonitor):
    """The SB3 ``VecEnv`` of a Gymnasium vector env, with ``Monitor``'s episode statistics.

    For the live IDs the vector env is their ``RoutingVectorEnv``, so every step is one batch
    of model calls; other IDs get Gymnasium's ``SyncVectorEnv``.
    """

    def __init__(self, vector_env: VectorEnv):
        super().__init__(VectorEnvToSB3(vector_env))

    @property
    def envs(self) -> list[gym.Env]:
        """The single envs."""
        return self.venv.envs


def make_batched_vec_env(
    env_id: str, n_envs: int = 8, seed: int | None = None, env_kwargs: dict[str, Any] | None = None
) -> BatchedRoutingVecEnv:
    """Like SB3's ``make_vec_env`` (env ``i`` seeded ``seed + i``), but stepping live envs in one batch."""
    # SB3 asks for "rgb_array" unless told otherwise; these envs render text only.
    env_kwargs = {"render_mode": None, **(env_kwargs or {})}
    if gym.spec(env_id).vector_entry_point is not None:
        vector = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)
    else:
        vector = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync",
                              vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **env_kwargs)
    vec = BatchedRoutingVecEnv(vector)
    if seed is not None:
        vec.seed(seed)
        for i, env in enumerate(vec.envs):
            env.action_space.seed(seed + i)
    return vec

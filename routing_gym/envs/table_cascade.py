"""Multi-step routing over an outcome table: call models one after another, then stop."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, routing_reward
from routing_gym.envs.table_base import OutcomeTableEnvBase
from routing_gym.envs.validation import require_action

_REWARD_MODES = ("final", "per_step")


class TableCascadeEnv(OutcomeTableEnvBase):
    """A HierRouter-shaped cascade: call models on a query until STOP or the depth cap.

    ## Description
    Each episode is one query from an outcome table (as in ``LLMRouting-Table-v0``). At every
    step the agent calls a model it has not tried yet, sees whether that answer was good
    (``score >= success_threshold``) and pays for the call, or it STOPs and accepts the best
    answer so far. The accepted score is the highest score among the called models (the table
    plays the judge that can tell which answer is best). STOP before any call gives no answer
    (score 0).

    ## Observation Space
    ``Dict`` (single level, numeric leaves, SB3 ``MultiInputPolicy``-ready):
    ``embedding`` ``Box(-1, 1, (384,), float32)`` the query embedding; ``depth``
    ``Box(0, 1, (1,), float32)`` calls made / ``max_depth``; ``cost`` ``Box(0, 1, (1,), float32)``
    accumulated normalized cost; ``tried`` ``MultiBinary(m)`` models called; ``outcomes``
    ``MultiBinary(m)`` 1 where a called model's score reached ``success_threshold`` (0 elsewhere).
    With ``lam_in_obs=True`` also ``lam`` ``Box(0, 1, (lam_obs_copies,), float32)``, the
    episode's λ/(1+λ) in each entry.
    With ``features`` naming ``"task"`` / ``"length"``, also ``task`` (one-hot over
    ``task_list``) and ``length`` (scaled log prompt tokens), as in ``LLMRouting-Table-v0``.

    ## Action Space
    ``Discrete(m + 1)``: ``i < m`` calls ``models[i]``; ``m`` is STOP. ``action_masks()`` (the
    sb3-contrib ``MaskablePPO`` convention) and ``info["action_mask"]`` mark the valid ones: the
    untried models and STOP. An invalid action (calling a model already tried) is treated as STOP:
    it costs nothing, ends the episode with the best answer so far and sets
    ``info["invalid_action"] = True``.

    ## Rewards
    With ``reward_mode="final"`` (default) every step returns 0 except the last, which returns
    ``best_score - λ · normalized_cost`` of the whole episode. With ``reward_mode="per_step"``
    each call returns ``-λ · Δnormalized_cost`` and the last step adds ``best_score``: the
    episode sum is the same. Normalized cost is the accumulated USD cost divided by the train split's worst case
    (the ``max_depth`` dearest calls of a query, at the ``cost_quantile`` quantile over queries),
    clipped to [0, 1]. ``info`` has ``score``/``perf`` (best so far), ``cost``,
    ``normalized_cost``, ``lam``, ``vector_reward = [perf part, -cost part]`` of this step's
    reward (``reward = v[0] + λ·v[1]``), ``model`` (called, or ``"STOP"``), ``called``,
    ``depth``, ``task``, ``query_id``, ``oracle_score`` and ``action_mask``.

    ## Starting State
    The next query of the split, as in ``LLMRouting-Table-v0`` (seeded order; ``options`` with
    ``index`` and ``config``); nothing tried, depth 0, cost 0.

    ## Episode End
    ``terminated=True`` on STOP (or an invalid action) or once ``max_depth`` models were called;
    ``truncated`` is always False (depth is part of the state).

    ## Arguments
    Every key of ``LLMRouting-Table-v0`` plus ``max_depth`` (int in [1, m], default 3),
    ``reward_mode`` (``"final"`` or ``"per_step"``) and ``success_threshold`` (default 0.5).

    ## Version History
    * v0: initial version; ``features`` and ``lam_obs_copies`` added later (their defaults
      observe as before).
    """

    _DERIVED = (*OutcomeTableEnvBase._DERIVED, "_score_rows", "_cost_rows", "_oracle")

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every config key with its default value."""
        return {
            **super().default_config(),
            "max_depth": 3,  # most models called per query
            "reward_mode": "final",  # "final": one reward at the end; "per_step": cost as it accrues
            "success_threshold": 0.5,  # score at or above which an outcome bit is 1
        }

    def _validate(self, config: dict[str, Any]) -> dict[str, Any]:
        config = super()._validate(config)
        depth = config["max_depth"]
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"config key 'max_depth' must be an int >= 1, got {depth!r}.")
        if config["reward_mode"] not in _REWARD_MODES:
            raise ValueError(
                f"config key 'reward_mode' must be one of {_REWARD_MODES}, got {config['reward_mode']!r}."
            )
        threshold = config["success_threshold"]
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0 <= threshold <= 1
        ):
            raise ValueError(
                f"config key 'success_threshold' must be a number in [0, 1], got {threshold!r}."
            )
        return config

    def __init__(
        self, config: Mapping[str, Any] | None = None, render_mode: str | None = None, **overrides
    ):
        super().__init__(config, render_mode, **overrides)
        m = len(self.model_names)
        self.observation_space = spaces.Dict(
            {
                "embedding": spaces.Box(
                    -1.0, 1.0, shape=self._data.features.shape[1:], dtype=np.float32
                ),
                "depth": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
                "cost": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
                "tried": spaces.MultiBinary(m),
                "outcomes": spaces.MultiBinary(m),
                **self.feature_spaces(),
                **({"lam": self.lam_space()} if self.config["lam_in_obs"] else {}),
            }
        )
        self.action_space = spaces.Discrete(m + 1)
        self.stop_action = m
        self._tried = np.zeros(m, dtype=bool)
        self._done = True

    def _after_load(self) -> None:
        if self.config["max_depth"] > len(self.model_names):
            raise ValueError(
                f"config key 'max_depth' must be at most {len(self.model_names)} (the number of models), "
                f"got {self.config['max_depth']}."
            )
        self._score_rows = self._data.scores.tolist()
        self._cost_rows = self._data.costs.tolist()
        self._oracle = self._data.scores.max(axis=1).tolist()

    def _fit_normalizer(self, train_costs: np.ndarray) -> CostNormalizer:
        # Low = 0 (no call) and high = the train split's worst episode (the max_depth dearest
        # calls; its cost_quantile quantile over queries), so normalized cost is linear in USD.
        k = self.config["max_depth"]
        worst = np.sort(train_costs, axis=1)[:, -k:].sum(axis=1)
        return CostNormalizer(0.0, float(np.quantile(worst, self.config["cost_quantile"])))

    # ------------------------------------------------------------------ episode

    def action_masks(self) -> np.ndarray:
        """Valid actions (untried models and STOP) as a bool array, for MaskablePPO."""
        mask = np.ones(len(self.model_names) + 1, dtype=bool)
        mask[: len(self.model_names)] = ~self._tried
        return mask

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "embedding": self._data.features[self._row].copy(),
            "depth": np.array([self._depth / self.config["max_depth"]], dtype=np.float32),
            "cost": np.array([self._ncost], dtype=np.float32),
            "tried": self._tried.astype(np.int8),
            "outcomes": self._outcomes.astype(np.int8),
            **self.feature_observation(self._row),
            **({"lam": self.lam_observation()} if self.config["lam_in_obs"] else {}),
        }

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Start an episode on the next query, nothing called yet."""
        super().reset(seed=seed)
        self._row = self._pick_row(seed, options)
        m = len(self.model_names)
        self._tried = np.zeros(m, dtype=bool)
        self._outcomes = np.zeros(m, dtype=bool)
        self._called: list[str] = []
        self._depth, self._cost, self._ncost, self._best = 0, 0.0, 0.0, 0.0
        self._done = False
        i = self._row
        info = {
            "query_id": self._data.query_ids[i],
            "task": self._data.tasks[i],
            "index": i,
            "action_mask": self.action_masks(),
        }
        self._last_text = f"query {info['query_id']} [{info['task']}] depth 0"
        return self._obs(), info

    def step(self, action):
        """Call a model, or STOP and accept the best answer so far."""
        if self._done:
            raise RuntimeError("Episode is over: call reset() before step().")
        require_action(self.action_space, action)
        a = int(action)
        m = len(self.model_names)
        i = self._row
        invalid = a < m and bool(self._tried[a])
        old_ncost = self._ncost
        if a == m or invalid:
            terminated, model = True, "STOP"
        else:
            score = self._score_rows[i][a]
            self._tried[a] = True
            self._outcomes[a] = score >= self.config["success_threshold"]
            self._called.append(self.model_names[a])
            self._depth += 1
            self._cost += self._cost_rows[i][a]
            self._ncost = float(self.cost_normalizer(self._cost))
            self._best = max(self._best, score)
            terminated, model = self._depth >= self.config["max_depth"], self.model_names[a]
        perf_part = self._best if terminated else 0.0
        if self.config["reward_mode"] == "per_step":
            cost_part = -(self._ncost - old_ncost)
        else:
            cost_part = -self._ncost if terminated else 0.0
        reward = routing_reward(perf_part, -cost_part, self.lam) * self.reward_scale()
        self._done = terminated
        info = {
            "score": self._best,
            "perf": self._best,
            "cost": self._cost,
            "normalized_cost": self._ncost,
            "lam": self.lam,
            "vector_reward": np.array([perf_part, cost_part], dtype=np.float32),
            "model": model,
            "action": a,
            "invalid_action": invalid,
            "called": list(self._called),
            "depth": self._depth,
            "task": self._data.tasks[i],
            "query_id": self._data.query_ids[i],
            "oracle_score": self._oracle[i],
            "action_mask": self.action_masks(),
        }
        if self.render_mode == "ansi":
            self._last_text = (
                f"query {info['query_id']} [{info['task']}] depth {self._depth}: {model} -> "
                f"best {self._best:.2f}, "
                f"cost ${self._cost:.6f} (normalized {self._ncost:.3f}), reward {reward:+.3f}"
                + (" [done]" if terminated else "")
            )
        return self._obs(), reward, terminated, False, info

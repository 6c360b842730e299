"""The multi-hop MDP replayed from a built hop tree: no model runs, the same transitions."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, resolve_lambda, routing_reward
from routing_gym.envs.features import check_features
from routing_gym.envs.multihop import MULTIHOP_FEATURES, hop_features, hop_observation_space
from routing_gym.envs.question_order import QuestionOrder
from routing_gym.hop_tree import HopTree, decode_vector


class MultiHopTableEnv(gym.Env):
    """
    ## Description
    ``MultiHopEnv`` replayed from a ``HopTree`` (see ``routing_gym.hop_tree``): every model
    sequence up to the tree's depth was run once, live, and this env walks the stored nodes.
    Observations, rewards and the ``info`` numbers equal the live env's for the same query,
    actions and config (greedy decoding, horizon = the tree's depth).

    ## Action Space
    ``Discrete(M + 1)`` as in ``MultiHopEnv``: a model, or STOP (masked at depth 0 by
    ``action_masks()``; stopping at once scores 0 at no cost).

    ## Observation Space
    As ``MultiHopEnv``: ``context`` (the stored embedding), ``depth``, ``cost``, ``task``, ``answered``,
    and with ``features`` the same entries as there (``length`` from the row's ``question_chars``,
    which trees built before it was recorded lack: such a tree refuses ``"length"``).

    ## Rewards
    The stored score of the final node − λ · normalized cost (bounds from the tree header,
    or ``cost_bounds``), at the end or spread over the hops with ``per_step_cost=True``.

    ## Episode End
    Terminated on STOP or at the tree's depth.

    ## Arguments
    ``tree_path`` (required), ``lam``, ``per_step_cost``, ``cost_bounds``, ``shuffle``,
    ``question_ids`` (replay only these queries), ``features`` (default ``["embedding", "task"]``).

    ## Version History
    * v0: initial release; ``features`` added later (its default observes as before).
    """

    metadata = {"render_modes": [], "render_fps": 1}

    def __init__(self, tree_path: str | None = None, lam: float | str = "balanced", per_step_cost: bool = False,
                 cost_bounds: dict | None = None, shuffle: bool = True, question_ids: list[str] | None = None,
                 features: list[str] | tuple[str, ...] = MULTIHOP_FEATURES, render_mode: str | None = None):
        if tree_path is None:
            raise ValueError("MultiHopTableEnv needs tree_path=<a file written by build_hop_tree>.")
        self.render_mode = render_mode
        self.tree_path = str(tree_path)
        self.tree = HopTree.load(tree_path)
        self.lam = resolve_lambda(lam)
        self.per_step_cost = bool(per_step_cost)
        self.cost_normalizer = CostNormalizer.from_dict(cost_bounds or self.tree.header["cost_bounds"])
        self.shuffle = shuffle
        ids = list(self.tree.queries) if question_ids is None else list(question_ids)
        missing = [q for q in ids if q not in self.tree.queries]
        if missing or not ids:
            raise ValueError(f"question_ids not in the tree {self.tree_path}: {missing[:5]}" if missing
                             else f"the tree {self.tree_path} has no queries.")
        self.question_ids = ids
        self.features = list(check_features(features))
        if "length" in self.features:
            lacking = [q for q in ids if "question_chars" not in self.tree.queries[q]]
            if lacking:
                raise ValueError(f"features: 'length' needs each row's question_chars, and the tree {self.tree_path} "
                                 f"lacks it for {len(lacking)} queries (e.g. {lacking[0]!r}); rebuild those rows.")
        self.model_names = self.tree.models
        self.horizon = self.tree.depth
        self.stop_action = len(self.model_names)
        self.action_space = spaces.Discrete(len(self.model_names) + 1)
        self.observation_space = hop_observation_space(len(self.model_names), self.features)
        self._questions = QuestionOrder()
        self._question: str | None = None
        self._path: list[int] = []
        self._done = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - {"question_id"})
        if unknown:
            raise ValueError(f"Unknown reset option {unknown[0]!r}; use 'question_id'.")
        self._questions.prepare(self.np_random, len(self.question_ids), self.shuffle, seed)
        if "question_id" in options:
            if options["question_id"] not in self.tree.queries:
                raise ValueError(f"reset option question_id {options['question_id']!r} is not in the tree.")
            self._question = options["question_id"]
        else:
            self._question = self.question_ids[self._questions.take()]
        self._path, self._done = [], False
        return self._observation(), self._info()

    def action_masks(self) -> np.ndarray:
        """Every model, and STOP once a hop has answered."""
        mask = np.ones(self.action_space.n, dtype=bool)
        mask[self.stop_action] = bool(self._path)
        return mask

    def step(self, action):
        if self._question is None:
            raise RuntimeError("Call reset() before step().")
        if self._done:
            raise RuntimeError("The episode is over; call reset() before step().")
        if isinstance(action, (bool, np.bool_)) or np.asarray(action).shape != () or \
                not np.issubdtype(np.asarray(action).dtype, np.integer) or not self.action_space.contains(int(action)):
            raise ValueError(f"Action {action!r} is outside the action space {self.action_space}.")
        cost_before = self._node()["cost"]
        if int(action) == self.stop_action:
            self._done = True
        else:
            self._path.append(int(action))
            self._done = len(self._path) >= self.horizon
        node = self._node()
        norm = self.cost_normalizer
        score = self._score() if self._done else 0.0
        if self.per_step_cost:
            reward = float(score - self.lam * (norm(node["cost"]) - norm(cost_before)))
        else:
            reward = float(routing_reward(score, norm(node["cost"]), self.lam)) if self._done else 0.0
        return self._observation(), reward, self._done, False, self._info()

    def _node(self) -> dict[str, Any]:
        return self.tree.node(self._question, self._path)

    def _score(self) -> float:
        return float(self._node()["score"]) if self._path else 0.0

    def _observation(self) -> dict[str, np.ndarray]:
        node = self._node()
        row = self.tree.queries[self._question]
        extra = hop_features(row["task"], row.get("question_chars"), self.features, self.tree_path)
        answered = np.zeros(len(self.model_names), dtype=np.float32)
        answered[self._path] = 1.0
        return {
            "context": decode_vector(node["context"]),
            "depth": np.array([len(self._path) / self.horizon], dtype=np.float32),
            "cost": np.array([self.cost_normalizer(node["cost"])], dtype=np.float32),
            "answered": answered,
            **extra,
        }

    def _info(self) -> dict[str, Any]:
        node = self._node()
        row = self.tree.queries[self._question]
        normalized = float(self.cost_normalizer(node["cost"]))
        score = self._score() if self._done else 0.0
        info = {
            "task": row["task"], "question_id": self._question, "index": row["index"], "depth": len(self._path),
            "models": [self.model_names[a] for a in self._path], "cost": float(node["cost"]),
            "normalized_cost": normalized, "lam": self.lam, "perf": score,
            "prompt_tokens": node["prompt_tokens"], "completion_tokens": node["completion_tokens"],
            "reward_parts": {"score": score, "cost_penalty": 0.0 - self.lam * normalized},
            "reward_vector": np.array([score, -normalized], dtype=np.float64), "done": self._done,
        }
        if self._done and self._path:
            info["answer"] = node["answer"]
            info.update(copy.deepcopy(node["details"]))
        return info

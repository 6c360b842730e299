"""Single-step routing over a table of measured outcomes: pick one model per query."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from routing_gym.cost import routing_reward
from routing_gym.envs.table_base import OutcomeTableEnvBase
from routing_gym.envs.validation import require_action


class TableRoutingEnv(OutcomeTableEnvBase):
    """Route each query to one of the table's models; the outcome is looked up, not generated.

    ## Description
    Every episode is one query from an outcome table: the measured score of every model on every
    query (by default 5,602 queries x 9 LLMs over 14 tasks from LLMRouter, built on first use as numbers
    only). The agent sees the query's sentence embedding and picks a model; the reward trades the
    model's recorded score against the (estimated) price of the call. Nothing runs at step time,
    so training takes minutes on a CPU. Variants restrict the tasks, e.g.
    ``LLMRouting-Table-GSM8K-v0``.

    ## Observation Space
    ``Box(-1, 1, (384,), float32)``: the all-MiniLM-L6-v2 embedding (unit vector) of the query.
    (A table with precomputed embeddings of another size sets the shape.) With
    ``lam_in_obs=True``: ``Dict(embedding=that Box, lam=Box(0, 1, (lam_obs_copies,),
    float32))``, where each entry of ``lam`` is the episode's λ/(1+λ), so one policy can follow
    any λ. With ``features``
    naming ``"task"`` and/or ``"length"`` (``routing_gym.envs.features``), the observation is a
    ``Dict`` with ``embedding`` and those entries: ``task`` ``Box(0, 1, (num_tasks,), float32)``,
    a one-hot over ``env.unwrapped.task_list`` (the ``tasks`` key, else every task of the
    table); ``length`` ``Box(0, 1, (1,), float32)``, ``log1p`` of the query's prompt tokens as
    the table records them (the mean over the models that report one), min-max scaled by the
    train split of the selected tasks and clipped to [0, 1].

    ## Action Space
    ``Discrete(num_models)``: action ``i`` calls ``env.unwrapped.model_names[i]`` (9 models in the
    default table).

    ## Rewards
    ``score - λ · normalized_cost``, with ``score`` in [0, 1] from the table, ``cost`` the
    call's USD cost and ``normalized_cost`` its min-max scaling with bounds fitted on the train split's
    costs and then frozen (``routing_gym.cost``): low = the cheapest call, high = the
    ``cost_quantile`` (default 0.99) quantile, so rare very long prompts do not flatten the scale;
    costs above it count as 1. ``info`` carries the parts: ``score``/``perf``,
    ``cost``, ``normalized_cost``, ``lam``, ``vector_reward = [perf, -normalized_cost]``
    (so ``reward = v[0] + λ·v[1]``, for multi-objective agents), ``model``, ``task``,
    ``query_id`` and ``oracle_score`` (best score any model got on this query).

    ## Starting State
    The next query of the configured split, in an order drawn from ``np_random`` (``shuffle``);
    ``reset(seed=s)`` rewinds to the start of a fresh order fixed by ``s``. After a full pass the
    split is reshuffled. ``reset(options={"index": i})`` picks row ``i`` of ``query_ids``, and
    ``reset(options={"config": {...}})`` changes config keys (all but ``table``/``prices``).

    ## Episode End
    After the single step (``terminated=True``); ``truncated`` is always False.

    ## Arguments
    ``gym.make("LLMRouting-Table-v0", config=None, render_mode=None, **config_keys)``; keys
    (``TableRoutingEnv.default_config()``): ``table`` (None = the default LLMRouter table, or a .npz/.csv/.jsonl path),
    ``prices`` (JSON path or mapping, overrides the table's), ``completion_tokens`` (the assumed
    completion length: ``"default"`` per-task table, a number, or ``{task: n}``), ``split``
    (``train``/``valid``/``test``/``all``), ``split_salt``, ``tasks`` (list or None), ``lam``
    (number or ``"performance-first"``/``"balanced"``/``"cost-first"``), ``cost_bounds``
    (None = fit, or ``[low, high]`` USD), ``cost_quantile``, ``shuffle``, ``lam_in_obs`` (λ in
    the observation; construction only), ``lam_obs_copies`` (how many entries of the
    observation's ``lam`` hold λ/(1+λ), default 1; construction only), ``lam_range`` (None, or ``[low, high]``: every
    ``reset`` draws λ from it with ``np_random``, for training across λ) and ``lam_sampling``
    (``"uniform"``: λ uniform in ``lam_range``; ``"uniform-obs"``: λ/(1+λ), the observation's
    entry, uniform, which draws small λ more often), ``lam_reward_scale`` (``"none"``, or
    ``"1/(1+lam)"``: the reward divided by 1+λ, one scale for every λ), ``features`` (default
    ``["embedding"]``; add ``"task"``, ``"length"``; construction only). An unknown key or
    bad value raises ValueError naming the key. ``render_mode="ansi"`` makes ``render()`` return a line of text.

    ## Version History
    * v0: initial version; ``lam_sampling``, ``lam_reward_scale``, ``lam_obs_copies`` and
      ``features`` added later (their defaults draw λ, scale the reward and observe as before).
    """

    _DERIVED = (
        *OutcomeTableEnvBase._DERIVED,
        "_score_rows",
        "_cost_rows",
        "_ncost_rows",
        "_oracle",
    )

    def __init__(
        self, config: Mapping[str, Any] | None = None, render_mode: str | None = None, **overrides
    ):
        super().__init__(config, render_mode, **overrides)
        embedding = spaces.Box(-1.0, 1.0, shape=self._data.features.shape[1:], dtype=np.float32)
        extra = {**self.feature_spaces(), **({"lam": self.lam_space()} if self.config["lam_in_obs"] else {})}
        self.observation_space = spaces.Dict({"embedding": embedding, **extra}) if extra else embedding
        self.action_space = spaces.Discrete(len(self.model_names))
        self._done = True

    def _after_load(self) -> None:
        # Python lists: indexing them returns Python floats, several times faster per step than
        # numpy scalar access plus float().
        ncost = np.asarray(self.cost_normalizer(self._data.costs), dtype=np.float64)
        self._score_rows = self._data.scores.tolist()
        self._cost_rows = self._data.costs.tolist()
        self._ncost_rows = ncost.tolist()
        self._oracle = self._data.scores.max(axis=1).tolist()

    @property
    def normalized_costs(self) -> np.ndarray:
        """Normalized cost of every (query, model) of the split, ``(num_queries, num_models)``."""
        return np.asarray(self._ncost_rows)

    def reset(self, *, seed: int | None = None, options: Mapping[str, Any] | None = None):
        """Start an episode on the next query; returns ``(embedding, info)``."""
        super().reset(seed=seed)
        self._row = self._pick_row(seed, options)
        self._done = False
        data = self._data
        info = {"query_id": data.query_ids[self._row], "task": data.tasks[self._row], "index": self._row}
        self._last_text = f"query {info['query_id']} [{info['task']}]"
        return self._observation(self._row), info

    def _observation(self, row: int):
        embedding = self._data.features[row].copy()
        if not isinstance(self.observation_space, spaces.Dict):
            return embedding
        lam = {"lam": self.lam_observation()} if self.config["lam_in_obs"] else {}
        return {"embedding": embedding, **self.feature_observation(row), **lam}

    def step(self, action):
        """Call model ``action`` on the current query; the episode then ends."""
        if self._done:
            raise RuntimeError("Episode is over: call reset() before step().")
        require_action(self.action_space, action)
        a = int(action)
        i = self._row
        score, ncost = self._score_rows[i][a], self._ncost_rows[i][a]
        reward = routing_reward(score, ncost, self.lam) * self.reward_scale()
        self._done = True
        info = {
            "score": score,
            "perf": score,
            "cost": self._cost_rows[i][a],
            "normalized_cost": ncost,
            "lam": self.lam,
            "vector_reward": np.array([score, -ncost], dtype=np.float32),
            "model": self.model_names[a],
            "action": a,
            "task": self._data.tasks[i],
            "query_id": self._data.query_ids[i],
            "oracle_score": self._oracle[i],
        }
        if self.render_mode == "ansi":
            self._last_text = (
                f"query {info['query_id']} [{info['task']}] -> {info['model']}: score {score:.2f}, "
                f"cost ${info['cost']:.6f} (normalized {ncost:.3f}), reward {reward:+.3f}, "
                f"oracle {info['oracle_score']:.2f}"
            )
        return self._observation(i), reward, True, False, info

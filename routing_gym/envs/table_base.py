"""Machinery shared by the outcome-table envs: config, data arrays, question order, pickling.

Subclasses define the spaces, ``reset``/``step`` and how the cost normalizer is fitted; this
base turns the config into read-only numpy arrays for the chosen split and tasks, so a step is
a few array lookups and no model runs.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, resolve_lambda
from routing_gym.data.outcome_table import (
    SPLITS,
    load_outcome_table,
    load_prices,
    resolve_completion_tokens,
)
from routing_gym.envs.features import (
    check_features,
    feature_spaces,
    scaled_log_length,
    task_one_hot,
)
from routing_gym.envs.question_order import checked_index, checked_reset_options
from routing_gym.envs.validation import require_render_mode
from routing_gym.outcomes import Outcomes

_SPLIT_CHOICES = (*SPLITS, "all")
#: How ``lam_range`` draws λ: uniformly, or with λ/(1+λ) (the observation's entry) uniform.
LAM_SAMPLINGS = ("uniform", "uniform-obs")
#: How the reward is scaled with λ: not at all, or by 1/(1+λ), so that its range, [-λ, 1]
#: unscaled, stays within [-1, 1] for every λ of a ``lam_range``.
LAM_REWARD_SCALES = ("none", "1/(1+lam)")


class OutcomeTableEnvBase(gym.Env):
    """Base of the envs that replay a per-query outcome table (see ``TableRoutingEnv``)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    #: Keys that fix the spaces (the number of models, λ in the observation): construction only.
    CONSTRUCTION_ONLY = ("table", "prices", "lam_in_obs", "lam_obs_copies", "features")
    #: Attributes rebuilt from the config by ``_load``, left out of pickles.
    _DERIVED: tuple[str, ...] = ("_data", "_train_costs", "cost_normalizer", "_features")

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Every config key with its default value."""
        return {
            "table": None,  # None = the default LLMRouter table (built once into the cache); or a .npz / .csv / .jsonl path
            "prices": None,  # None = the table's; or a JSON path / {model: {input_price, ...}}
            "completion_tokens": "default",  # assumed length: "default", a number or {task: n}
            "split": "train",  # "train", "valid", "test" or "all"
            "split_salt": "routing_gym",  # salt of the id hash that assigns splits
            "tasks": None,  # None = every task; or a list of task names
            "lam": "balanced",  # λ: a regime name or a number >= 0
            "cost_bounds": None,  # None = fit on the train split; or [low, high] USD, frozen
            "cost_quantile": 0.99,  # fitted high bound = this quantile of train costs (1.0 = max)
            "shuffle": True,  # visit the split's questions in a seeded random order
            "lam_in_obs": False,  # observation gets a "lam" entry, λ/(1+λ): one policy for every λ
            "lam_obs_copies": 1,  # how many times the "lam" entry holds λ/(1+λ) (see lam_space)
            "lam_range": None,  # None = the fixed `lam`; or [low, high]: a new λ each episode
            "lam_sampling": "uniform",  # with lam_range: "uniform" λ, or "uniform-obs" λ/(1+λ)
            "lam_reward_scale": "none",  # reward times 1 ("none") or 1/(1+λ) ("1/(1+lam)")
            "features": ["embedding"],  # observed query features: + "task", "length" (envs/features.py)
        }

    def __init__(
        self, config: Mapping[str, Any] | None = None, render_mode: str | None = None, **overrides
    ):
        require_render_mode(type(self), render_mode)  # "rgb_array" (SB3's default) is tolerated
        self.render_mode = render_mode
        given = dict(config or {})
        # a registered variant passes its keys as keywords: a clashing config must not lose silently
        clash = next((k for k in overrides if k in given and given[k] != overrides[k]), None)
        if clash is not None:
            raise ValueError(
                f"config key {clash!r} is given twice: {given[clash]!r} in config and "
                f"{overrides[clash]!r} as a keyword or by the registered env ID; give it once."
            )
        self.config = self._validate({**self.default_config(), **dict(config or {}), **overrides})
        self._load()
        self._order: np.ndarray | None = None
        self._cursor = 0
        self._row: int | None = None
        self._last_text = ""

    # ------------------------------------------------------------------ config

    def _validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """Check every key and value; raise ValueError naming the first bad key."""
        known = self.default_config()
        for key in config:
            if key not in known:
                raise ValueError(
                    f"Unknown config key {key!r} for {type(self).__name__}; valid keys: {sorted(known)}."
                )
        config = copy.deepcopy(config)
        for key in ("table", "prices"):
            value = config[key]
            if isinstance(value, os.PathLike):
                config[key] = os.fspath(value)
            elif (
                value is not None
                and not isinstance(value, str)
                and not (key == "prices" and isinstance(value, Mapping))
            ):
                raise ValueError(f"config key {key!r} must be a path or None, got {value!r}.")
        if config["split"] not in _SPLIT_CHOICES:
            raise ValueError(
                f"config key 'split' must be one of {_SPLIT_CHOICES}, got {config['split']!r}."
            )
        if not isinstance(config["split_salt"], str):
            raise ValueError(
                f"config key 'split_salt' must be a string, got {config['split_salt']!r}."
            )
        tasks = config["tasks"]
        if isinstance(tasks, str):
            tasks = [tasks]
        if tasks is not None:
            if (
                not isinstance(tasks, (list, tuple))
                or not tasks
                or not all(isinstance(t, str) for t in tasks)
            ):
                raise ValueError(
                    f"config key 'tasks' must be None or a non-empty list of task names, got {tasks!r}."
                )
            tasks = list(tasks)
        config["tasks"] = tasks
        try:
            resolve_lambda(config["lam"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"config key 'lam': {exc}") from None
        try:
            resolve_completion_tokens(config["completion_tokens"], [])
        except ValueError as exc:
            raise ValueError(f"config key 'completion_tokens': {exc}") from None
        bounds = config["cost_bounds"]
        if bounds is not None:
            ok = (
                isinstance(bounds, (list, tuple))
                and len(bounds) == 2
                and all(
                    isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                    for b in bounds
                )
                and 0 <= bounds[0] < bounds[1]
            )
            if not ok:
                raise ValueError(
                    "config key 'cost_bounds' must be None or [low, high] USD with "
                    f"0 <= low < high, got {bounds!r}."
                )
            config["cost_bounds"] = [float(b) for b in bounds]
        q = config["cost_quantile"]
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:
            raise ValueError(f"config key 'cost_quantile' must be a number in (0, 1], got {q!r}.")
        if not isinstance(config["shuffle"], bool):
            raise ValueError(f"config key 'shuffle' must be a bool, got {config['shuffle']!r}.")
        if not isinstance(config["lam_in_obs"], bool):
            raise ValueError(
                f"config key 'lam_in_obs' must be a bool, got {config['lam_in_obs']!r}."
            )
        lam_range = config["lam_range"]
        if lam_range is not None:
            ok = (
                isinstance(lam_range, (list, tuple))
                and len(lam_range) == 2
                and all(
                    isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b)
                    for b in lam_range
                )
                and 0 <= lam_range[0] <= lam_range[1]
            )
            if not ok:
                raise ValueError(
                    "config key 'lam_range' must be None or [low, high] with 0 <= low <= high, "
                    f"got {lam_range!r}."
                )
            config["lam_range"] = [float(b) for b in lam_range]
        copies = config["lam_obs_copies"]
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            raise ValueError(
                f"config key 'lam_obs_copies' must be an int >= 1, got {copies!r}."
            )
        if config["lam_sampling"] not in LAM_SAMPLINGS:
            raise ValueError(
                f"config key 'lam_sampling' must be one of {LAM_SAMPLINGS}, got "
                f"{config['lam_sampling']!r}."
            )
        config["features"] = list(check_features(config["features"]))
        if config["lam_reward_scale"] not in LAM_REWARD_SCALES:
            raise ValueError(
                f"config key 'lam_reward_scale' must be one of {LAM_REWARD_SCALES}, got "
                f"{config['lam_reward_scale']!r}."
            )
        return config

    def configure(self, config: Mapping[str, Any]) -> None:
        """Change config keys between episodes (``reset(options={"config": ...})`` calls this)."""
        same = lambda a, b: list(a) == list(b) if isinstance(a, (list, tuple)) else a == b  # noqa: E731
        frozen = [
            k
            for k in config
            if k in self.CONSTRUCTION_ONLY and not same(config[k], self.config.get(k))
        ]
        if frozen:
            raise ValueError(
                f"config key {frozen[0]!r} fixes the spaces and can only be set at construction."
            )
        previous, self.config = self.config, self._validate({**self.config, **dict(config)})
        try:
            self._load()
        except Exception:  # a value only the data can reject (e.g. a task): keep the old state
            self.config = previous
            self._load()
            raise
        self._order = None

    # ------------------------------------------------------------------ data

    def _load(self) -> None:
        """Build the split's arrays, the frozen cost normalizer and λ from the config."""
        cfg = self.config
        table = load_outcome_table(cfg["table"])
        prices = None if cfg["prices"] is None else load_prices(cfg["prices"])
        try:
            costs = table.costs(cfg["completion_tokens"], prices)
        except ValueError as exc:
            raise ValueError(f"config key 'completion_tokens' / 'prices': {exc}") from None
        labels = table.split_labels(salt=cfg["split_salt"])
        selected = np.ones(len(table), dtype=bool)
        if cfg["tasks"] is not None:
            unknown = sorted(set(cfg["tasks"]) - set(table.task_names))
            if unknown:
                raise ValueError(
                    f"config key 'tasks': unknown task {unknown[0]!r}; the table has {table.task_names}."
                )
            selected = np.isin(table.tasks, cfg["tasks"])
        train = selected & (labels == "train")
        rows = selected if cfg["split"] == "all" else selected & (labels == cfg["split"])
        if not train.any():
            raise ValueError(
                "config: the train split of the selected tasks is empty; the cost normalizer needs it."
            )
        if not rows.any():
            raise ValueError(
                f"config key 'split': no rows in split {cfg['split']!r} for the selected tasks."
            )
        self.model_names: tuple[str, ...] = table.models
        self.table_source = table.source
        self._data = Outcomes.from_outcome_table(table, rows, costs)  # USD costs
        self._train_costs = costs[train]  # what the normalizer is fitted on
        self._features = self._query_features(table, rows, train)
        self.lam = resolve_lambda(cfg["lam"])
        if cfg["cost_bounds"] is not None:
            self.cost_normalizer = CostNormalizer(*cfg["cost_bounds"])
        else:
            self.cost_normalizer = self._fit_normalizer(self._train_costs)
        self._after_load()

    def _query_features(self, table, rows: np.ndarray, train: np.ndarray) -> dict[str, np.ndarray]:
        """The split's ``task`` one-hot and ``length`` rows, for the features the config names.

        The task list is the ``tasks`` config key, or every task of the table (its order). The
        length is ``log1p`` of the query's prompt tokens in the table (the mean over the models
        that report one), min-max scaled by the train split of the selected tasks and clipped.
        """
        features = self.config["features"]
        self.task_list: tuple[str, ...] = tuple(self.config["tasks"] or table.task_names)
        out = {}
        if "task" in features:
            out["task"] = task_one_hot(table.tasks[rows].tolist(), self.task_list)
        if "length" in features:
            known = ~np.isnan(table.prompt_tokens)
            if not known[rows | train].any(axis=1).all():
                raise ValueError(
                    "config key 'features': 'length' needs the prompt tokens of every query, "
                    f"and the table {table.source} lacks some."
                )
            counted = np.maximum(known.sum(axis=1), 1)
            tokens = np.where(known, table.prompt_tokens, 0.0).sum(axis=1) / counted
            train_log = np.log1p(tokens[train])
            out["length"] = scaled_log_length(tokens[rows], train_log.min(), train_log.max())
        return out

    def feature_spaces(self) -> dict[str, spaces.Box]:
        """The observation entries of the ``features`` beyond the embedding (``task``, ``length``)."""
        return feature_spaces(self.config["features"], len(self.task_list))

    def feature_observation(self, row: int) -> dict[str, np.ndarray]:
        """Fresh copies of row ``row``'s feature entries (none with the default ``features``)."""
        return {key: values[row].copy() for key, values in self._features.items()}

    @property
    def observed_inputs(self) -> np.ndarray:
        """What a one-shot router reads of each query of the split, ``(num_queries, D)``: the
        embedding, then the task one-hot and the length where ``features`` names them (the
        order of ``routing_gym.envs.features.flatten_observation``)."""
        parts = [self._data.features, *self._features.values()]
        return _readonly(np.hstack(parts).astype(np.float32) if len(parts) > 1 else parts[0])

    def _fit_normalizer(self, train_costs: np.ndarray) -> CostNormalizer:
        """Min-max bounds of single-call costs on the train split, frozen from then on.

        The high bound is the ``cost_quantile`` quantile rather than the max: a few very long
        prompts (thousands of tokens) would otherwise squeeze typical costs into ~1% of the range
        and make every λ regime route alike. Costs above the bound normalize to 1.
        """
        values = train_costs.ravel()
        return CostNormalizer(
            float(values.min()), float(np.quantile(values, self.config["cost_quantile"]))
        )

    def _after_load(self) -> None:
        """Hook for subclasses to precompute per-row arrays."""

    @property
    def models(self) -> tuple[str, ...]:
        """Deprecated: ``model_names``, the name the live envs use too."""
        warnings.warn(
            f"{type(self).__name__}.models is deprecated; use model_names (as on the live envs).",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.model_names

    @property
    def outcomes(self) -> Outcomes:
        """The split's outcome matrix, costs in USD (``Outcomes.from_table_env`` normalizes them)."""
        return self._data

    @property
    def num_queries(self) -> int:
        """Questions in the configured split."""
        return len(self._data)

    @property
    def embeddings(self) -> np.ndarray:
        """Query embeddings of the split, ``(num_queries, dim)``, read-only."""
        return _readonly(self._data.features)

    @property
    def scores(self) -> np.ndarray:
        """Scores of the split, ``(num_queries, num_models)``, read-only."""
        return _readonly(self._data.scores)

    @property
    def costs(self) -> np.ndarray:
        """USD costs of the split, ``(num_queries, num_models)``, read-only."""
        return _readonly(self._data.costs)

    @property
    def query_ids(self) -> list[str]:
        """Ids of the split's questions, in table order (``options={"index": i}`` uses this order)."""
        return list(self._data.query_ids)

    @property
    def query_tasks(self) -> list[str]:
        """Task of each of the split's questions, in table order."""
        return list(self._data.tasks)

    # ------------------------------------------------------------------ episodes

    def _pick_row(self, seed: int | None, options: Mapping[str, Any] | None) -> int:
        """Apply ``options`` and return the next question's row (seeded order, rewound by a seed)."""
        options = checked_reset_options(options)
        if options.get("config"):
            self.configure(options["config"])
        if self.config["lam_range"] is not None:  # a new trade-off every episode
            self.lam = self._draw_lam(*self.config["lam_range"])
        if seed is not None:
            self._order = None
        n = self.num_queries
        index = checked_index(options, n)
        if index is not None:
            return index
        if self._order is None:
            self._order, self._cursor = self._new_order(), 0
        row = int(self._order[self._cursor])
        self._cursor += 1
        if self._cursor == n:  # next epoch over the split, in a fresh order
            self._order, self._cursor = self._new_order(), 0
        return row

    def _draw_lam(self, low: float, high: float) -> float:
        """One λ from ``[low, high]`` as ``lam_sampling`` says.

        ``"uniform-obs"`` draws the observed λ/(1+λ) uniformly: a policy trained across λ then
        sees every part of its input range equally often. Uniform λ leaves little weight where
        the models' break-even λ of a two-model pool usually lies (0.1–0.3 on [0, 2]), and a
        policy can settle on the cheap model for every λ before it learns to read λ.
        """
        if self.config["lam_sampling"] == "uniform":
            return float(self.np_random.uniform(low, high))
        w = float(self.np_random.uniform(low / (1.0 + low), high / (1.0 + high)))
        return min(max(w / (1.0 - w), low), high)  # the round trip may leave the range by an ulp

    def reward_scale(self) -> float:
        """The factor on this episode's reward: 1, or 1/(1+λ) with ``lam_reward_scale``."""
        if self.config["lam_reward_scale"] == "none":
            return 1.0
        return 1.0 / (1.0 + self.lam)

    def _new_order(self) -> np.ndarray:
        n = self.num_queries
        return self.np_random.permutation(n) if self.config["shuffle"] else np.arange(n)

    def lam_space(self) -> spaces.Box:
        """The space of the observation's ``lam`` entry (with ``lam_in_obs``): ``lam_obs_copies``
        copies of λ/(1+λ).

        Copies, because a policy network trained with Adam moves each input weight by about the
        same step: one λ entry beside a 384-d embedding moves the policy far less per step than
        the embedding does (docs/results/two_model_lambda.md).
        """
        return spaces.Box(0.0, 1.0, shape=(self.config["lam_obs_copies"],), dtype=np.float32)

    def lam_observation(self) -> np.ndarray:
        """The episode's λ as the observation sees it: λ/(1+λ), in [0, 1) for any λ >= 0, in
        each of the ``lam_obs_copies`` entries."""
        w = self.lam / (1.0 + self.lam)
        return np.full((self.config["lam_obs_copies"],), w, dtype=np.float32)

    def render(self) -> str | None:
        """``"ansi"``: a one-line text of the current query or last step."""
        if self.render_mode == "ansi":
            return self._last_text
        return None

    def close(self) -> None:
        """Nothing to release: the table is plain arrays."""

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        # The arrays are rebuilt from the (JSON-able) config, so a pickle stays small.
        state = self.__dict__.copy()
        for name in self._DERIVED:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._load()


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.setflags(write=False)
    return view

"""The interface every agent shares, and the machinery of the one-shot routers.

Every agent speaks SB3's ``predict(observation, state, episode_start, deterministic)``, so
``stable_baselines3.common.evaluation.evaluate_policy`` scores any of them on any env, and has
``fit`` (its own kind of data), ``fit_env(env)`` (the data pulled from an env), ``save(path)``
and ``load(path)``.

Most baselines are *one-shot* routers: from the query embedding they pick one *arm* per
episode. On ``LLMRouting-Table-v0`` an arm is a model; on a live Teacher–Student env it is an
assignment, one model per role (student, teacher), the rows of an exhaustive-builder
``ActionTable``. ``OneShotRouter`` turns that one decision into each env's actions:

* table env (Box obs, ``Discrete(M)``): the arm's model;
* cascade env (Dict obs with ``tried``): the arm's model, then STOP;
* live env, ``action_type="assignment"`` (``MultiDiscrete([M, M])``): the arm itself;
* live env, ``action_type="per-turn"`` (``Discrete(M)``): the arm's model for the role of the
  turn; the arm is chosen at the episode's start and kept in the SB3 ``state``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from routing_gym.checkpoints import from_plain_state, plain_state, read_agent_file
from routing_gym.cost import REGIMES, CostNormalizer, resolve_lambda
from routing_gym.envs.features import EMBEDDING_KEYS, flatten_observation
from routing_gym.errors import CheckpointError
from routing_gym.outcomes import Outcomes
from routing_gym.routers import (
    TRAIN_ONCE,
    TRAIN_PER_REGIME,
    RouterDescription,
    TrainingRun,
)

ACTION_MODES = ("single", "cascade", "assignment", "per-turn")
SAVE_FORMAT = 2  # tensors and plain data only (format 1 pickled fitted objects)
#: Formats ``load`` reads; format 1 only with ``trust_pickle=True``.
READ_FORMATS = (1, 2)


def make_config(config_cls: type, config: Any | None, overrides: Mapping[str, Any]):
    """``config`` (or the defaults) with keyword overrides; an unknown key raises ValueError naming it."""
    base = config if config is not None else config_cls()
    if not isinstance(base, config_cls):
        raise ValueError(f"config must be a {config_cls.__name__}, got {type(base).__name__}.")
    known = {f.name for f in dataclasses.fields(config_cls)}
    for key in overrides:
        if key not in known:
            raise ValueError(
                f"Unknown {config_cls.__name__} key {key!r}; valid keys: {sorted(known)}."
            )
    return dataclasses.replace(base, **overrides)


def check_lam(value: float | str | None) -> float | None:
    """Resolve a λ (number or regime name); None means "follow the env's λ"."""
    if value is None:
        return None
    try:
        return resolve_lambda(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config key 'lam': {exc}") from None


@contextlib.contextmanager
def single_threaded(blas: bool = True):
    """Run torch (and BLAS, if ``blas``) on one thread inside the block, then restore the settings.

    Routers multiply small matrices: thread start-up and synchronisation cost more than they
    save, and on a busy machine (vector-env workers, parallel jobs) extra threads oversubscribe
    the cores: we measured 10x slower fits and 50x slower single-query predictions. Limiting
    BLAS costs about a millisecond, so per-query prediction limits torch only.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if blas:
            with threadpool_limits(1):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(previous)


class Agent(ABC):
    """An agent: SB3-style ``predict``, one training entry ``learn(run)``, ``describe()``,
    ``save`` / ``load`` (the contract ``routing_gym.routers.Router`` spells out).

    Each algorithm also keeps its own ``fit`` for its own kind of data (outcome arrays, an env
    ID, table rewards); ``learn`` is the one entry every agent shares, the way SB3 has one
    ``learn()``.
    """

    #: Short name used by ``agents.AGENTS``, the router registry and result tables.
    name: ClassVar[str] = "agent"
    #: How the benchmark trains it: ``TRAIN_ONCE``, ``TRAIN_PER_REGIME`` or ``FIT_ON_EVAL``.
    training: ClassVar[str] = TRAIN_PER_REGIME
    #: What ``save`` writes: ".pt" (one file of tensors), ".zip" (an SB3 zip) or "" (a folder).
    checkpoint_suffix: ClassVar[str] = ".pt"
    #: The config dataclass; its fields are the constructor's keyword config keys.
    Config: ClassVar[type | None] = None

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The keyword config keys the constructor takes."""
        if not dataclasses.is_dataclass(cls.Config):
            return ()
        return tuple(f.name for f in dataclasses.fields(cls.Config))

    @abstractmethod
    def learn(self, run: TrainingRun) -> "Agent":
        """Train from what ``run`` holds (an env, an action table, a step budget); returns ``self``."""

    def detail(self) -> str:
        """One line on what the trained agent does (e.g. the model a fixed rule plays), or ""."""
        return ""

    def describe(self) -> RouterDescription:
        """Name, training kind, checkpoint format, ``detail()`` and the config, as plain data."""
        config = getattr(self, "config", None)
        return RouterDescription(
            name=self.name,
            training=self.training,
            checkpoint_suffix=self.checkpoint_suffix,
            detail=self.detail(),
            config=dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {},
        )

    @abstractmethod
    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Actions for one observation or a batch (SB3's ``PolicyPredictor.predict``)."""

    def adapt_to(self, env: gym.Env) -> None:
        """Prepare to act in ``env`` (action format, λ); called by ``agents.evaluation``."""

    def reseed(self, seed: int) -> None:
        """Restart the agent's own random stream at ``seed`` (the benchmark calls it before each
        row, so a row's choices never depend on the rows played before it); a no-op for agents
        that choose without randomness."""

    @abstractmethod
    def save(self, path: str | os.PathLike) -> Path:
        """Write the trained agent to ``path``."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | os.PathLike) -> "Agent":
        """Read an agent written by ``save``."""


# ---------------------------------------------------------------------------- training data


# A router's training (or evaluation) data is a ``routing_gym.outcomes.Outcomes``: one row per
# query, one column per arm, features = what the router observes, and *normalized* costs (the
# env's frozen normalizer), so ``data.rewards(λ)`` is the env's reward of each arm.


def outcomes_from_arrays(
    embeddings: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    models: Sequence[str] | None = None,
    arms: Sequence[Sequence[int]] | None = None,
    tasks: Sequence[str] | None = None,
) -> Outcomes:
    """Arrays of an outcome table as ``Outcomes``: embeddings X (n×d), scores S (n×K) and
    normalized costs C (n×K); models default to ``model_0...``, rows are ids ``"0"...``."""
    k = np.shape(scores)[1] if np.ndim(scores) == 2 else 0
    return Outcomes(
        models=tuple(models) if models is not None else tuple(f"model_{i}" for i in range(max(k, 1))),
        scores=scores,
        costs=costs,
        query_ids=tuple(str(i) for i in range(len(scores))),
        arms=tuple(tuple(a) for a in arms) if arms is not None else (),
        features=embeddings,
        tasks=tuple(tasks) if tasks is not None else None,
        cost_unit="normalized",
    )


def action_table_outcomes(
    table: Any,
    env: gym.Env,
    normalizer: CostNormalizer | None = None,
    question_ids: Sequence[str] | None = None,
) -> Outcomes:
    """One row per question of an exhaustive-builder ``ActionTable``, one column per assignment.

    The features are the live env's observation at the question's start (``context`` of
    ``reset(options={"index": i})``), so a router trained here sees at test time exactly what
    it saw in training. Costs are normalized with ``normalizer`` (default: the env's).
    Assignments are ordered as ``itertools.product`` over the env's models (student first).
    """
    base = env.unwrapped
    names = list(getattr(base, "model_names", []))
    if not names:
        raise ValueError(f"{type(base).__name__} is not a live routing env (no 'model_names').")
    outcomes = Outcomes.from_action_table(table, names, normalizer or base.cost_normalizer, question_ids)
    features = question_embeddings(env)
    missing = [q for q in outcomes.query_ids if q not in features]
    if missing:
        raise ValueError(
            f"ActionTable question {missing[0]!r} is not in the env's split; build the env with the "
            "split (and limit) the table was built on."
        )
    return dataclasses.replace(outcomes, features=np.stack([features[q] for q in outcomes.query_ids]))


def arm_columns(
    owner: str, models: Sequence[str], arms: Sequence[Sequence[int]], data: Outcomes
) -> np.ndarray:
    """The column of ``data`` that holds each arm (model indices into ``models``), by model names.

    Raises ValueError naming the models of an arm the data has no column for.
    """
    column_of = {tuple(data.models[i] for i in arm): c for c, arm in enumerate(data.arms)}
    columns = []
    for arm in arms:
        names = tuple(models[i] for i in arm)
        if names not in column_of:
            raise ValueError(
                f"{owner} plays {list(names)}, which the data has no column for "
                f"(its models are {list(data.models)})."
            )
        columns.append(column_of[names])
    return np.array(columns, dtype=np.int64)


def question_embeddings(env: gym.Env) -> dict[str, np.ndarray]:
    """Question id -> the live env's ``context`` observation at that question's start."""
    base = env.unwrapped
    out = {}
    for i in range(len(base.examples)):
        obs, info = base.reset(options={"index": i})
        out[str(info["question_id"])] = np.asarray(obs["context"], dtype=np.float32)
    return out


def all_assignments(num_models: int, num_roles: int) -> list[tuple[int, ...]]:
    """Every assignment of ``num_models`` models to ``num_roles`` roles (in the env's role order)."""
    return list(itertools.product(range(num_models), repeat=num_roles))


def env_models(env: Any) -> tuple[str, ...] | None:
    """The model names of an env, a wrapped env or a VecEnv (None if it has none)."""
    for name in ("model_names", "models"):
        if hasattr(env, "get_attr"):  # a VecEnv
            try:
                return tuple(env.get_attr(name, indices=0)[0])
            except AttributeError:
                continue
        base = getattr(env, "unwrapped", env)
        if hasattr(base, name):
            return tuple(getattr(base, name))
    return None


def match_models(
    owner: str, trained: Sequence[str], env_names: Sequence[str], allow_extra: bool = True
) -> np.ndarray | None:
    """The env's index of each model ``owner`` was trained on, matched by name (None: same order).

    An agent must never play a model by its position on an env that orders its models
    differently: this raises ValueError naming the models the env lacks (and, unless
    ``allow_extra``, the ones it has beyond them).
    """
    trained, env_names = tuple(trained), tuple(env_names)
    if trained == env_names:
        return None
    missing = [m for m in trained if m not in env_names]
    if missing:
        raise ValueError(
            f"{owner} was trained on models {list(trained)}; the env lacks {missing} "
            f"(it has {list(env_names)})."
        )
    extra = [m for m in env_names if m not in trained]
    if extra and not allow_extra:
        raise ValueError(
            f"{owner} was trained on models {list(trained)}; the env also has {extra}, "
            "which its policy has no outputs for."
        )
    if len(set(trained)) != len(trained) or len(set(env_names)) != len(env_names):
        raise ValueError(
            f"{owner}: a model name repeats (trained on {list(trained)}, the env has "
            f"{list(env_names)}), so the models cannot be matched by name."
        )
    position = {m: i for i, m in enumerate(env_names)}
    return np.array([position[m] for m in trained], dtype=np.int64)


def require_embeddings(owner: str, x: np.ndarray, dim: int | None) -> None:
    """Raise ValueError unless every row of ``x`` is a finite embedding of the trained size."""
    if dim is not None and x.shape[-1] != dim:
        raise ValueError(
            f"{owner} was trained on {dim}-dimensional inputs (the query embedding and the env's "
            f"'features'); the observation has {x.shape[-1]} values per query: use an env with "
            "the same features."
        )
    if not np.isfinite(x).all():
        raise ValueError(f"{owner}: the observation holds NaN or infinite values.")


def env_lam(env: Any) -> float | None:
    """The λ of an env, a wrapped env or a VecEnv (None if it has none)."""
    if hasattr(env, "get_attr"):
        try:
            return float(env.get_attr("lam", indices=0)[0])
        except AttributeError:
            return None
    value = getattr(getattr(env, "unwrapped", env), "lam", None)
    return None if value is None else float(value)


def action_mode_of(env: Any) -> str:
    """How a one-shot decision becomes this env's actions (see the module docstring)."""
    obs_space, act_space = env.observation_space, env.action_space
    if isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Discrete):
        return "single"
    if isinstance(obs_space, gym.spaces.Dict):
        if "tried" in obs_space.spaces:
            return "cascade"
        if "role" in obs_space.spaces:
            return "assignment" if isinstance(act_space, gym.spaces.MultiDiscrete) else "per-turn"
        if "embedding" in obs_space.spaces and isinstance(act_space, gym.spaces.Discrete):
            return "single"  # a table env observing features (or λ) beside the embedding
    raise ValueError(
        f"No one-shot routing for observation space {obs_space} with action space {act_space}."
    )


def observation_embeddings(
    observation: np.ndarray | Mapping[str, np.ndarray],
) -> tuple[np.ndarray, bool]:
    """A router's inputs of an observation or batch, as ``(b, D)``, and whether it was a batch:
    the query embedding, then the ``task`` one-hot and ``length`` where the observation has them
    (``routing_gym.envs.features.flatten_observation``)."""
    return flatten_observation(observation)


# ---------------------------------------------------------------------------- one-shot routers


class OneShotRouter(Agent):
    """Base of the routers that pick one arm (model or assignment) per query from its embedding.

    Subclasses define ``Config`` (a dataclass with at least ``lam``), ``_fit(data)``,
    ``_select(x) -> arm indices`` (or ``_estimate(x) -> (scores, costs)`` for the default
    argmax-of-``score − λ·cost`` rule) and ``_get_state`` / ``_set_state`` for saving.
    """

    Config: ClassVar[type] = object
    training = TRAIN_ONCE
    #: False for routers that only need the arms (Random, Fixed with a named model).
    needs_data: ClassVar[bool] = True

    def __init__(self, config: Any | None = None, **overrides):
        self.config = make_config(self.Config, config, overrides)
        self._check_config()
        self.models: tuple[str, ...] = ()
        #: The bound env's roles (``env.unwrapped.roles``); () for an outcome-table env.
        self.roles: tuple[str, ...] = ()
        self.arms: list[tuple[int, ...]] = []
        self.action_mode: str | None = None
        self._env_lam: float | None = None
        self.fitted = False
        self.embedding_dim: int | None = None  # the size of the embeddings it was fit on
        # the bound env's action index of each of self.models (None: the same order)
        self._env_index: np.ndarray | None = None
        self._stop_action: int | None = None  # the cascade's STOP on the bound env

    def _check_config(self) -> None:
        check_lam(self.config.lam)

    # -- λ --------------------------------------------------------------------------------
    @property
    def lam(self) -> float:
        """The λ decisions trade against: the config's, else the env's, else "balanced"."""
        fixed = check_lam(self.config.lam)
        if fixed is not None:
            return fixed
        return self._env_lam if self._env_lam is not None else REGIMES["balanced"]

    @lam.setter
    def lam(self, value: float | str | None) -> None:
        check_lam(value)
        self.config = dataclasses.replace(self.config, lam=value)

    # -- training --------------------------------------------------------------------------
    def fit(
        self,
        embeddings: np.ndarray | Outcomes,
        scores: np.ndarray | None = None,
        costs: np.ndarray | None = None,
        models: Sequence[str] | None = None,
        arms: Sequence[Sequence[int]] | None = None,
        tasks: Sequence[str] | None = None,
    ) -> "OneShotRouter":
        """Train on outcome arrays: embeddings X (n×d), scores S (n×K), normalized costs C (n×K).

        ``models`` names the columns (default ``model_0...``); ``arms`` maps columns to model
        indices per role for assignment tables (default: column i is model i). An ``Outcomes``
        with normalized costs can be passed instead of the arrays.
        """
        data = (
            embeddings
            if isinstance(embeddings, Outcomes)
            else outcomes_from_arrays(embeddings, scores, costs, models, arms, tasks)
        )
        if not len(data):
            raise ValueError("fit needs at least one row.")
        if data.features is None:
            raise ValueError("fit needs the features (embeddings) of the queries; the Outcomes has none.")
        if data.cost_unit != "normalized":
            raise ValueError("costs must be normalized to [0, 1]: pass outcomes.normalized(env.cost_normalizer).")
        if data.costs.min() < 0 or data.costs.max() > 1:
            raise ValueError("costs must be normalized to [0, 1] (use the env's cost_normalizer).")
        self.models, self.arms = tuple(data.models), list(data.arms)
        self.roles = tuple(data.roles) or self.roles
        self.embedding_dim = int(data.features.shape[1])
        self._env_index, self._stop_action = None, None  # actions follow the data's columns
        with single_threaded():
            self._fit(data)
        self.fitted = True
        return self

    def learn(self, run: TrainingRun) -> "OneShotRouter":
        """Fit on ``run``'s env: its outcome table, or ``run.action_table`` for a live env."""
        env = run.make_env()
        try:
            return self.fit_env(env, action_table=run.action_table)
        finally:
            if run.env is None:
                env.close()

    def fit_env(self, env: gym.Env, action_table: Any | None = None, **kwargs) -> "OneShotRouter":
        """Train on the env's data: an outcome-table env's configured split (pass ``split="train"``),
        or, for a live env, the ``action_table`` (an ``ActionTable``) of its questions."""
        base = env.unwrapped
        self._env_lam = env_lam(env)
        self.roles = tuple(getattr(base, "roles", ()))
        if action_table is not None:
            data = action_table_outcomes(action_table, env, **kwargs)
        elif hasattr(base, "scores"):
            data = Outcomes.from_table_env(env)
        elif not self.needs_data and hasattr(base, "model_names"):
            # a live env without outcomes: Random and Fixed only need the arms
            self.models = tuple(base.model_names)
            self.arms = all_assignments(len(self.models), len(self.roles))
            self._fit(None)
            self.fitted = True
            self.adapt_to(env)
            return self
        else:
            raise ValueError(
                f"{type(self).__name__}.fit_env needs an outcome-table env or action_table= for "
                f"{type(base).__name__}."
            )
        self.fit(data)
        self.adapt_to(env)
        return self

    def adapt_to(self, env: Any) -> None:
        """Pick the action format for ``env`` and follow its λ (unless ``config.lam`` is set)."""
        mode = action_mode_of(env)
        roles = len(self.arms[0]) if self.arms else None
        if roles is not None and (roles == 1) != (mode in ("single", "cascade")):
            raise ValueError(
                f"{type(self).__name__} was fit on {'models' if roles == 1 else 'assignments'}, "
                f"which do not fit an env with {mode!r} actions."
            )
        names = env_models(env)
        if self.models and names is not None:
            # the env may order (or extend) the models differently: actions follow its names
            self._env_index = match_models(type(self).__name__, self.models, names)
            self._stop_action = len(names)
        self.action_mode = mode
        lam = env_lam(env)
        if lam is not None:
            self._env_lam = lam

    @abstractmethod
    def _fit(self, data: Outcomes | None) -> None:
        """Learn from the data (``None`` for data-free routers on a live env)."""

    # -- acting ----------------------------------------------------------------------------
    def _estimate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted score and normalized cost of every arm, each ``(b, K)``."""
        raise NotImplementedError(f"{type(self).__name__} defines neither _estimate nor _select.")

    def _select(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Arm index per query ``(b,)``: argmax of predicted ``score − λ·cost``."""
        scores, costs = self._estimate(x)
        return np.argmax(scores - self.lam * costs, axis=1)

    def select_arms(self, embeddings: np.ndarray) -> np.ndarray:
        """Arm index for each query embedding (rows of ``embeddings``)."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit or fit_env first.")
        x, _ = observation_embeddings(embeddings)
        require_embeddings(type(self).__name__, x, self.embedding_dim)
        with single_threaded(blas=False):
            return np.asarray(self._select(x), dtype=np.int64)

    @property
    def routes_by_estimates(self) -> bool:
        """Whether decisions are ``argmax estimate score − λ·estimate cost`` (then ``estimate``
        and one argmax per λ reproduce ``select_arms`` at every λ)."""
        return type(self)._select is OneShotRouter._select

    def estimate(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted score and normalized cost of every arm for each query, each ``(b, K)``."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit or fit_env first.")
        x, _ = observation_embeddings(embeddings)
        require_embeddings(type(self).__name__, x, self.embedding_dim)
        with single_threaded(blas=False):
            scores, costs = self._estimate(x)
        shape = (len(x), len(self.arms))
        return np.broadcast_to(scores, shape).astype(np.float64), np.broadcast_to(
            costs, shape
        ).astype(np.float64)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3-style: the action(s) for an observation or a batch; ``state`` holds per-turn arms."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit or fit_env first.")
        x, batched = observation_embeddings(observation)
        require_embeddings(type(self).__name__, x, self.embedding_dim)
        mode = self.action_mode or self._guess_mode(observation)
        with single_threaded(blas=False):
            return self._actions(observation, x, batched, mode, state, episode_start, deterministic)

    def _actions(self, observation, x, batched, mode, state, episode_start, deterministic):
        """The env actions implied by the arms chosen for ``x`` (see the module docstring)."""
        b = len(x)
        if mode == "per-turn":
            arms = self._per_turn_arms(x, state, episode_start, deterministic)
            role = np.asarray(observation["role"], dtype=np.float32).reshape(b, -1).argmax(axis=1)
            actions = np.array([self.arms[a][r] for a, r in zip(arms, role)], dtype=np.int64)
            actions = self._env_model(actions)
            new_state = arms
        else:
            arms = np.asarray(self._select(x, deterministic), dtype=np.int64)
            table = self._env_model(np.array(self.arms, dtype=np.int64))
            if mode == "assignment":
                actions = table[arms]
            else:
                actions = table[arms, 0]
                if mode == "cascade":
                    depth = np.asarray(observation["depth"], dtype=np.float32).reshape(b)
                    stop = len(self.models) if self._stop_action is None else self._stop_action
                    actions = np.where(depth > 0, stop, actions)  # one call, then STOP
            new_state = state
        return (actions if batched else actions[0]), new_state

    def _env_model(self, indices: np.ndarray) -> np.ndarray:
        """Indices into ``self.models`` as the bound env's action indices (matched by name)."""
        return indices if self._env_index is None else self._env_index[indices]

    def _per_turn_arms(self, x, state, episode_start, deterministic) -> np.ndarray:
        """Arm per env: a fresh choice where an episode starts, else the one in ``state``."""
        fresh = (
            np.ones(len(x), dtype=bool)
            if state is None
            else np.asarray(episode_start, dtype=bool).reshape(-1)
        )
        arms = (
            np.zeros(len(x), dtype=np.int64)
            if state is None
            else np.array(state, dtype=np.int64).reshape(-1)
        )
        if fresh.any():
            arms[fresh] = self._select(x[fresh], deterministic)
        return arms

    def _guess_mode(self, observation) -> str:
        if not isinstance(observation, Mapping):
            return "single"
        if "tried" in observation:
            return "cascade"
        return "assignment" if "role" in observation else "single"

    # -- saving ----------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        """Everything learned, as tensors, numpy arrays and plain data (no fitted objects)."""
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``_get_state`` returned."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write config, arms and learned state to one file: tensors and plain data only, so
        ``load`` reads it with ``torch.load(weights_only=True)`` and no code can run."""
        if not self.fitted:
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: nothing to save (call fit or fit_env first)."
            )
        path = Path(path)
        payload = plain_state(
            {
                "format": SAVE_FORMAT,
                "agent": type(self).__name__,
                "config": dataclasses.asdict(self.config),
                "models": list(self.models),  # the names its arms index, checked on every env
                "embedding_dim": self.embedding_dim,
                "arms": [list(a) for a in self.arms],
                "action_mode": self.action_mode,
                "env_lam": self._env_lam,
                "fitted": self.fitted,
                "state": self._get_state(),
            },
            f"{type(self).__name__} checkpoint",
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, trust_pickle: bool = False) -> "OneShotRouter":
        """Read an agent written by ``save``. A file that needs unpickling (format 1, or a
        crafted one) is refused unless ``trust_pickle``: then it can run code."""
        payload = read_agent_file(path, f"{cls.__name__}.load", trust_pickle=trust_pickle)
        if not isinstance(payload, dict) or payload.get("format") not in READ_FORMATS:
            raise CheckpointError(f"{path} is not an agent file of format {SAVE_FORMAT}.")
        if payload.get("agent") != cls.__name__:
            raise CheckpointError(
                f"{path} holds a {payload.get('agent')!r}, not a {cls.__name__}; load it with "
                f"{payload.get('agent')}.load (or routing_gym.bench.load_checkpoint)."
            )
        payload = from_plain_state(payload)
        config = payload["config"]
        agent = cls(config=cls.Config(**config))
        agent.models = tuple(payload["models"])
        agent.embedding_dim = payload.get("embedding_dim")
        agent.arms = [tuple(a) for a in payload["arms"]]
        agent.action_mode = payload["action_mode"]
        agent._env_lam = payload["env_lam"]
        agent.fitted = payload["fitted"]
        agent._set_state(payload["state"])
        return agent


def mean_arm_costs(data: Outcomes) -> np.ndarray:
    """Mean normalized cost of each arm over the data, ``(K,)``: the price-driven cost estimate."""
    return data.costs.mean(axis=0)

"""The live routing envs' machinery, once: ``RoutingEnvBase``.

A live env asks real models. Every one of them is an ``RoutingEnvBase``: it merges and checks
its config (HighwayEnv-style ``default_config()``, extended by each subclass with ``super()``),
owns the pool, the encoder, the cost normalizer and the question order, checks each action
once, and pickles without its heavy parts. Its episodes run through an ``EpisodeEngine``
(``routing_gym.engine``): a step turns the action into a *move* (``plan``: the turn or the
whole episode it asks for, or None for no model call), the engine plays the moves of any
number of envs with their calls batched (``play_moves``), and the env books the outcome
(``finish``). ``step`` is exactly ``plan`` -> ``play_moves`` -> ``finish`` for one env; the
vector env (``routing_gym.vector``) does the same for all its envs at once.

Its subclasses: ``LiveRoutingEnv`` (``teacher_student.py``: HotpotQA, MMLU) and
``MultiHopEnv`` (``multihop.py``).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from routing_gym.cost import CostNormalizer, resolve_lambda, routing_reward
from routing_gym.engine import EpisodeEngine, Move, Outcome, TurnJob, play_moves
from routing_gym.envs.question_order import QuestionOrder, question_for_reset
from routing_gym.envs.validation import merge_config, require_action, require_render_mode
from routing_gym.llm.cache import default_cache_path
from routing_gym.llm.pool import LLMPool
from routing_gym.llm.spec import DEFAULT_POOL, resolve_spec
from routing_gym.protocols.base import EpisodeProtocol, EpisodeState
from routing_gym.retrieval.encoder import SentenceEncoder, default_encoder

CACHE_MODES = ("rw", "ro", "off")


class RoutingEnvBase(gym.Env):
    """Base of the live routing envs: config, pool, encoder, cost, action checks and pickling.

    Subclasses extend ``default_config()`` with ``super()``, check their own keys in
    ``validate_config``, and say how to load questions (``load_examples``), which protocol
    plays (``make_protocol``), what an action asks for (``_move``) and how its outcome
    becomes a transition (``finish``).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    #: Config keys that change the spaces or the pool; reset(options={"config": ...}) may not touch them.
    structural_keys: tuple[str, ...] = ("models",)
    #: Config keys that decide the questions: changing one reloads them.
    data_keys: tuple[str, ...] = ("split", "data_dir", "limit")

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **overrides):
        """``config`` and keyword ``overrides`` (config keys, e.g. from a registered variant) are
        merged over ``default_config()``."""
        require_render_mode(type(self), render_mode)  # "human" fails here, not in render()
        # "rgb_array" is tolerated (SB3's make_vec_env passes it); render() then returns None.
        self.render_mode = render_mode
        self._pool: LLMPool | None = None
        self._encoder: SentenceEncoder | None = None
        self._engine: EpisodeEngine | None = None
        self._examples: list | None = None
        self._questions = QuestionOrder()
        self._state: EpisodeState | None = None
        self._episode_seed = 0
        self._episode_cost = 0.0
        self.config = self.default_config()
        self.configure({**(config or {}), **overrides})
        self.model_names = [resolve_spec(m).name for m in self.config["models"]]

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Defaults, merged with ``config=`` and ``reset(options={"config": ...})``."""
        return {
            "models": list(DEFAULT_POOL),
            "lam": "balanced",
            "split": "valid",
            "data_dir": None,
            "limit": None,
            "shuffle": True,
            "cache_path": None,
            "cache_mode": "rw",
            "cost_bounds": None,
            "cost_norm_prompt_tokens": 1024,
            "per_step_cost": False,
            "record_text": False,
            "max_batch_size": 32,
        }

    def configure(self, overrides: dict[str, Any]) -> None:
        """Merge and validate config overrides; a bad key or value raises ValueError naming it."""
        merged = merge_config(type(self).__name__, self.config, overrides)
        resolve_lambda(merged["lam"])  # raises naming the bad regime
        if merged["cache_mode"] not in CACHE_MODES:
            raise ValueError(f"config['cache_mode'] must be one of {CACHE_MODES}, got {merged['cache_mode']!r}.")
        if not merged["models"] or isinstance(merged["models"], str):
            raise ValueError(f"config['models'] must be a non-empty list of model names, got {merged['models']!r}.")
        for model in merged["models"]:
            resolve_spec(model)  # an unknown model fails here, named
        for key in ("max_batch_size", "cost_norm_prompt_tokens"):
            require_positive_int(key, merged[key])
        if merged["limit"] is not None:
            require_positive_int("limit", merged["limit"], "or None")
        _check_cost_bounds(merged["cost_bounds"])
        self.validate_config(merged)
        for key in self.structural_keys:
            if hasattr(self, "action_space") and merged[key] != self.config[key]:
                raise ValueError(f"config[{key!r}] changes the spaces; make a new env instead of resetting.")
        protocol = self.make_protocol(merged)  # checks the protocol's keys before anything changes
        self.config = merged
        self.protocol: EpisodeProtocol = protocol
        self.lam = resolve_lambda(merged["lam"])
        self.cost_normalizer = self._cost_normalizer()
        self._engine = None  # the protocol changed: the next episode gets an engine for it
        if self._examples is not None and set(overrides) & set(self.data_keys):
            self._examples = None

    def validate_config(self, config: dict[str, Any]) -> None:
        """Check the subclass's own keys of a merged config; raise ValueError naming the bad one."""

    def make_protocol(self, config: dict[str, Any]) -> EpisodeProtocol:
        """The protocol that plays this env's episodes under ``config``."""
        raise TypeError(f"{type(self).__name__} does not define make_protocol().")

    def load_examples(self) -> list:
        """The questions of the configured split; each subclass reads its own data."""
        raise TypeError(f"{type(self).__name__} does not define load_examples().")

    def _cost_normalizer(self) -> CostNormalizer:
        """Frozen min-max bounds: given (e.g. fitted by an exhaustive builder on a train split)
        or, by default, from the worst case the config allows."""
        if self.config["cost_bounds"] is not None:
            return CostNormalizer.from_dict(self.config["cost_bounds"])
        return CostNormalizer(0.0, float(self.worst_episode_cost()))

    def worst_episode_cost(self) -> float:
        """The most an episode can cost under this config (USD): the default cost bound."""
        raise TypeError(f"{type(self).__name__} does not define worst_episode_cost().")

    # -- lazily built heavy parts (never pickled) ---------------------------------------------
    @property
    def pool(self) -> LLMPool:
        """The models, behind the response cache (built on first use)."""
        if self._pool is None:
            cache = self.config["cache_path"]
            if cache is None and self.config["cache_mode"] != "off":
                cache = default_cache_path()
            self._pool = LLMPool(
                self.config["models"], cache=cache, cache_mode=self.config["cache_mode"],
                max_batch_size=self.config["max_batch_size"],
            )
        return self._pool

    @property
    def engine(self) -> EpisodeEngine:
        """The episode engine (this env's protocol, pool and questions) that plays every step."""
        if self._engine is None:
            self._engine = EpisodeEngine(self.protocol, self.pool, self.examples)
        return self._engine

    @property
    def encoder(self) -> SentenceEncoder:
        """The sentence encoder of the observation's context."""
        if self._encoder is None:
            self._encoder = default_encoder()
        return self._encoder

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles that take turns in an episode; an assignment names one model per role, in this order."""
        return tuple(self.protocol.roles)

    @property
    def examples(self) -> list:
        """The questions of the configured split (loaded on first use)."""
        if self._examples is None:
            examples = self.load_examples()
            if not examples:
                raise ValueError(f"{type(self).__name__}: {self._no_questions()}")
            self._examples = examples
            self._questions.forget()
            self._engine = None
        return self._examples

    def _no_questions(self) -> str:
        return f"split {self.config['split']!r} has no questions."

    def encode_contexts(self, states: list[EpisodeState]) -> np.ndarray:
        """The observation's context vectors of episode states, in one encoder batch."""
        texts = [self.engine.context_text(state) for state in states]
        return np.clip(self.encoder.encode(texts), -1.0, 1.0).astype(np.float32)

    # -- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        index = question_for_reset(self, seed, options)
        self._state = self.engine.start(index)
        self._episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._episode_cost = 0.0
        return self._observation(), self._info()

    def step(self, action):
        move = self.plan(action)
        return self.finish(move, play_moves([(self.engine, move)])[0])

    def plan(self, action) -> Move:
        """Check the action (the one check of a step) and return the move it asks for: a
        ``TurnJob``, an ``EpisodePlay`` or None (no model call)."""
        self._require_episode()
        self.check_action(action)
        return self._move(action)

    def check_action(self, action) -> None:
        """Raise ValueError naming the action unless it is in the action space."""
        require_action(self.action_space, action)  # shared with the table envs (rejects True, 2.5, '1')

    def _move(self, action) -> Move:
        raise TypeError(f"{type(self).__name__} does not define _move(action).")

    def finish(self, move: Move, outcome: Outcome):
        """Book a move the engine has played (its ``Turn``, its episode cost, or None) and return
        the step's (observation, reward, terminated, truncated, info)."""
        raise TypeError(f"{type(self).__name__} does not define finish(move, outcome).")

    def _turn_job(self, model: str) -> TurnJob:
        """The next turn of the episode in progress, played by ``model``."""
        return self.engine.job(self._state, model, seed=self._episode_seed + len(self._state.turns))

    def _require_episode(self) -> None:
        if self._state is None:
            raise RuntimeError("Call reset() before step().")
        if self.engine.is_over(self._state):
            raise RuntimeError("The episode is over; call reset() before step().")

    def _reward(self, cost_before: float, episode_over: bool) -> float:
        norm = self.cost_normalizer
        if self.config["per_step_cost"]:
            # Telescoping increments: the episode total equals the end-of-episode cost term.
            reward = -self.lam * (norm(self._episode_cost) - norm(cost_before))
            return float(reward + (self.engine.performance(self._state) if episode_over else 0.0))
        if not episode_over:
            return 0.0
        return routing_reward(self.engine.performance(self._state), norm(self._episode_cost), self.lam)

    def _observation(self) -> dict[str, np.ndarray]:
        raise TypeError(f"{type(self).__name__} does not define _observation().")

    def _info(self, **extra) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} does not define _info().")

    def render(self):
        if self.render_mode == "ansi":
            return "" if self._state is None else self.engine.render(self._state)
        return None

    def close(self) -> None:
        self._engine = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- pickling: heavy clients are rebuilt lazily ------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_pool=None, _encoder=None, _engine=None)
        return state

    # -- the episode in progress, for agents that read the question ------------------------------
    @property
    def episode_over(self) -> bool:
        """Whether there is no episode in progress (none started, or it has ended)."""
        return self._state is None or self.engine.is_over(self._state)

    @property
    def records_text(self) -> bool:
        """Whether ``info`` holds the text of the episode (``record_text``)."""
        return bool(self.config["record_text"])

    @property
    def current_example(self) -> Any:
        """The question of the episode in progress (its data-set example)."""
        if self._state is None:
            raise RuntimeError("The env has no episode yet: call reset() first.")
        return self._state.example


def require_positive_int(key: str, value: Any, alternative: str = "") -> None:
    """Raise ValueError naming ``config[key]`` unless ``value`` is an int >= 1 (bools are not)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        what = f"a positive int {alternative}".strip()
        raise ValueError(f"config[{key!r}] must be {what}, got {value!r}.")


def _check_cost_bounds(bounds: Any) -> None:
    """``cost_bounds`` is None or {"low": x, "high": y} with finite numbers and x <= y."""
    if bounds is None:
        return
    if not (isinstance(bounds, dict) and set(bounds) == {"low", "high"}):
        raise ValueError(f"config['cost_bounds'] must be None or {{'low': x, 'high': y}}, got {bounds!r}.")
    for key in ("low", "high"):
        value = bounds[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise ValueError(f"config['cost_bounds'][{key!r}] must be a finite number, got {value!r}.")
    if bounds["low"] > bounds["high"]:
        raise ValueError(f"config['cost_bounds'] needs low <= high, got low={bounds['low']!r} > high={bounds['high']!r}.")

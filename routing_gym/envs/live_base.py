"""The live routing envs' machinery, once: ``RoutingEnvBase``, and the Teacher–Student env on it.

A live env asks real models. Every one of them is an ``RoutingEnvBase``: it merges and checks
its config (HighwayEnv-style ``default_config()``, extended by each subclass with ``super()``),
owns the pool, the encoder, the cost normalizer and the question order, checks each action
once, and pickles without its heavy parts. Its episodes run through an ``EpisodeEngine``
(``routing_gym.engine``): a step turns the action into a *move* (``plan``: the turn or the
whole episode it asks for, or None for no model call), the engine plays the moves of any
number of envs with their calls batched (``play_moves``), and the env books the outcome
(``finish``). ``step`` is exactly ``plan`` -> ``play_moves`` -> ``finish`` for one env; the
vector env (``routing_gym.vector``) does the same for all its envs at once.

``LiveRoutingEnv`` (HotpotQA, MMLU) is the Teacher–Student env: at each decision point the
agent picks which model of the pool makes the next turn ("per-turn" action type,
HierRouter's formulation), or one model per role once at the start ("assignment", HAPS's
high-level decision), plus per-model LoRA factors ("hybrid", HAPS's low level).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, resolve_lambda, routing_reward
from routing_gym.engine import EpisodeEngine, EpisodePlay, Move, Outcome, TurnJob, play_moves
from routing_gym.envs.question_order import QuestionOrder, question_for_reset
from routing_gym.envs.validation import merge_config, require_action, require_render_mode
from routing_gym.llm.cache import default_cache_path
from routing_gym.llm.lora import LoRAAdapter, target_layers
from routing_gym.llm.pool import LLMPool
from routing_gym.llm.spec import DEFAULT_POOL, resolve_spec
from routing_gym.protocols import make_protocol
from routing_gym.protocols.base import ROLES, EpisodeProtocol, EpisodeState, Turn
from routing_gym.retrieval.encoder import EMBEDDING_DIM, SentenceEncoder, default_encoder

ACTION_TYPES = ("per-turn", "assignment", "hybrid")
#: Tokens of an answer cue and a choice, per scoring row, in the default cost bound.
SCORING_CUE_TOKENS = 8
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
            _require_positive_int(key, merged[key])
        if merged["limit"] is not None:
            _require_positive_int("limit", merged["limit"], "or None")
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


def _require_positive_int(key: str, value: Any, alternative: str = "") -> None:
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


class LiveRoutingEnv(RoutingEnvBase):
    """The Teacher–Student envs' base; subclasses set ``protocol_name`` and load their questions."""

    protocol_name: str = ""
    structural_keys = ("models", "action_type", "lora_rank", "lora_layers")
    data_keys = ("split", "data_dir", "limit", "skip")

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **overrides):
        super().__init__(config, render_mode, **overrides)
        self._models_used: list[str] = []
        n_models = len(self.model_names)
        self.lora_shapes: dict[str, dict[int, tuple[int, int]]] = {}
        if self.config["action_type"] == "per-turn":
            self.action_space = spaces.Discrete(n_models)
        elif self.config["action_type"] == "assignment":
            self.action_space = spaces.MultiDiscrete([n_models] * len(ROLES))
        else:
            self.action_space = self._hybrid_action_space(n_models)
        self.observation_space = spaces.Dict(
            {
                "context": spaces.Box(-1.0, 1.0, (EMBEDDING_DIM,), np.float32),
                "depth": spaces.Box(0.0, 1.0, (1,), np.float32),
                "cost": spaces.Box(0.0, 1.0, (1,), np.float32),
                "role": spaces.Box(0.0, 1.0, (len(ROLES),), np.float32),
                "searches_left": spaces.Box(0.0, 1.0, (1,), np.float32),
            }
        )

    def _hybrid_action_space(self, n_models: int) -> spaces.Dict:
        """HAPS's action: a model per role plus, for each open model, its LoRA factors in [-1, 1].

        Closed models get no LoRA entry (HAPS's Remark 1 mask). Shapes come from the loaded
        model's ``o_proj`` layers, so the open models load here.
        """
        rank, k = self.config["lora_rank"], self.config["lora_layers"]
        lora = {}
        for name in self.model_names:
            if not self.pool.is_open(name):
                continue
            shapes = self.pool.lora_shapes(name)
            layers = [sorted(shapes)[i] for i in target_layers(len(shapes), k)]
            self.lora_shapes[name] = {layer: shapes[layer] for layer in layers}
            size = sum(out * rank + rank * inp for out, inp in self.lora_shapes[name].values())
            lora[name] = spaces.Box(-1.0, 1.0, (size,), np.float32)
        return spaces.Dict(
            {"assignment": spaces.MultiDiscrete([n_models] * len(ROLES)), "lora": spaces.Dict(lora)}
        )

    def adapters_from_action(self, lora_action: dict) -> dict:
        """Per-model LoRA adapters from the flat [-1, 1] factor vectors (scaled by ``lora_scale``).

        An all-zero vector means no adapter: its delta is exactly zero, and sharing the
        no-LoRA cache entries keeps replay cheap.
        """
        adapters = {}
        rank, scale = self.config["lora_rank"], float(self.config["lora_scale"])
        for name, shapes in self.lora_shapes.items():
            flat = np.asarray(lora_action[name], dtype=np.float32)
            if not np.all(np.isfinite(flat)):
                raise ValueError(f"LoRA action for {name!r} has NaN or inf values.")
            if not np.any(flat):
                continue
            factors, offset = {}, 0
            for layer, (out, inp) in shapes.items():
                a = flat[offset : offset + out * rank].reshape(out, rank)
                offset += out * rank
                b = flat[offset : offset + rank * inp].reshape(rank, inp)
                offset += rank * inp
                factors[layer] = (torch.from_numpy(a * scale), torch.from_numpy(b * scale))
            adapters[name] = LoRAAdapter(factors, alpha=self.config["lora_alpha"], model=name)
        return adapters

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            **super().default_config(),
            "action_type": "per-turn",
            "skip": 0,
            "protocol": {},
            # HAPS's low level (action_type="hybrid"): rank-r LoRA on o_proj of the last k layers.
            "lora_rank": 8,
            "lora_layers": 1,
            "lora_alpha": 0.01,
            "lora_scale": 1.0,
        }

    def validate_config(self, config: dict[str, Any]) -> None:
        if config["action_type"] not in ACTION_TYPES:
            raise ValueError(f"config['action_type'] must be one of {ACTION_TYPES}, got {config['action_type']!r}.")
        skip = config["skip"]
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise ValueError(f"config['skip'] must be an int >= 0, got {skip!r}.")
        if not isinstance(config["protocol"], dict):
            raise ValueError("config['protocol'] must be a dict of protocol settings.")
        _require_positive_int("lora_rank", config["lora_rank"])
        k = config["lora_layers"]
        if not (k == "all" or (isinstance(k, int) and k >= 1)):
            raise ValueError(f"config['lora_layers'] must be a positive int or 'all', got {k!r}.")
        for key in ("lora_alpha", "lora_scale"):
            if not np.isfinite(float(config[key])):
                raise ValueError(f"config[{key!r}] must be finite, got {config[key]!r}.")

    def make_protocol(self, config: dict[str, Any]) -> EpisodeProtocol:
        return make_protocol(self.protocol_name, config["protocol"])

    def worst_episode_cost(self) -> float:
        specs = [resolve_spec(m) for m in self.config["models"]]
        prompt, new = self.config["cost_norm_prompt_tokens"], self.protocol.max_new_tokens_per_turn
        # A scoring pass reads prompt and reply once per choice (as the local backend runs it)
        # plus a few tokens of the choice itself.
        rows = self.protocol.max_scoring_choices_per_turn
        per_turn = max(
            s.price.cost(prompt, new) + s.price.cost(rows * (prompt + new + SCORING_CUE_TOKENS), rows * SCORING_CUE_TOKENS)
            for s in specs
        )
        return float(per_turn * self.protocol.max_turns)

    def load_examples(self) -> list:
        examples = self.load_split(self.config["split"], self.config["data_dir"])
        if self.config["limit"] is not None or self.config["skip"]:
            examples = self.limit_examples(examples, self.config["limit"], self.config["skip"])
        return examples

    def _no_questions(self) -> str:
        skipped = f" after skipping {self.config['skip']}." if self.config["skip"] else "."
        return f"split {self.config['split']!r} has no questions{skipped}"

    def limit_examples(self, examples: list, limit: int | None, skip: int = 0) -> list:
        """The questions a limited env keeps: ``limit`` (all if None) after the first ``skip``,
        in file order."""
        return examples[skip:] if limit is None else examples[skip : skip + limit]

    def load_split(self, split: str, data_dir) -> list:
        """The questions of a split; each subclass reads its own data set."""
        raise TypeError(f"{type(self).__name__} does not define load_split(split, data_dir).")

    # -- a step: one turn, or a whole episode --------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._models_used = []
        return super().reset(seed=seed, options=options)

    def check_action(self, action) -> None:
        if self.config["action_type"] == "hybrid" and isinstance(action, dict) and isinstance(action.get("lora"), dict):
            for name, factors in action["lora"].items():
                if not np.all(np.isfinite(np.asarray(factors, dtype=np.float64))):
                    raise ValueError(f"LoRA action for model {name!r} has NaN or inf values.")
        super().check_action(action)

    def _move(self, action) -> Move:
        if self.config["action_type"] == "per-turn":
            return self._turn_job(self.model_names[int(action)])
        assignment, adapters = self._episode_action(action)
        return EpisodePlay(self.engine, self._state, assignment, self._episode_seed, adapters)

    def _episode_action(self, action) -> tuple[dict[str, str], dict[str, Any]]:
        """The model per role and the LoRA adapter per model of a whole-episode action."""
        adapters = {}
        if self.config["action_type"] == "hybrid":
            adapters = self.adapters_from_action(action["lora"])
            action = action["assignment"]
        assignment = {role: self.model_names[int(a)] for role, a in zip(ROLES, np.asarray(action).tolist())}
        return assignment, adapters

    def finish(self, move: Move, outcome: Outcome):
        if isinstance(move, EpisodePlay):
            return self._episode_transition(dict(move.assignment), dict(move.adapters), outcome)
        turn: Turn = outcome
        cost_before = self._episode_cost
        self._episode_cost += turn.cost
        self._models_used.append(turn.model)
        truncated = not self._state.done and len(self._state.turns) >= self.engine.max_turns
        terminated = bool(self._state.done)
        reward = self._reward(cost_before, terminated or truncated)
        return self._observation(), reward, terminated, truncated, self._info(role=turn.role, turn=turn)

    def _episode_transition(self, assignment: dict[str, str], adapters: dict[str, Any], cost: float):
        """Observation, reward, flags and info after a whole episode played in one step."""
        self._episode_cost += cost
        self._models_used.extend(turn.model for turn in self._state.turns)
        reward = self._reward(0.0, True)
        info = self._info()
        info["assignment"] = dict(assignment)
        if self.config["action_type"] == "hybrid":
            info["adapters"] = {name: adapter.digest for name, adapter in adapters.items()}
        return self._observation(), reward, True, False, info

    # -- observation, info ----------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        state, engine = self._state, self.engine
        role = np.zeros(len(ROLES), dtype=np.float32)
        if not engine.is_over(state):
            role[ROLES.index(engine.next_role(state))] = 1.0
        budget = max(1, engine.search_budget)
        return {
            "context": self.encode_contexts([state])[0],
            "depth": np.array([len(state.turns) / engine.max_turns], dtype=np.float32),
            "cost": np.array([self.cost_normalizer(self._episode_cost)], dtype=np.float32),
            "role": role,
            "searches_left": np.array([min(1.0, engine.searches_left(state) / budget)], dtype=np.float32),
        }

    def _info(self, role: str | None = None, turn: Turn | None = None) -> dict[str, Any]:
        state = self._state
        turns = state.turns
        performance = self.engine.performance(state)
        normalized_cost = float(self.cost_normalizer(self._episode_cost))
        info: dict[str, Any] = {
            "question_id": self._example_id(state.example),
            "index": state.extra["question_index"],
            "perf": performance,
            "cost": float(self._episode_cost),
            "normalized_cost": normalized_cost,
            "lam": self.lam,
            "reward_vector": np.array([performance, -normalized_cost], dtype=np.float64),
            "models": list(self._models_used),
            "roles": [t.role for t in turns],
            "prompt_tokens": int(sum(t.prompt_tokens for t in turns)),
            "completion_tokens": int(sum(t.completion_tokens for t in turns)),
            # scoring passes (answer letters, verdicts): priced in "cost", counted here
            "scoring_calls": int(sum(t.scoring_calls for t in turns)),
            "scoring_prompt_tokens": int(sum(t.scoring_prompt_tokens for t in turns)),
            "scoring_completion_tokens": int(sum(t.scoring_completion_tokens for t in turns)),
            "answer": state.answer,
        }
        if role is not None:
            info["role"] = role
        if self.config["record_text"]:
            info["question"] = getattr(state.example, "question", "")
            info["transcript"] = self.engine.render(state)
            info["calls"] = [
                {
                    "role": t.role,
                    "model": t.model,
                    "messages": copy.deepcopy(t.messages),
                    "response_prefix": t.response_prefix,
                    "text": t.text,
                    "prompt_ids": list(t.prompt_ids),
                    "completion_ids": list(t.completion_ids),
                }
                for t in turns
            ]
        return info

    @staticmethod
    def _example_id(example) -> str:
        return str(getattr(example, "id", ""))

"""Machinery shared by the live Teacher–Student routing envs (HotpotQA, MMLU).

An episode is one question answered by two LLM agents. At each decision point the
agent picks which model of the pool makes the next turn ("per-turn" action type,
HierRouter's formulation), or picks one model per role once at the start
("assignment" action type, HAPS's high-level decision).

Episodes run through an ``EpisodeEngine`` (``routing_gym.engine``): the env picks the model
of a turn (``turn_job``) and the engine plays it. A vector of envs runs the model calls of all
its episodes in one batch and hands each env its turn's calls (``prefetch``) before stepping
it (see ``routing_gym.vector``).
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, resolve_lambda, routing_reward
from routing_gym.engine import EpisodeEngine, EpisodePlay, TurnCalls, TurnJob
from routing_gym.envs.question_order import QuestionOrder, question_for_reset
from routing_gym.envs.validation import merge_config, require_action
from routing_gym.llm.cache import default_cache_path
from routing_gym.llm.lora import LoRAAdapter, target_layers
from routing_gym.llm.pool import LLMPool
from routing_gym.llm.requests import GenerationRequest, GenerationResult, ScoringResult
from routing_gym.llm.spec import DEFAULT_POOL, resolve_spec
from routing_gym.protocols import make_protocol
from routing_gym.protocols.base import ROLES, EpisodeState, TeacherStudentProtocol, Turn
from routing_gym.retrieval.encoder import EMBEDDING_DIM, SentenceEncoder, default_encoder

ACTION_TYPES = ("per-turn", "assignment", "hybrid")
#: Tokens of an answer cue and a choice, per scoring row, in the default cost bound.
SCORING_CUE_TOKENS = 8
CACHE_MODES = ("rw", "ro", "off")
# Config keys that change the spaces or the pool; reset(options={"config": ...}) may not touch them.
STRUCTURAL_KEYS = ("models", "action_type", "lora_rank", "lora_layers")


class LiveRoutingEnv(gym.Env):
    """Base class; subclasses set ``protocol_name`` and load their questions."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    protocol_name: str = ""

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **overrides):
        """``config`` and keyword ``overrides`` (config keys, e.g. from a registered variant) are
        merged over ``default_config()``."""
        # Unsupported modes are tolerated (SB3's make_vec_env passes "rgb_array"); gym.make
        # already warns about them, and render() then returns None.
        self.render_mode = render_mode
        self._pool: LLMPool | None = None
        self._encoder: SentenceEncoder | None = None
        self._examples: list | None = None
        self._questions = QuestionOrder()
        self._state: EpisodeState | None = None
        self._episode_seed = 0
        self._episode_cost = 0.0
        self._prefetched: TurnCalls | None = None
        self._prefetched_episode: tuple[EpisodePlay, float] | None = None
        self._engine: EpisodeEngine | None = None
        self.config = self.default_config()
        self.configure({**(config or {}), **overrides})
        self.model_names = [resolve_spec(m).name for m in self.config["models"]]
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
        """Defaults, merged with ``config=`` and ``reset(options={"config": ...})``."""
        return {
            "models": list(DEFAULT_POOL),
            "lam": "balanced",
            "action_type": "per-turn",
            "split": "valid",
            "data_dir": None,
            "limit": None,
            "skip": 0,
            "shuffle": True,
            "protocol": {},
            "cache_path": None,
            "cache_mode": "rw",
            "cost_bounds": None,
            "cost_norm_prompt_tokens": 1024,
            "per_step_cost": False,
            "record_text": False,
            "max_batch_size": 32,
            # HAPS's low level (action_type="hybrid"): rank-r LoRA on o_proj of the last k layers.
            "lora_rank": 8,
            "lora_layers": 1,
            "lora_alpha": 0.01,
            "lora_scale": 1.0,
        }

    def configure(self, overrides: dict[str, Any]) -> None:
        """Merge and validate config overrides; a bad key or value raises ValueError naming it."""
        merged = merge_config(type(self).__name__, self.config, overrides)
        resolve_lambda(merged["lam"])  # raises naming the bad regime
        if merged["action_type"] not in ACTION_TYPES:
            raise ValueError(f"config['action_type'] must be one of {ACTION_TYPES}, got {merged['action_type']!r}.")
        if merged["cache_mode"] not in CACHE_MODES:
            raise ValueError(f"config['cache_mode'] must be one of {CACHE_MODES}, got {merged['cache_mode']!r}.")
        if not merged["models"]:
            raise ValueError("config['models'] must name at least one model.")
        for model in merged["models"]:
            resolve_spec(model)  # an unknown model fails here, named
        if merged["limit"] is not None and (not isinstance(merged["limit"], int) or merged["limit"] < 1):
            raise ValueError(f"config['limit'] must be a positive int or None, got {merged['limit']!r}.")
        skip = merged["skip"]
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise ValueError(f"config['skip'] must be an int >= 0, got {skip!r}.")
        if not isinstance(merged["protocol"], dict):
            raise ValueError("config['protocol'] must be a dict of protocol settings.")
        bounds = merged["cost_bounds"]
        if bounds is not None and not (isinstance(bounds, dict) and set(bounds) == {"low", "high"}):
            raise ValueError(f"config['cost_bounds'] must be None or {{'low': x, 'high': y}}, got {bounds!r}.")
        if not isinstance(merged["lora_rank"], int) or merged["lora_rank"] < 1:
            raise ValueError(f"config['lora_rank'] must be a positive int, got {merged['lora_rank']!r}.")
        k = merged["lora_layers"]
        if not (k == "all" or (isinstance(k, int) and k >= 1)):
            raise ValueError(f"config['lora_layers'] must be a positive int or 'all', got {k!r}.")
        for key in ("lora_alpha", "lora_scale"):
            if not np.isfinite(float(merged[key])):
                raise ValueError(f"config[{key!r}] must be finite, got {merged[key]!r}.")
        if merged["max_batch_size"] < 1:
            raise ValueError(f"config['max_batch_size'] must be >= 1, got {merged['max_batch_size']!r}.")
        for key in STRUCTURAL_KEYS:
            if hasattr(self, "action_space") and merged[key] != self.config[key]:
                raise ValueError(f"config[{key!r}] changes the spaces; make a new env instead of resetting.")
        self.config = merged
        self.protocol: TeacherStudentProtocol = make_protocol(self.protocol_name, merged["protocol"])
        self.lam = resolve_lambda(merged["lam"])
        self.cost_normalizer = self._cost_normalizer()
        self._engine = None  # the protocol changed: the next episode gets an engine for it
        if getattr(self, "_examples", None) is not None and set(overrides) & {"split", "data_dir", "limit", "skip"}:
            self._examples = None

    def _cost_normalizer(self) -> CostNormalizer:
        """Frozen min-max bounds: given (e.g. fitted by the exhaustive builder on a train split)
        or, by default, from the worst case the config allows."""
        if self.config["cost_bounds"] is not None:
            return CostNormalizer.from_dict(self.config["cost_bounds"])
        specs = [resolve_spec(m) for m in self.config["models"]]
        prompt, new = self.config["cost_norm_prompt_tokens"], self.protocol.max_new_tokens_per_turn
        # A scoring pass reads prompt and reply once per choice (as the local backend runs it)
        # plus a few tokens of the choice itself.
        rows = self.protocol.max_scoring_choices_per_turn
        per_turn = max(
            s.price.cost(prompt, new) + s.price.cost(rows * (prompt + new + SCORING_CUE_TOKENS), rows * SCORING_CUE_TOKENS)
            for s in specs
        )
        return CostNormalizer(0.0, float(per_turn * self.protocol.max_turns))

    # -- lazily built heavy parts (never pickled) ---------------------------------------------
    @property
    def pool(self) -> LLMPool:
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
        """The episode engine (this env's protocol, pool and questions) that plays every turn."""
        if self._engine is None:
            self._engine = EpisodeEngine(self.protocol, self.pool, self.examples)
        return self._engine

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = default_encoder()
        return self._encoder

    @property
    def examples(self) -> list:
        if self._examples is None:
            examples = self.load_examples(self.config["split"], self.config["data_dir"])
            if self.config["limit"] is not None or self.config["skip"]:
                examples = self.limit_examples(examples, self.config["limit"], self.config["skip"])
            if not examples:
                raise ValueError(f"{type(self).__name__}: split {self.config['split']!r} has no questions"
                                 + (f" after skipping {self.config['skip']}." if self.config["skip"] else "."))
            self._examples = examples
            self._questions.forget()
            self._engine = None
        return self._examples

    def limit_examples(self, examples: list, limit: int | None, skip: int = 0) -> list:
        """The questions a limited env keeps: ``limit`` (all if None) after the first ``skip``,
        in file order."""
        return examples[skip:] if limit is None else examples[skip : skip + limit]

    def load_examples(self, split: str, data_dir) -> list:
        """The questions of a split; each subclass reads its own data set."""
        raise TypeError(f"{type(self).__name__} does not define load_examples(split, data_dir).")

    # -- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        index = question_for_reset(self, seed, options)
        self._state = self.engine.start(index)
        self._prefetched = None
        self._prefetched_episode = None
        self._episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._episode_cost = 0.0
        self._models_used: list[str] = []
        return self._observation(), self._info(role=None)

    def step(self, action):
        if self._prefetched_episode is not None:  # played in a batch by routing_gym.vector
            return self._book_prefetched_episode(action)
        job = self.turn_job(action)
        if job is None:  # the assignment action types run a whole episode in one step
            return self.run_assignment_episode(action)
        calls, self._prefetched = self._prefetched, None
        if calls is None or not calls.job.same_turn(job):
            calls = self.engine.run_calls([job])[0]
        role = self.engine.next_role(self._state)
        cost_before = self._episode_cost
        turn = self.engine.apply(calls)
        self._episode_cost += turn.cost
        self._models_used.append(turn.model)
        return self._transition(role, turn, cost_before)

    # -- per-turn steps, for batched runners (routing_gym.vector) --------------------------------
    def turn_job(self, action) -> TurnJob | None:
        """Validate the action and return the turn it asks for (None for the action types that
        play a whole episode in one step)."""
        self._require_episode()
        if self.config["action_type"] == "hybrid" and isinstance(action, dict) and isinstance(action.get("lora"), dict):
            for name, factors in action["lora"].items():
                if not np.all(np.isfinite(np.asarray(factors, dtype=np.float64))):
                    raise ValueError(f"LoRA action for model {name!r} has NaN or inf values.")
        require_action(self.action_space, action)  # shared with the table envs (rejects True, 2.5, '1')
        if self.config["action_type"] != "per-turn":
            return None
        model = self.model_names[int(action)]
        return self.engine.job(self._state, model, seed=self._episode_seed + len(self._state.turns))

    def begin_step(self, action) -> GenerationRequest | None:
        """The request the action's model must answer next (None for whole-episode action types)."""
        job = self.turn_job(action)
        return None if job is None else self.engine.request(job)

    def prefetch(
        self, request: GenerationRequest, result: GenerationResult, scores: list[ScoringResult] | None = None
    ) -> None:
        """Hand in the model calls of the next step's turn, made in a batch elsewhere.

        A vector env runs the calls of all its envs at once, then calls the normal ``step``
        (through any wrappers), which applies these instead of calling the pool. ``scores``
        are the reply's scoring passes; None runs them in ``step``.
        """
        self._require_episode()
        seed = self._episode_seed + len(self._state.turns)
        job = TurnJob(self._state, request.model, seed, request.adapter, len(self._state.turns))
        self._prefetched = TurnCalls(job, request, result, None if scores is None else list(scores))

    def episode_play(self, action) -> EpisodePlay | None:
        """Validate the action; the whole episode it asks for (None for the per-turn action type).

        A batched runner plays many envs' episodes together (``play_episodes_together``), then
        hands each env its cost with ``prefetch_episode`` before calling the normal ``step``.
        """
        if self.config["action_type"] == "per-turn":
            return None
        self.turn_job(action)  # validates the action (None: a whole-episode action type)
        assignment, adapters = self._episode_action(action)
        return EpisodePlay(self.engine, self._state, assignment, self._episode_seed, adapters, action)

    def prefetch_episode(self, play: EpisodePlay, cost: float) -> None:
        """Hand in the episode ``play`` (already played to its end elsewhere) and its cost."""
        if play.state is not self._state or not self.engine.is_over(play.state):
            raise RuntimeError("prefetch_episode needs this env's current episode, played to its end.")
        self._prefetched_episode = (play, float(cost))

    def _episode_action(self, action) -> tuple[dict[str, str], dict[str, Any]]:
        """The model per role and the LoRA adapter per model of a whole-episode action."""
        adapters = {}
        if self.config["action_type"] == "hybrid":
            adapters = self.adapters_from_action(action["lora"])
            action = action["assignment"]
        assignment = {role: self.model_names[int(a)] for role, a in zip(ROLES, np.asarray(action).tolist())}
        return assignment, adapters

    def run_assignment_episode(self, action):
        """Run the whole episode with one model per role (and, for "hybrid", their LoRA adapters)."""
        assignment, adapters = self._episode_action(action)
        costs = self.engine.play_episodes([self._state], [assignment], [self._episode_seed], [adapters])
        return self._episode_transition(assignment, adapters, costs[0])

    def _book_prefetched_episode(self, action):
        play, cost = self._prefetched_episode
        self._prefetched_episode = None
        if action is play.action:  # the very action it was played for (the usual case)
            return self._episode_transition(dict(play.assignment), dict(play.adapters), cost)
        assignment, adapters = self._episode_action(action)
        if (
            play.state is not self._state
            or dict(play.assignment) != assignment
            or {n: a.digest for n, a in play.adapters.items()} != {n: a.digest for n, a in adapters.items()}
        ):
            raise RuntimeError(
                "The batched runner played this episode for another action than step() got "
                "(does a wrapper change the action?)."
            )
        return self._episode_transition(assignment, adapters, cost)

    def _episode_transition(self, assignment: dict[str, str], adapters: dict[str, Any], cost: float):
        """Observation, reward, flags and info after a whole episode played in one step."""
        self._episode_cost += cost
        self._models_used.extend(turn.model for turn in self._state.turns)
        reward = self._reward(0.0, True)
        info = self._info(role=None)
        info["assignment"] = dict(assignment)
        if self.config["action_type"] == "hybrid":
            info["adapters"] = {name: adapter.digest for name, adapter in adapters.items()}
        return self._observation(), reward, True, False, info

    def _transition(self, role: str, turn: Turn, cost_before: float):
        """Observation, reward, flags and info after a per-turn step."""
        truncated = not self._state.done and len(self._state.turns) >= self.engine.max_turns
        terminated = bool(self._state.done)
        reward = self._reward(cost_before, terminated or truncated)
        info = self._info(role=role, turn=turn)
        return self._observation(), reward, terminated, truncated, info

    # -- observation, reward, info --------------------------------------------------------------
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
        state, engine = self._state, self.engine
        role = np.zeros(len(ROLES), dtype=np.float32)
        if not engine.is_over(state):
            role[ROLES.index(engine.next_role(state))] = 1.0
        budget = max(1, engine.search_budget)
        context = self.encoder.encode([engine.context_text(state)])[0]
        return {
            "context": np.clip(context, -1.0, 1.0).astype(np.float32),
            "depth": np.array([len(state.turns) / engine.max_turns], dtype=np.float32),
            "cost": np.array([self.cost_normalizer(self._episode_cost)], dtype=np.float32),
            "role": role,
            "searches_left": np.array([min(1.0, engine.searches_left(state) / budget)], dtype=np.float32),
        }

    def _info(self, role: str | None, turn: Turn | None = None) -> dict[str, Any]:
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
        state.update(_pool=None, _encoder=None, _prefetched=None, _prefetched_episode=None, _engine=None)
        return state

    # -- the episode in progress, for agents that read the question ------------------------------
    @property
    def episode_over(self) -> bool:
        """Whether there is no episode in progress (none started, or it has ended)."""
        return self._state is None or self.engine.is_over(self._state)

    @property
    def records_text(self) -> bool:
        """Whether ``info`` holds the question, the transcript and every call (``record_text``)."""
        return bool(self.config["record_text"])

    @property
    def current_example(self) -> Any:
        """The question of the episode in progress (its data-set example)."""
        if self._state is None:
            raise RuntimeError("The env has no episode yet: call reset() first.")
        return self._state.example


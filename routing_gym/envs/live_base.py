"""Machinery shared by the live Teacher–Student routing envs (HotpotQA, MMLU).

An episode is one question answered by two LLM agents. At each decision point the
agent picks which model of the pool makes the next turn ("per-turn" action type,
HierRouter's formulation), or picks one model per role once at the start
("assignment" action type, HAPS's high-level decision).

Each step is split in two halves, ``begin_step`` (which request to run) and
``complete_step`` (use the reply), so that a vector of envs can run the model calls of
all its episodes in one batch (see ``routing_gym.vector``).
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, resolve_lambda, routing_reward
from routing_gym.envs.validation import require_action
from routing_gym.llm.pool import LLMPool
from routing_gym.llm.requests import GenerationRequest, GenerationResult
from routing_gym.llm.spec import REAL_POOL, resolve_spec
from routing_gym.protocols import make_protocol
from routing_gym.protocols.base import ROLES, EpisodeState, TeacherStudentProtocol, Turn
from routing_gym.protocols.lockstep import run_lockstep
from routing_gym.retrieval.encoder import EMBEDDING_DIM, SentenceEncoder

ACTION_TYPES = ("per-turn", "assignment", "hybrid")
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
        self._order: np.ndarray | None = None
        self._cursor = 0
        self._state: EpisodeState | None = None
        self._episode_seed = 0
        self._episode_cost = 0.0
        self._prefetched: tuple[GenerationRequest, GenerationResult] | None = None
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
        from routing_gym.llm.lora import target_layers

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
        import torch

        from routing_gym.llm.lora import LoRAAdapter

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
            "models": list(REAL_POOL),
            "lam": "balanced",
            "action_type": "per-turn",
            "split": "valid",
            "data_dir": None,
            "limit": None,
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
        if not isinstance(overrides, dict):
            raise ValueError(f"config must be a dict, got {type(overrides).__name__}.")
        unknown = set(overrides) - set(self.config)
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown config keys {sorted(unknown)}; known: {sorted(self.config)}.")
        merged = {**self.config, **copy.deepcopy(overrides)}
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
        if getattr(self, "_examples", None) is not None and set(overrides) & {"split", "data_dir", "limit"}:
            self._examples = None

    def _cost_normalizer(self) -> CostNormalizer:
        """Frozen min-max bounds: given (e.g. fitted by the exhaustive builder on a train split)
        or, by default, from the worst case the config allows."""
        if self.config["cost_bounds"] is not None:
            return CostNormalizer.from_dict(self.config["cost_bounds"])
        specs = [resolve_spec(m) for m in self.config["models"]]
        per_turn = max(
            s.price.cost(self.config["cost_norm_prompt_tokens"], self.protocol.max_new_tokens_per_turn) for s in specs
        )
        return CostNormalizer(0.0, float(per_turn * self.protocol.max_turns))

    # -- lazily built heavy parts (never pickled) ---------------------------------------------
    @property
    def pool(self) -> LLMPool:
        if self._pool is None:
            cache = self.config["cache_path"]
            if cache is None and self.config["cache_mode"] != "off":
                from routing_gym.paths import cache_dir

                cache = cache_dir() / "responses.sqlite"
            self._pool = LLMPool(
                self.config["models"], cache=cache, cache_mode=self.config["cache_mode"],
                max_batch_size=self.config["max_batch_size"],
            )
        return self._pool

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            from routing_gym.retrieval.encoder import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    @property
    def examples(self) -> list:
        if self._examples is None:
            examples = self.load_examples(self.config["split"], self.config["data_dir"])
            if self.config["limit"] is not None:
                examples = examples[: self.config["limit"]]
            if not examples:
                raise ValueError(f"{type(self).__name__}: split {self.config['split']!r} has no questions.")
            self._examples = examples
            self._order = None
        return self._examples

    def load_examples(self, split: str, data_dir) -> list:
        """The questions of a split; each subclass reads its own data set."""
        raise TypeError(f"{type(self).__name__} does not define load_examples(split, data_dir).")

    # -- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"config", "index"}
        if unknown:
            raise ValueError(f"reset options accept 'config' and 'index', got unknown {sorted(unknown)}.")
        if "config" in options:
            self.configure(options["config"])
        examples = self.examples
        if seed is not None or self._order is None:
            self._order = (
                self.np_random.permutation(len(examples)) if self.config["shuffle"] else np.arange(len(examples))
            )
            self._cursor = 0
        if "index" in options:
            index = int(options["index"])
            if not 0 <= index < len(examples):
                raise ValueError(f"reset option 'index' must be in [0, {len(examples)}), got {index}.")
        else:
            index = int(self._order[self._cursor % len(examples)])
            self._cursor += 1
        self._state = self.protocol.start(examples[index])
        self._state.extra["question_index"] = index
        self._episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._episode_cost = 0.0
        self._models_used: list[str] = []
        return self._observation(), self._info(role=None)

    def step(self, action):
        request = self.begin_step(action)
        if request is None:  # the assignment action type runs a whole episode in one step
            return self.run_assignment_episode(action)
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == request:
            result = prefetched[1]
        else:
            result = self.pool.generate([request])[0]
        return self.complete_step(request, result)

    def prefetch(self, request: GenerationRequest, result: GenerationResult) -> None:
        """Hand in the reply to the next step's request, computed in a batch elsewhere.

        A vector env batches the model calls of all its envs and then calls the normal
        ``step`` (through any wrappers), which uses this reply instead of calling the pool.
        """
        self._prefetched = (request, result)

    # -- the two halves of a per-turn step -----------------------------------------------------
    def begin_step(self, action) -> GenerationRequest | None:
        """Validate the action and return the request the chosen model must answer."""
        self._require_episode()
        if self.config["action_type"] == "hybrid" and isinstance(action, dict) and isinstance(action.get("lora"), dict):
            for name, factors in action["lora"].items():
                if not np.all(np.isfinite(np.asarray(factors, dtype=np.float64))):
                    raise ValueError(f"LoRA action for model {name!r} has NaN or inf values.")
        require_action(self.action_space, action)  # shared with the table envs (rejects True, 2.5, '1')
        if self.config["action_type"] != "per-turn":
            return None
        model = self.model_names[int(action)]
        seed = self._episode_seed + len(self._state.turns)
        return self.protocol.request(self._state, model, seed=seed)

    def complete_step(self, request: GenerationRequest, result: GenerationResult):
        """Hand the reply to the protocol and build the transition."""
        role = self.protocol.next_role(self._state)
        cost_before = self._episode_cost
        turn = self.protocol.advance(self._state, request, result, self.pool)
        self._episode_cost += result.cost
        self._models_used.append(request.model)
        truncated = not self._state.done and len(self._state.turns) >= self.protocol.max_turns
        terminated = bool(self._state.done)
        reward = self._reward(cost_before, terminated or truncated)
        info = self._info(role=role, turn=turn)
        return self._observation(), reward, terminated, truncated, info

    def run_assignment_episode(self, action):
        """Run the whole episode with one model per role (and, for "hybrid", their LoRA adapters)."""
        adapters = {}
        if self.config["action_type"] == "hybrid":
            adapters = self.adapters_from_action(action["lora"])
            action = action["assignment"]
        assignment = {role: self.model_names[int(a)] for role, a in zip(ROLES, np.asarray(action).tolist())}
        costs = run_lockstep(self.protocol, self.pool, [self._state], [assignment], [self._episode_seed], [adapters])
        self._episode_cost += costs[0]
        self._models_used.extend(turn.model for turn in self._state.turns)
        reward = self._reward(0.0, True)
        info = self._info(role=None)
        info["assignment"] = dict(assignment)
        if self.config["action_type"] == "hybrid":
            info["adapters"] = {name: adapter.digest for name, adapter in adapters.items()}
        return self._observation(), reward, True, False, info

    # -- observation, reward, info --------------------------------------------------------------
    def _require_episode(self) -> None:
        if self._state is None:
            raise RuntimeError("Call reset() before step().")
        if self._state.done or len(self._state.turns) >= self.protocol.max_turns:
            raise RuntimeError("The episode is over; call reset() before step().")

    def _reward(self, cost_before: float, episode_over: bool) -> float:
        norm = self.cost_normalizer
        if self.config["per_step_cost"]:
            # Telescoping increments: the episode total equals the end-of-episode cost term.
            reward = -self.lam * (norm(self._episode_cost) - norm(cost_before))
            return float(reward + (self.protocol.performance(self._state) if episode_over else 0.0))
        if not episode_over:
            return 0.0
        return routing_reward(self.protocol.performance(self._state), norm(self._episode_cost), self.lam)

    def _observation(self) -> dict[str, np.ndarray]:
        state = self._state
        over = state.done or len(state.turns) >= self.protocol.max_turns
        role = np.zeros(len(ROLES), dtype=np.float32)
        if not over:
            role[ROLES.index(self.protocol.next_role(state))] = 1.0
        budget = max(1, int(self.protocol.config.get("search_budget", 0) or 0))
        context = self.encoder.encode([self.protocol.context_text(state)])[0]
        return {
            "context": np.clip(context, -1.0, 1.0).astype(np.float32),
            "depth": np.array([len(state.turns) / self.protocol.max_turns], dtype=np.float32),
            "cost": np.array([self.cost_normalizer(self._episode_cost)], dtype=np.float32),
            "role": role,
            "searches_left": np.array([min(1.0, self.protocol.searches_left(state) / budget)], dtype=np.float32),
        }

    def _info(self, role: str | None, turn: Turn | None = None) -> dict[str, Any]:
        state = self._state
        turns = state.turns
        performance = float(self.protocol.performance(state))
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
            "answer": state.answer,
        }
        if role is not None:
            info["role"] = role
        if self.config["record_text"]:
            info["question"] = getattr(state.example, "question", "")
            info["transcript"] = self.protocol.render(state)
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
            return "" if self._state is None else self.protocol.render(self._state)
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- pickling: heavy clients are rebuilt lazily ------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_pool=None, _encoder=None, _prefetched=None)
        return state

    # -- helpers for batched runners -----------------------------------------------------------
    @property
    def episode_over(self) -> bool:
        return self._state is None or self._state.done or len(self._state.turns) >= self.protocol.max_turns


"""The live Teacher–Student routing envs' base (HotpotQA, MMLU), on ``RoutingEnvBase``.

An episode is one question answered by two LLM agents. At each decision point the agent picks
which model of the pool makes the next turn ("per-turn" action type, HierRouter's
formulation), or one model per role once at the start ("assignment", HAPS's high-level
decision), plus per-model LoRA factors ("hybrid", HAPS's low level).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from routing_gym.engine import EpisodePlay, Move, Outcome
from routing_gym.envs.live_base import RoutingEnvBase, require_positive_int
from routing_gym.llm.lora import LoRAAdapter, target_layers
from routing_gym.llm.spec import resolve_spec
from routing_gym.protocols import make_protocol
from routing_gym.protocols.base import EpisodeProtocol, Turn
from routing_gym.retrieval.encoder import EMBEDDING_DIM

ACTION_TYPES = ("per-turn", "assignment", "hybrid")
#: Tokens of an answer cue and a choice, per scoring row, in the default cost bound.
SCORING_CUE_TOKENS = 8


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
            self.action_space = spaces.MultiDiscrete([n_models] * len(self.roles))
        else:
            self.action_space = self._hybrid_action_space(n_models)
        self.observation_space = spaces.Dict(
            {
                "context": spaces.Box(-1.0, 1.0, (EMBEDDING_DIM,), np.float32),
                "depth": spaces.Box(0.0, 1.0, (1,), np.float32),
                "cost": spaces.Box(0.0, 1.0, (1,), np.float32),
                "role": spaces.Box(0.0, 1.0, (len(self.roles),), np.float32),
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
            {"assignment": spaces.MultiDiscrete([n_models] * len(self.roles)), "lora": spaces.Dict(lora)}
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
        require_positive_int("lora_rank", config["lora_rank"])
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
        assignment = {role: self.model_names[int(a)] for role, a in zip(self.roles, np.asarray(action).tolist())}
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
        role = np.zeros(len(self.roles), dtype=np.float32)
        if not engine.is_over(state):
            role[self.roles.index(engine.next_role(state))] = 1.0
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

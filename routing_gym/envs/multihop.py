"""HierRouter's multi-hop routing MDP, live: each hop one model of the pool improves the answer."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from routing_gym.cost import CostNormalizer, resolve_lambda, routing_reward
from routing_gym.data.splits import DEFAULT_FRACTIONS
from routing_gym.envs.question_order import QuestionOrder, question_for_reset
from routing_gym.envs.validation import merge_config
from routing_gym.llm.requests import GenerationRequest, GenerationResult
from routing_gym.llm.spec import DEFAULT_POOL, resolve_spec
from routing_gym.retrieval.encoder import EMBEDDING_DIM
from routing_gym.tasks import HOP_TASKS, LoadOptions, get_task

#: The default pool of the multi-hop envs; change it here and every multi-hop ID follows.
MULTIHOP_POOL: tuple[str, ...] = tuple(DEFAULT_POOL)
CACHE_MODES = ("rw", "ro", "off")


def hop_observation_space(num_models: int) -> spaces.Dict:
    """HierRouter's state as an observation: context embedding, depth, cost, task, who answered."""
    return spaces.Dict(
        {
            "context": spaces.Box(-1.0, 1.0, (EMBEDDING_DIM,), np.float32),
            "depth": spaces.Box(0.0, 1.0, (1,), np.float32),
            "cost": spaces.Box(0.0, 1.0, (1,), np.float32),
            "task": spaces.Box(0.0, 1.0, (len(HOP_TASKS),), np.float32),
            "answered": spaces.Box(0.0, 1.0, (num_models,), np.float32),
        }
    )
#: Config keys that change the spaces or the pool; reset(options={"config": ...}) may not touch them.
STRUCTURAL_KEYS = ("models",)


class MultiHopEnv(gym.Env):
    """
    ## Description
    HierRouter's pipeline as an MDP. A query of one of six tasks (GSM8K, MATH, MBPP,
    ARC-Challenge, MMLU, HumanEval) is answered in up to ``horizon`` hops. At each hop the
    agent picks a model of the pool; that model gets the task prompt with every earlier
    hop's response and writes an answer or an improved one. The agent may STOP after the
    first hop. The final answer is the last hop's. The state is (context, depth,
    accumulated cost) with context c_{t+1} = c_t ⊕ r_t.

    ## Action Space
    ``Discrete(M + 1)``: model ``i`` of ``config["models"]`` answers the next hop; ``M`` is
    STOP. ``action_masks()`` (for sb3-contrib's MaskablePPO) masks STOP at depth 0; an agent
    that ignores the mask and stops at once ends the episode with no answer (score 0, no
    cost). An action outside the space raises ``ValueError``.

    ## Observation Space
    A single-level ``Dict``: ``context`` (384-d MiniLM embedding of the question plus every
    response so far), ``depth`` (hops / horizon), ``cost`` (normalized accumulated cost),
    ``task`` (one-hot over the six tasks, same order in every variant) and ``answered``
    (1 for each model that has already answered).

    ## Rewards
    At the end: the task score of the final answer − λ · normalized episode cost. The score
    is the final number for GSM8K, math-verify equivalence for MATH, the answer letter for
    ARC and MMLU, and pass@1 in the sandbox for MBPP and HumanEval. With
    ``per_step_cost=True`` each hop pays −λ · its normalized cost and the end pays the score:
    the same total. ``info["reward_parts"]`` holds both parts.

    ## Starting State
    A query of the split, in seeded order (all tasks mixed for ``LLMRouting-MultiHop-v0``).

    ## Episode End
    Terminated on STOP or after ``horizon`` hops (default 3).

    ## Arguments
    ``config`` (merged over ``default_config()``): ``models``, ``tasks``, ``horizon``,
    ``lam`` (number or regime name), ``split`` ("train", "valid", "test"; ``splits`` overrides
    it per task), ``fractions`` (id-hash splits), ``data_dir``, ``limit`` (per task),
    ``temperature``, ``max_new_tokens`` (None: each task's own), ``response_chars`` (how much
    of each earlier response the next hop sees), ``cache_path``/``cache_mode``,
    ``cost_bounds``, ``per_step_cost``, ``record_text`` (prompts and responses in ``info``),
    ``sandbox`` (``SandboxLimits`` fields) and task extras (``math_source``,
    ``mmlu_subjects``, ``humaneval_path``, ``mbpp_variant``).

    ## Registered Configurations
    * ``LLMRouting-MultiHop-<Task>-v0`` for GSM8K, MATH, MBPP, ARC, MMLU, HumanEval.
    * ``LLMRouting-MultiHop-v0``: all six tasks mixed.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **overrides):
        """``config`` and keyword ``overrides`` (e.g. a registered variant's ``tasks``) merge
        over ``default_config()``."""
        self.render_mode = render_mode
        self._pool = None
        self._encoder = None
        self._sandbox = None
        self._examples: list[tuple[str, Any]] | None = None
        self._questions = QuestionOrder()
        self._episode: dict[str, Any] | None = None
        self._scores: dict[str, Any] = {}
        self.config = self.default_config()
        self.configure({**(config or {}), **overrides})
        self.model_names = [resolve_spec(m).name for m in self.config["models"]]
        self.stop_action = len(self.model_names)
        self.action_space = spaces.Discrete(len(self.model_names) + 1)
        self.observation_space = hop_observation_space(len(self.model_names))

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Defaults, merged with ``config=`` and ``reset(options={"config": ...})``."""
        return {
            "models": list(MULTIHOP_POOL),
            "tasks": list(HOP_TASKS),
            "horizon": 3,
            "lam": "balanced",
            "split": "test",
            "splits": {},
            "fractions": dict(DEFAULT_FRACTIONS),
            "data_dir": None,
            "limit": None,
            "shuffle": True,
            "temperature": 0.0,
            "max_new_tokens": None,
            "response_chars": 1500,
            "cache_path": None,
            "cache_mode": "rw",
            "cost_bounds": None,
            "cost_norm_prompt_tokens": 1024,
            "per_step_cost": False,
            "record_text": False,
            "max_batch_size": 32,
            "sandbox": {},
            "math_source": "math500",
            "mmlu_subjects": None,
            "humaneval_path": None,
            "mbpp_variant": "full",
        }

    def configure(self, overrides: dict[str, Any]) -> None:
        """Merge and validate config overrides; a bad key or value raises ValueError naming it."""
        merged = merge_config("MultiHopEnv", self.config, overrides)
        resolve_lambda(merged["lam"])
        if not merged["models"]:
            raise ValueError("config['models'] must name at least one model.")
        for model in merged["models"]:
            resolve_spec(model)  # an unknown model fails here, named
        if not merged["tasks"] or isinstance(merged["tasks"], str):
            raise ValueError(f"config['tasks'] must be a non-empty list of task names, got {merged['tasks']!r}.")
        for task in [*merged["tasks"], *merged["splits"]]:
            get_task(task)
        horizon = merged["horizon"]
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"config['horizon'] must be a positive int, got {horizon!r}.")
        if merged["cache_mode"] not in CACHE_MODES:
            raise ValueError(f"config['cache_mode'] must be one of {CACHE_MODES}, got {merged['cache_mode']!r}.")
        for key in ("limit", "max_new_tokens"):
            value = merged[key]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"config[{key!r}] must be a positive int or None, got {value!r}.")
        if not (isinstance(merged["temperature"], (int, float)) and merged["temperature"] >= 0):
            raise ValueError(f"config['temperature'] must be a number >= 0, got {merged['temperature']!r}.")
        if not isinstance(merged["response_chars"], int) or merged["response_chars"] < 1:
            raise ValueError(f"config['response_chars'] must be a positive int, got {merged['response_chars']!r}.")
        bounds = merged["cost_bounds"]
        if bounds is not None and not (isinstance(bounds, dict) and set(bounds) == {"low", "high"}):
            raise ValueError(f"config['cost_bounds'] must be None or {{'low': x, 'high': y}}, got {bounds!r}.")
        from routing_gym.execution import SandboxLimits

        try:
            SandboxLimits(**merged["sandbox"])
        except TypeError as exc:
            raise ValueError(f"config['sandbox'] has an unknown limit: {exc}.") from None
        for key in STRUCTURAL_KEYS:
            if hasattr(self, "action_space") and merged[key] != self.config[key]:
                raise ValueError(f"config[{key!r}] changes the spaces; make a new env instead of resetting.")
        reload = set(overrides) & {"tasks", "split", "splits", "fractions", "data_dir", "limit", "math_source",
                                   "mmlu_subjects", "humaneval_path", "mbpp_variant"}
        self.config = merged
        self.lam = resolve_lambda(merged["lam"])
        self.cost_normalizer = self._cost_normalizer()
        if reload:
            self._examples = None
        if "sandbox" in overrides:
            self._sandbox = None

    def _max_new_tokens(self, task: str) -> int:
        return self.config["max_new_tokens"] or get_task(task).max_new_tokens

    def _cost_normalizer(self) -> CostNormalizer:
        """Frozen min-max bounds: given (e.g. fitted on a train split) or the worst case of the config."""
        if self.config["cost_bounds"] is not None:
            return CostNormalizer.from_dict(self.config["cost_bounds"])
        completion = max(self._max_new_tokens(t) for t in self.config["tasks"])
        per_hop = max(resolve_spec(m).price.cost(self.config["cost_norm_prompt_tokens"], completion)
                      for m in self.config["models"])
        return CostNormalizer(0.0, float(per_hop * self.config["horizon"]))

    # -- lazily built heavy parts (never pickled) ---------------------------------------------
    @property
    def pool(self):
        if self._pool is None:
            from routing_gym.llm.cache import default_cache_path
            from routing_gym.llm.pool import LLMPool

            cache = self.config["cache_path"]
            if cache is None and self.config["cache_mode"] != "off":
                cache = default_cache_path()
            self._pool = LLMPool(self.config["models"], cache=cache, cache_mode=self.config["cache_mode"],
                                 max_batch_size=self.config["max_batch_size"])
        return self._pool

    @property
    def encoder(self):
        if self._encoder is None:
            from routing_gym.retrieval.encoder import default_encoder

            self._encoder = default_encoder()
        return self._encoder

    @property
    def sandbox(self):
        if self._sandbox is None:
            from routing_gym.execution import Sandbox

            self._sandbox = Sandbox(**self.config["sandbox"])
        return self._sandbox

    @property
    def examples(self) -> list[tuple[str, Any]]:
        """(task name, example) pairs of every configured task, task by task in file order."""
        if self._examples is None:
            pairs = []
            extra = {key: self.config[key] for key in ("math_source", "mmlu_subjects", "humaneval_path", "mbpp_variant")}
            for name in self.config["tasks"]:
                options = LoadOptions(split=self.config["splits"].get(name, self.config["split"]),
                                      data_dir=self.config["data_dir"], fractions=self.config["fractions"],
                                      limit=self.config["limit"], extra=extra)
                pairs.extend((name, example) for example in get_task(name).load(options))
            if not pairs:
                raise ValueError(f"MultiHopEnv: tasks {self.config['tasks']} have no queries in split "
                                 f"{self.config['split']!r} (splits={self.config['splits']}).")
            self._examples = pairs
            self._questions.forget()
        return self._examples

    # -- Gymnasium API ------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        index = question_for_reset(self, seed, options)
        task, example = self.examples[index]
        self._episode = {
            "index": index, "task": task, "example": example, "responses": [], "hops": [], "cost": 0.0,
            "seed": int(self.np_random.integers(0, 2**31 - 1)), "done": False, "score": None,
        }
        return self._observation(), self._info()

    def action_masks(self) -> np.ndarray:
        """Valid actions: every model, and STOP once a hop has answered."""
        mask = np.ones(self.action_space.n, dtype=bool)
        mask[self.stop_action] = bool(self._episode and self._episode["hops"])
        return mask

    def step(self, action):
        request = self.begin_step(action)
        result = None if request is None else self.pool.generate([request])[0]
        return self.complete_step(request, result)

    def begin_step(self, action) -> GenerationRequest | None:
        """Validate the action; the request the chosen model must answer, or None for STOP."""
        episode = self._episode
        if episode is None:
            raise RuntimeError("Call reset() before step().")
        if episode["done"]:
            raise RuntimeError("The episode is over; call reset() before step().")
        if isinstance(action, (bool, np.bool_)) or not _is_integral(action) or not self.action_space.contains(int(action)):
            raise ValueError(f"Action {action!r} is outside the action space {self.action_space}.")
        action = int(action)
        if action == self.stop_action:
            return None
        task = get_task(episode["task"])
        return GenerationRequest(
            model=self.model_names[action],
            messages=task.messages(episode["example"], episode["responses"], self.config["response_chars"]),
            max_new_tokens=self._max_new_tokens(episode["task"]),
            temperature=float(self.config["temperature"]),
            seed=episode["seed"] + len(episode["hops"]),
        )

    def complete_step(self, request: GenerationRequest | None, result: GenerationResult | None):
        """Use the hop's reply (None for STOP) and build the transition."""
        episode = self._episode
        cost_before = episode["cost"]
        if request is None:
            episode["done"] = True
        else:
            episode["responses"].append(result.text)
            episode["hops"].append({
                "model": request.model, "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens, "cost": float(result.cost),
            })
            if self.config["record_text"]:
                episode["hops"][-1]["messages"] = copy.deepcopy(list(request.messages))
            episode["cost"] += float(result.cost)
            episode["done"] = len(episode["hops"]) >= self.config["horizon"]
        if episode["done"]:
            episode["score"] = self._final_score()
        reward = self._reward(cost_before)
        return self._observation(), reward, bool(episode["done"]), False, self._info()

    # -- reward, observation, info --------------------------------------------------------------
    def _final_score(self) -> dict[str, Any]:
        episode = self._episode
        if not episode["responses"]:
            return {"value": 0.0, "answer": None, "details": {}}
        text = episode["responses"][-1]
        # Scoring runs model code for MBPP/HumanEval: keep each verdict, so replays and
        # repeated answers cost one sandbox run and stay equal.
        key = hashlib.sha256(f"{episode['task']}\0{episode['example'].id}\0{text}".encode()).hexdigest()
        if key not in self._scores:
            score = get_task(episode["task"]).score(text, episode["example"], self.sandbox)
            self._scores[key] = {"value": float(score.value), "answer": score.answer, "details": dict(score.details)}
        return copy.deepcopy(self._scores[key])

    def _reward(self, cost_before: float) -> float:
        episode = self._episode
        norm = self.cost_normalizer
        score = episode["score"]["value"] if episode["done"] else 0.0
        if self.config["per_step_cost"]:
            # telescoping increments: the episode total equals the end-of-episode cost term
            return float(score - self.lam * (norm(episode["cost"]) - norm(cost_before)))
        if not episode["done"]:
            return 0.0
        return float(routing_reward(score, norm(episode["cost"]), self.lam))

    def _observation(self) -> dict[str, np.ndarray]:
        episode = self._episode
        task = get_task(episode["task"])
        context = self.encoder.encode([task.context(episode["example"], episode["responses"])])[0]
        one_hot = np.zeros(len(HOP_TASKS), dtype=np.float32)
        one_hot[list(HOP_TASKS).index(episode["task"])] = 1.0
        answered = np.zeros(len(self.model_names), dtype=np.float32)
        for hop in episode["hops"]:
            answered[self.model_names.index(hop["model"])] = 1.0
        return {
            "context": np.clip(context, -1.0, 1.0).astype(np.float32),
            "depth": np.array([len(episode["hops"]) / self.config["horizon"]], dtype=np.float32),
            "cost": np.array([self.cost_normalizer(episode["cost"])], dtype=np.float32),
            "task": one_hot,
            "answered": answered,
        }

    def _info(self) -> dict[str, Any]:
        episode = self._episode
        normalized_cost = float(self.cost_normalizer(episode["cost"]))
        score = episode["score"]["value"] if episode["done"] else 0.0
        info: dict[str, Any] = {
            "task": episode["task"],
            "question_id": str(episode["example"].id),
            "index": episode["index"],
            "depth": len(episode["hops"]),
            "models": [hop["model"] for hop in episode["hops"]],
            "hops": [{k: v for k, v in hop.items() if k != "messages"} for hop in episode["hops"]],
            "prompt_tokens": int(sum(hop["prompt_tokens"] for hop in episode["hops"])),
            "completion_tokens": int(sum(hop["completion_tokens"] for hop in episode["hops"])),
            "cost": float(episode["cost"]),
            "normalized_cost": normalized_cost,
            "lam": self.lam,
            "perf": float(score),
            "reward_parts": {"score": float(score), "cost_penalty": 0.0 - self.lam * normalized_cost},
            "reward_vector": np.array([score, -normalized_cost], dtype=np.float64),
            "done": bool(episode["done"]),
        }
        if episode["done"]:
            info["answer"] = episode["score"]["answer"]
            info.update(episode["score"]["details"])
        if self.config["record_text"]:
            task = get_task(episode["task"])
            info["text"] = {
                "question": task.question(episode["example"]),
                "responses": list(episode["responses"]),
                "messages": [copy.deepcopy(hop.get("messages")) for hop in episode["hops"]],
            }
        return info

    def render(self):
        if self.render_mode != "ansi":
            return None
        if self._episode is None:
            return ""
        episode = self._episode
        lines = [f"[{episode['task']}] {get_task(episode['task']).question(episode['example'])}"]
        for hop, response in zip(episode["hops"], episode["responses"]):
            lines.append(f"--- hop {len(lines)}: {hop['model']} ---\n{response}")
        if episode["done"]:
            lines.append(f"score {episode['score']['value']} (answer {episode['score']['answer']!r})")
        return "\n".join(lines)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_pool=None, _encoder=None, _sandbox=None)
        return state

    @property
    def episode_over(self) -> bool:
        return self._episode is None or self._episode["done"]


def _is_integral(action) -> bool:
    try:
        value = np.asarray(action)
    except Exception:  # noqa: BLE001 - anything numpy cannot read is not an action
        return False
    return value.shape == () and np.issubdtype(value.dtype, np.integer)

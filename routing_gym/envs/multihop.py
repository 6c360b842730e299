"""HierRouter's multi-hop routing MDP, live: each hop one model of the pool improves the answer."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from gymnasium import spaces

from routing_gym.data.splits import DEFAULT_FRACTIONS
from routing_gym.engine import Move, Outcome
from routing_gym.envs.features import check_features, scaled_log_length
from routing_gym.envs.live_base import RoutingEnvBase
from routing_gym.llm.spec import DEFAULT_POOL, resolve_spec
from routing_gym.protocols.base import EpisodeProtocol
from routing_gym.protocols.multihop import MultiHopProtocol
from routing_gym.retrieval.encoder import EMBEDDING_DIM
from routing_gym.tasks import HOP_TASKS, LoadOptions, get_task

#: The default pool of the multi-hop envs; change it here and every multi-hop ID follows.
MULTIHOP_POOL: tuple[str, ...] = tuple(DEFAULT_POOL)
#: Config keys the protocol reads (``MultiHopProtocol.default_config``).
PROTOCOL_KEYS = ("horizon", "temperature", "max_new_tokens", "response_chars", "sandbox")
#: Config keys of a task's data set beyond its split.
TASK_EXTRAS = ("math_source", "mmlu_subjects", "humaneval_path", "mbpp_variant")

#: The multi-hop envs' default ``features``: the observation they always had.
MULTIHOP_FEATURES: tuple[str, ...] = ("embedding", "task")
#: Question lengths (characters) that the ``length`` feature maps to 0 and 1, in log1p units:
#: fixed, not fitted, so the live env and every hop tree scale a question alike.
QUESTION_CHARS_RANGE: tuple[int, int] = (16, 8192)


def hop_observation_space(num_models: int, features=MULTIHOP_FEATURES) -> spaces.Dict:
    """HierRouter's state as an observation: context embedding, depth, cost, who answered, and
    the ``task`` one-hot and question ``length`` where ``features`` names them."""
    return spaces.Dict(
        {
            "context": spaces.Box(-1.0, 1.0, (EMBEDDING_DIM,), np.float32),
            "depth": spaces.Box(0.0, 1.0, (1,), np.float32),
            "cost": spaces.Box(0.0, 1.0, (1,), np.float32),
            **({"task": spaces.Box(0.0, 1.0, (len(HOP_TASKS),), np.float32)} if "task" in features else {}),
            "answered": spaces.Box(0.0, 1.0, (num_models,), np.float32),
            **({"length": spaces.Box(0.0, 1.0, (1,), np.float32)} if "length" in features else {}),
        }
    )


def hop_features(task: str, question_chars: int | None, features, source: str) -> dict[str, np.ndarray]:
    """The ``task`` one-hot (over ``HOP_TASKS``) and ``length`` entries the features name."""
    out = {}
    if "task" in features:
        one_hot = np.zeros(len(HOP_TASKS), dtype=np.float32)
        one_hot[list(HOP_TASKS).index(task)] = 1.0
        out["task"] = one_hot
    if "length" in features:
        if question_chars is None:
            raise ValueError(f"{source} has no question length ('question_chars'): the 'length' feature "
                             "needs a tree built with it; rebuild the tree or leave 'length' out of features.")
        low, high = (float(np.log1p(c)) for c in QUESTION_CHARS_RANGE)
        out["length"] = scaled_log_length(np.array([question_chars]), low, high)[0]
    return out


class MultiHopEnv(RoutingEnvBase):
    """
    ## Description
    HierRouter's pipeline as an MDP. A query of one of six tasks (GSM8K, MATH, MBPP,
    ARC-Challenge, MMLU, HumanEval) is answered in up to ``horizon`` hops
    (``MultiHopProtocol``, played by the episode engine like the Teacher–Student envs). At each hop the
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
    (1 for each model that has already answered). ``features`` (default ``["embedding",
    "task"]``, the observation above) may drop ``"task"`` or add ``"length"``: ``Box(0, 1, (1,))``,
    ``log1p`` of the question's length in characters (the task's question text, as the first hop
    reads it) min-max scaled over ``QUESTION_CHARS_RANGE`` = 16 to 8,192 characters, clipped.

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
    ``config`` (merged over ``default_config()``): ``models``, ``tasks`` (each named once:
    a repeated task raises ``ValueError``), ``horizon``,
    ``lam`` (number or regime name), ``split`` ("train", "valid", "test"; ``splits`` overrides
    it per task), ``fractions`` (id-hash splits), ``data_dir``, ``limit`` (per task),
    ``temperature``, ``max_new_tokens`` (None: each task's own), ``response_chars`` (how much
    of each earlier response the next hop sees), ``cache_path``/``cache_mode``,
    ``cost_bounds`` (None, or finite ``{"low": x, "high": y}`` with x <= y), ``per_step_cost``, ``record_text`` (prompts and responses in ``info``),
    ``sandbox`` (``SandboxLimits`` fields), ``features`` (construction only) and task extras (``math_source``,
    ``mmlu_subjects``, ``humaneval_path``, ``mbpp_variant``).

    ## Registered Configurations
    * ``LLMRouting-MultiHop-<Task>-v0`` for GSM8K, MATH, MBPP, ARC, MMLU, HumanEval.
    * ``LLMRouting-MultiHop-v0``: all six tasks mixed.

    ## Version History
    * v0: initial release; ``features`` added later (its default observes as before).
    """

    structural_keys = ("models", "features")
    data_keys = ("tasks", "split", "splits", "fractions", "data_dir", "limit", *TASK_EXTRAS)

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **overrides):
        super().__init__(config, render_mode, **overrides)
        self.stop_action = len(self.model_names)
        self.action_space = spaces.Discrete(len(self.model_names) + 1)
        self.observation_space = hop_observation_space(len(self.model_names), self.config["features"])

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            **super().default_config(),
            "models": list(MULTIHOP_POOL),
            "tasks": list(HOP_TASKS),
            "split": "test",
            "splits": {},
            "fractions": dict(DEFAULT_FRACTIONS),
            **MultiHopProtocol.default_config(),
            "math_source": "math500",
            "mmlu_subjects": None,
            "humaneval_path": None,
            "mbpp_variant": "full",
            "features": list(MULTIHOP_FEATURES),
        }

    def validate_config(self, config: dict[str, Any]) -> None:
        config["features"] = list(check_features(config["features"]))
        tasks = config["tasks"]
        if not tasks or isinstance(tasks, str) or not isinstance(tasks, (list, tuple)):
            raise ValueError(f"config['tasks'] must be a non-empty list of task names, got {tasks!r}.")
        if not isinstance(config["splits"], dict):
            raise ValueError(f"config['splits'] must be a dict of task -> split, got {config['splits']!r}.")
        for task in [*tasks, *config["splits"]]:
            get_task(task)
        repeated = sorted({task for task in tasks if list(tasks).count(task) > 1})
        if repeated:
            # asking every query of a task twice would weigh it double in every mean
            raise ValueError(f"config['tasks'] names {repeated[0]!r} more than once; list each task once.")

    def make_protocol(self, config: dict[str, Any]) -> EpisodeProtocol:
        return MultiHopProtocol({key: config[key] for key in PROTOCOL_KEYS})

    def worst_episode_cost(self) -> float:
        completion = max(self.protocol.max_new_tokens(t) for t in self.config["tasks"])
        per_hop = max(resolve_spec(m).price.cost(self.config["cost_norm_prompt_tokens"], completion)
                      for m in self.config["models"])
        return float(per_hop * self.config["horizon"])

    def load_examples(self) -> list[tuple[str, Any]]:
        """(task name, example) pairs of every configured task, task by task in file order."""
        pairs = []
        extra = {key: self.config[key] for key in TASK_EXTRAS}
        for name in self.config["tasks"]:
            options = LoadOptions(split=self.config["splits"].get(name, self.config["split"]),
                                  data_dir=self.config["data_dir"], fractions=self.config["fractions"],
                                  limit=self.config["limit"], extra=extra)
            pairs.extend((name, example) for example in get_task(name).load(options))
        return pairs

    def _no_questions(self) -> str:
        return (f"tasks {self.config['tasks']} have no queries in split {self.config['split']!r} "
                f"(splits={self.config['splits']}).")

    # -- a step: one hop, or STOP ---------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Valid actions: every model, and STOP once a hop has answered."""
        mask = np.ones(self.action_space.n, dtype=bool)
        mask[self.stop_action] = bool(self._state is not None and self._state.turns)
        return mask

    def _move(self, action) -> Move:
        if int(action) == self.stop_action:
            return None
        return self._turn_job(self.model_names[int(action)])

    def finish(self, move: Move, outcome: Outcome):
        cost_before = self._episode_cost
        if move is None:
            self.protocol.stop(self._state)
        else:
            self._episode_cost += outcome.cost
        done = bool(self._state.done)
        return self._observation(), self._reward(cost_before, done), done, False, self._info()

    # -- observation, info ----------------------------------------------------------------------
    def question_chars(self, index: int) -> int:
        """Characters of question ``index``'s text (what the ``length`` feature scales)."""
        task, example = self.examples[index]
        return len(get_task(task).question(example))

    def _observation(self) -> dict[str, np.ndarray]:
        state = self._state
        features = self.config["features"]
        chars = self.question_chars(state.extra["question_index"]) if "length" in features else None
        extra = hop_features(state.extra["task"], chars, features, type(self).__name__)
        answered = np.zeros(len(self.model_names), dtype=np.float32)
        for turn in state.turns:
            answered[self.model_names.index(turn.model)] = 1.0
        return {
            "context": self.encode_contexts([state])[0],
            "depth": np.array([len(state.turns) / self.config["horizon"]], dtype=np.float32),
            "cost": np.array([self.cost_normalizer(self._episode_cost)], dtype=np.float32),
            "answered": answered,
            **extra,
        }

    def _info(self) -> dict[str, Any]:
        state = self._state
        normalized_cost = float(self.cost_normalizer(self._episode_cost))
        score = self.engine.performance(state)
        info: dict[str, Any] = {
            "task": state.extra["task"],
            "question_id": str(state.example.id),
            "index": state.extra["question_index"],
            "depth": len(state.turns),
            "models": [turn.model for turn in state.turns],
            "hops": [{"model": t.model, "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
                      "cost": t.cost} for t in state.turns],
            "prompt_tokens": int(sum(t.prompt_tokens for t in state.turns)),
            "completion_tokens": int(sum(t.completion_tokens for t in state.turns)),
            "cost": float(self._episode_cost),
            "normalized_cost": normalized_cost,
            "lam": self.lam,
            "perf": score,
            "reward_parts": {"score": score, "cost_penalty": 0.0 - self.lam * normalized_cost},
            "reward_vector": np.array([score, -normalized_cost], dtype=np.float64),
            "done": bool(state.done),
        }
        if state.done:
            info["answer"] = state.extra["score"]["answer"]
            info.update(state.extra["score"]["details"])
        if self.config["record_text"]:
            info["text"] = {
                "question": get_task(state.extra["task"]).question(state.example),
                "responses": [turn.text for turn in state.turns],
                "messages": [copy.deepcopy(turn.messages) for turn in state.turns],
            }
        return info

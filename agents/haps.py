"""HAPS: a hierarchical router that assigns a model to each role and writes per-query LoRA for it.

Reference: the HAPS paper (hierarchical LLM routing with a high-level router over model
assignments and a low-level generator of LoRA parameters, trained by SFT then REINFORCE);
prompts, sizes and defaults here are the project's own. It acts on the hybrid envs
``LLMRouting-HotpotQA-HAPS-v0`` / ``LLMRouting-MMLU-HAPS-v0`` (``action_type="hybrid"``).

The algorithm, top to bottom:

* ``HAPSConfig``: every hyperparameter and ablation switch.
* **Routing prompt** (``routing_prompt``): role definitions, the task description, the
  question, the candidate models. A **backbone** (default SmolLM2-135M, any transformers
  causal or encoder model, ``"tiny-llama"`` in tests) embeds it: the masked mean of its last
  hidden state. It is frozen by default (features are cached per prompt) and then it is the
  pool's own loaded model, shared, never modified; ``finetune_backbone=True`` trains a
  separate float32 copy.
* **High level** (``HAPSPolicy.high``): a 2-layer MLP giving a *joint* categorical over the
  M² assignments (one model per role, ``itertools.product`` order, student first). A joint
  categorical is exact for two roles and lets the warm-up learn the table's argmax directly.
* **Low level** (``LoRAGenerator``): one per open model, a 2-layer MLP (256 hidden) on the
  same pooled features, with two linear heads per adapted layer giving A (out × r) and B
  (r × in) through ``tanh``, i.e. exactly the env's ``Box(-1, 1)`` layout. The training
  adapters are built from the very same numbers as the env does (× ``lora_scale``, α =
  ``lora_alpha``), so the episode the env plays and the log-likelihood being trained agree
  bit for bit. A's head starts at zero (as in LoRA), so the untrained low level leaves the
  models unchanged.
* **Warm-up** (``fit``): cross-entropy of the high level against the per-question best
  assignment of an exhaustive ``ActionTable``; ``ties`` says how equal-reward assignments
  become a target ("cheapest", "first", or "soft": uniform over the tied ones).
* **Joint phase** (``train_joint``): per update, play ``episodes_per_update`` episodes
  through the env (sampling: the protocol's ``temperature`` > 0, ``record_text=True``;
  with ``rollout_envs`` > 1 in that many copies of the env, in lockstep, each model
  answering one batch per round of turns),
  then REINFORCE on ``(R − b) · (log π(assignment) + Σ log p(tokens | LoRA))``: the tokens'
  log-probabilities come from ``episode_logprob`` with adapters made by the generators, so
  gradients reach them. ``R`` is HAPS's shaping (F1 if F1 > 0 else −1) minus λ·normalized
  cost (the paper's appendix F), ``b`` an optional moving average. The update recomputes
  each episode's graph and backpropagates it alone, so memory stays at one episode.
* **Early stopping** on a validation env; ``save`` / ``load`` write state dicts and a JSON config.

Ablations (config fields): ``router="random"`` / ``"fixed"`` (no high-level router),
``use_lora=False`` (no low-level router), ``share_backbone=False`` (the high level reads a
frozen backbone and the generators a separate fine-tuned copy), ``lora_layers`` k ∈ {1, 2,
4, "all"} (set the env's ``lora_layers`` to match: ``haps_env_config`` does).

Acting: the observation holds only an embedding, so the agent reads the question itself.
``predict_episode(question)`` gives the env action for a question; ``predict(obs)`` serves
the env bound by ``adapt_to(env)`` (``agents.evaluation.evaluate_agent`` calls it) and
reads the current episode's question from it, or takes ``question=`` explicitly.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from agents.base import Agent, all_assignments, check_lam, make_config, match_models
from routing_gym.records import content_digest, json_digest
from routing_gym.cost import REGIMES, routing_reward
from routing_gym.errors import CheckpointError
from routing_gym.llm.lora import LoRAAdapter
from routing_gym.protocols.base import ROLES
from routing_gym.routers import TRAIN_PER_REGIME, TrainingRun

ROUTERS = ("learned", "random", "fixed")
TIES = ("cheapest", "first", "soft")
SHAPINGS = ("haps", "none")
BASELINES = ("ema", "none")
TOKEN_REDUCTIONS = ("sum", "mean")
SAVE_FORMAT = 1

ROLE_DEFINITIONS = (
    "Roles: the Student reasons step by step, gathers evidence and proposes the answer; "
    "the Teacher reviews each Student step and answers Continue or Rethink with a reason."
)
TASK_DESCRIPTIONS = {
    "hotpotqa": "Task: multi-hop question answering; the Student may search the question's "
    "ten Wikipedia paragraphs before it answers with a short span.",
    "mmlu": "Task: a four-way multiple-choice exam question; the answer is one letter, A to D.",
}


@dataclass
class HAPSConfig:
    """Every hyperparameter of HAPS: model, ablations, reward, warm-up, joint phase, logging."""

    # -- model
    backbone: str = "smollm2-135m"  # a built-in model name or a transformers folder
    finetune_backbone: bool = False  # False: frozen and shared with the pool; True: a trained copy
    share_backbone: bool = True  # False (needs finetune_backbone): generators get their own copy
    max_prompt_tokens: int = 512  # longer prompts lose their start (role text), never the question
    question_chars: int = 1000
    hidden_size: int = 256  # of the high-level MLP and of every generator
    # -- high level
    router: str = "learned"  # "learned", or the ablations "random" / "fixed" (no high-level router)
    fixed_assignment: list[str] | None = None  # [student model, teacher model] for router="fixed"
    # -- low level
    use_lora: bool = True  # False: the ablation without the low-level router (no adapters)
    lora_rank: int = 8  # must match the env's lora_rank
    lora_layers: int | str = 1  # k: the last k layers, or "all"; must match the env's lora_layers
    zero_init_a: bool = True  # A's head starts at zero: the first adapters change nothing
    # -- reward
    lam: float | str | None = None  # λ of Perf − λ·cost; None follows the env
    shaping: str = "haps"  # "haps": F1 if F1 > 0 else −1; "none": the raw performance
    # -- warm-up (SFT on the action-level table)
    warmup_epochs: int = 30
    warmup_batch_size: int = 16
    warmup_lr: float = 1e-3
    ties: str = "cheapest"  # equal-reward assignments: "cheapest", "first" or "soft"
    # -- joint phase (REINFORCE)
    joint_updates: int = 100
    episodes_per_update: int = 4
    # episodes played together: > 1 plays the joint phase's episodes in copies of the train env
    # stepped in lockstep (routing_gym.vector), one batched model call per round of turns
    rollout_envs: int = 1
    lr: float = 1e-4  # high-level head and generators
    backbone_lr: float = 1e-5  # the fine-tuned backbone, if any
    baseline: str = "ema"  # "ema" (moving average of the reward) or "none"
    baseline_momentum: float = 0.9
    ent_coef: float = 0.0  # entropy bonus of the high level
    max_grad_norm: float = 1.0
    token_logprob: str = "sum"  # "sum" (the episode's log-likelihood) or "mean" over its tokens
    # -- validation and early stopping (joint phase: evaluations; warm-up: epochs)
    eval_every: int = 10  # updates between validation runs
    valid_episodes: int = 20
    patience: int = 3
    # -- misc
    seed: int = 0
    device: str = "auto"  # "auto": cuda when available
    tensorboard_log: str | None = None  # a folder for torch.utils.tensorboard
    progress_bar: bool = True


def haps_env_config(
    config: HAPSConfig, temperature: float | None = 0.7, **env_config
) -> dict[str, Any]:
    """An env config that fits ``config``: hybrid actions, its LoRA rank and depth, recorded calls.

    ``temperature`` (if not None) goes into the protocol settings: training needs sampling.
    """
    protocol = dict(env_config.pop("protocol", {}) or {})
    if temperature is not None:
        protocol["temperature"] = temperature
    return {
        **env_config,
        "action_type": "hybrid",
        "lora_rank": config.lora_rank,
        "lora_layers": config.lora_layers,
        "record_text": True,
        "protocol": protocol,
    }


# ---------------------------------------------------------------------------- the env's layout


@dataclass
class HybridLayout:
    """What the agent must know of a hybrid env: models, LoRA shapes and scaling, the task."""

    models: list[str]
    lora_shapes: dict[str, dict[int, tuple[int, int]]]  # open models only, layers in order
    rank: int
    layers: int | str
    alpha: float
    scale: float
    task: str
    lam: float

    @classmethod
    def from_env(cls, env: gym.Env) -> "HybridLayout":
        """Read the layout of a hybrid env (raises ValueError for any other env)."""
        base = env.unwrapped
        config = getattr(base, "config", {})
        if config.get("action_type") != "hybrid":
            raise ValueError(
                "HAPS acts on hybrid envs (action_type='hybrid', LLMRouting-HotpotQA-HAPS-v0...); "
                f"{type(base).__name__} has action_type={config.get('action_type')!r}."
            )
        return cls(
            models=list(base.model_names),
            lora_shapes={
                m: {int(k): tuple(v) for k, v in s.items()} for m, s in base.lora_shapes.items()
            },
            rank=int(config["lora_rank"]),
            layers=config["lora_layers"],
            alpha=float(config["lora_alpha"]),
            scale=float(config["lora_scale"]),
            task=str(base.protocol_name),
            lam=float(base.lam),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lora_shapes"] = {
            m: {str(k): list(v) for k, v in s.items()} for m, s in self.lora_shapes.items()
        }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HybridLayout":
        data = dict(data)
        data["lora_shapes"] = {
            m: {int(k): tuple(v) for k, v in s.items()} for m, s in data["lora_shapes"].items()
        }
        return cls(**data)

    def vector_size(self, model: str) -> int:
        """Length of ``model``'s flat LoRA vector in the env's action."""
        return sum(
            out * self.rank + self.rank * inp for out, inp in self.lora_shapes[model].values()
        )


# ---------------------------------------------------------------------------- routing prompt


def example_text(example: Any, question_chars: int = 1000) -> str:
    """The question of a data-set example (with its choices, if any), or a plain string."""
    if isinstance(example, str):
        text = example
    else:
        text = str(getattr(example, "question", ""))
        choices = getattr(example, "choices", None)
        if choices:
            text += " " + " ".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
    text = " ".join(text.split())
    return text[:question_chars]


def routing_prompt(question: str, models: Sequence[str], task: str) -> str:
    """The four parts the backbone reads: role definitions, task, question, candidate models."""
    description = TASK_DESCRIPTIONS.get(task, f"Task: {task}.")
    return "\n".join(
        (
            ROLE_DEFINITIONS,
            description,
            f"Question: {question}",
            "Candidate models: " + ", ".join(models) + ".",
        )
    )


def current_example(env: Any) -> list[Any]:
    """The example of each env's current episode (one per env of a VecEnv).

    The observation holds only an embedding and ``info["question"]`` is opt-in, so the agent
    reads the episode state of the env it is bound to.
    """
    if hasattr(env, "get_attr") and hasattr(env, "num_envs"):  # a VecEnv
        return list(env.get_attr("current_example"))
    return [env.unwrapped.current_example]


# ---------------------------------------------------------------------------- backbone


class PromptEncoder:
    """A transformers model that embeds texts: the masked mean of its last hidden state.

    Not an ``nn.Module`` on purpose: a frozen backbone is the pool's shared model and must
    stay out of the agent's parameters and state dicts.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        max_tokens: int,
        trainable: bool,
        device: torch.device,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.trainable = trainable
        self.device = device
        self.dim = int(model.get_input_embeddings().embedding_dim)
        self._cache: dict[str, torch.Tensor] = {}

    @classmethod
    def load(
        cls, source: str, max_tokens: int, trainable: bool, device: torch.device
    ) -> "PromptEncoder":
        """A built-in model name (the pool's loaded copy) or a transformers folder."""
        from routing_gym.llm.spec import BUILTIN_SPECS

        if source in BUILTIN_SPECS:
            from routing_gym.llm.pool import LLMPool

            model, tokenizer = LLMPool([source]).white_box_model(source)
        elif Path(source).is_dir():
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModel.from_pretrained(source)
        else:
            raise ValueError(
                f"HAPSConfig key 'backbone': {source!r} is neither a built-in model "
                f"({sorted(BUILTIN_SPECS)}) nor a transformers folder."
            )
        if trainable:
            # The pool's model is shared by every env in the process: train a copy, in float32.
            model = copy.deepcopy(model).float().to(device)
            model.requires_grad_(True)
        return cls(model, tokenizer, max_tokens, trainable, device)

    def copy_trainable(self) -> "PromptEncoder":
        """A separate trainable copy (the generators' backbone when parameters are not shared)."""
        model = copy.deepcopy(self.model).float().to(self.device).requires_grad_(True)
        return PromptEncoder(model, self.tokenizer, self.max_tokens, True, self.device)

    def _batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        # Keep the end: the question and the candidate models come last.
        ids = [row[-self.max_tokens :] for row in ids]
        width = max(len(row) for row in ids)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):  # right padding: causal attention never sees the pads
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return input_ids, mask

    def _forward(self, texts: Sequence[str]) -> torch.Tensor:
        input_ids, mask = self._batch(texts)
        model_device = next(self.model.parameters()).device
        input_ids, mask = input_ids.to(model_device), mask.to(model_device)
        base = getattr(self.model, "base_model", self.model)  # skip a causal LM's vocabulary head
        hidden = base(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return ((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)).to(self.device)

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        """``(n, dim)`` features: frozen ones cached per text, trainable ones with gradients."""
        if self.trainable:
            return torch.cat(
                [self._forward(texts[s : s + batch_size]) for s in range(0, len(texts), batch_size)]
            )
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        with torch.no_grad():
            for start in range(0, len(missing), batch_size):
                chunk = missing[start : start + batch_size]
                for text, row in zip(chunk, self._forward(chunk)):
                    self._cache[text] = row.detach()
        return torch.stack([self._cache[t] for t in texts])


# ---------------------------------------------------------------------------- networks


def mlp(inp: int, hidden: int, out: int | None = None) -> nn.Sequential:
    """Two hidden layers of ``hidden`` units (GELU), then an optional linear output."""
    layers: list[nn.Module] = [
        nn.Linear(inp, hidden),
        nn.GELU(),
        nn.Linear(hidden, hidden),
        nn.GELU(),
    ]
    if out is not None:
        layers.append(nn.Linear(hidden, out))
    return nn.Sequential(*layers)


class LoRAGenerator(nn.Module):
    """One open model's low level: features → flat [-1, 1] vector of every layer's (A, B)."""

    def __init__(
        self,
        features: int,
        hidden: int,
        shapes: Mapping[int, tuple[int, int]],
        rank: int,
        zero_a: bool,
    ):
        super().__init__()
        self.layers = list(shapes)
        self.shapes = {layer: tuple(shapes[layer]) for layer in self.layers}
        self.rank = rank
        self.trunk = mlp(features, hidden)
        self.a_heads = nn.ModuleList(
            nn.Linear(hidden, out * rank) for out, _ in self.shapes.values()
        )
        self.b_heads = nn.ModuleList(
            nn.Linear(hidden, rank * inp) for _, inp in self.shapes.values()
        )
        if zero_a:
            for head in self.a_heads:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(b, size)`` in the env's layout: per layer, A row-major then B row-major."""
        h = self.trunk(features)
        parts = []
        for a_head, b_head in zip(self.a_heads, self.b_heads):
            parts += [a_head(h), b_head(h)]
        return torch.tanh(torch.cat(parts, dim=-1))

    def adapter(self, flat: torch.Tensor, alpha: float, scale: float, model: str) -> LoRAAdapter:
        """The adapter the env builds from this vector (``adapters_from_action``), with grads."""
        factors, offset = {}, 0
        for layer, (out, inp) in self.shapes.items():
            a = flat[offset : offset + out * self.rank].reshape(out, self.rank)
            offset += out * self.rank
            b = flat[offset : offset + self.rank * inp].reshape(self.rank, inp)
            offset += self.rank * inp
            factors[layer] = (a * scale, b * scale)
        return LoRAAdapter(factors, alpha=alpha, model=model)


class HAPSPolicy(nn.Module):
    """The trained parts: the high-level head and one LoRA generator per open model."""

    def __init__(self, features: int, layout: HybridLayout, config: HAPSConfig):
        super().__init__()
        self.high = mlp(features, config.hidden_size, len(layout.models) ** len(ROLES))
        self.open_models = list(layout.lora_shapes) if config.use_lora else []
        # A list, not a ModuleDict: model names may hold characters module names cannot.
        self.generators = nn.ModuleList(
            LoRAGenerator(
                features, config.hidden_size, layout.lora_shapes[m], layout.rank, config.zero_init_a
            )
            for m in self.open_models
        )

    def generator(self, model: str) -> LoRAGenerator | None:
        """The generator of ``model`` (None for a closed model or without LoRA)."""
        return self.generators[self.open_models.index(model)] if model in self.open_models else None


@dataclass
class Episode:
    """One played episode: what was chosen, what it earned, and its calls (for the update)."""

    prompt: str
    arm: int
    perf: float
    normalized_cost: float
    env_reward: float
    reward: float  # shaped: what REINFORCE maximizes
    calls: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # the env's final info


def haps_reward(perf: float, normalized_cost: float, lam: float, shaping: str = "haps") -> float:
    """HAPS's reward: (F1 if F1 > 0 else −1) − λ·normalized cost; "none" keeps the raw F1."""
    gain = perf if shaping == "none" or perf > 0 else -1.0
    return routing_reward(gain, normalized_cost, lam)


def warmup_targets(
    rewards: np.ndarray, costs: np.ndarray | None = None, ties: str = "cheapest"
) -> np.ndarray:
    """``(n, K)`` targets: the best assignment of each row, ties broken per ``ties``."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}.")
    rewards = np.asarray(rewards, dtype=np.float64)
    best = np.isclose(rewards, rewards.max(axis=1, keepdims=True), rtol=0.0, atol=1e-9)
    targets = np.zeros_like(rewards)
    for i, tied in enumerate(best):
        candidates = np.flatnonzero(tied)
        if ties == "soft":
            targets[i, candidates] = 1.0 / len(candidates)
        elif ties == "cheapest" and costs is not None:
            # the first of the cheapest: stable when costs tie too
            targets[i, candidates[np.argmin(np.asarray(costs)[i, candidates])]] = 1.0
        else:
            targets[i, candidates[0]] = 1.0
    return targets


def table_arrays(
    table: Any,
    env: gym.Env,
    lam: float,
    shaping: str = "haps",
    models: Sequence[str] | None = None,
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Examples, shaped rewards ``(n, M²)`` and normalized costs of an ``ActionTable``'s questions.

    Columns follow ``all_assignments(M)`` over ``models`` (default: the env's, in its order);
    costs are normalized with the env's frozen normalizer, so the rewards are the env's (before
    shaping).
    """
    base = env.unwrapped
    names = list(models) if models is not None else list(base.model_names)
    table.check_built_for(base, names)
    outcomes = table.outcomes(names, base.cost_normalizer, arms=all_assignments(len(names), len(base.roles)))
    examples = {str(e.id): e for e in base.examples}
    missing = [q for q in outcomes.question_ids if q not in examples]
    if missing:
        raise ValueError(
            f"ActionTable question {missing[0]!r} is not in the env's split; "
            "build the env on the table's split."
        )
    shaped = np.vectorize(lambda p, c: haps_reward(p, c, lam, shaping), otypes=[np.float64])
    rewards = shaped(outcomes.perf, outcomes.cost)
    return [examples[q] for q in outcomes.question_ids], rewards, outcomes.cost


# ---------------------------------------------------------------------------- the agent


class _EarlyStopping:
    """Keeps the best-scoring weights and says when ``patience`` checks brought no gain."""

    def __init__(self, agent: "HAPSAgent", patience: int):
        self.agent, self.patience = agent, patience
        self.best, self.best_state, self.stale = -math.inf, None, 0

    def should_stop(self, score: float) -> bool:
        if score > self.best:
            self.best, self.best_state, self.stale = score, self.agent._state_dicts(), 0
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.agent._load_state_dicts(self.best_state)


def _env_identity(env: gym.Env | None) -> dict[str, Any] | None:
    """What an env contributes to a run: its ID, its config without paths, its questions' content."""
    if env is None:
        return None
    base = env.unwrapped
    config = {k: v for k, v in base.config.items() if k not in ("cache_path", "cache_mode", "data_dir")}
    questions = hashlib.sha256("".join(content_digest(e) for e in base.examples).encode()).hexdigest()
    return {"id": env.spec.id if env.spec else type(base).__name__, "config": config, "questions": questions}


def run_fingerprint(
    agent: "HAPSAgent",
    env: gym.Env,
    valid_env: gym.Env | None,
    updates: int,
    action_table: Any | None = None,
    valid_table: Any | None = None,
) -> str:
    """sha256 of everything that decides a training run: a checkpoint of another run is refused.

    Paths (data folder, response cache) are left out: the same questions and settings are the
    same run wherever their files lie.
    """
    config = dataclasses.asdict(agent.config)
    for key in ("progress_bar", "tensorboard_log", "device"):
        config.pop(key)
    tables = [None if t is None else content_digest(t.rows) for t in (action_table, valid_table)]
    content = {"config": config, "updates": updates, "train": _env_identity(env),
               "valid": _env_identity(valid_env), "tables": tables}
    return json_digest(content)


class JointCheckpoint:
    """The joint phase's state after every update, so a stopped run resumes where it stopped.

    One ``torch.save`` file, replaced atomically (a kill leaves the previous one whole). It holds
    the weights, the optimizer, the baseline, early stopping's best weights and the next update;
    the joint phase's episodes are a function of the seed and the update index, so the resumed
    run plays exactly the episodes the uninterrupted one would have played.
    """

    FORMAT = "routing_gym.haps_joint_checkpoint/1"

    def __init__(self, path: str | os.PathLike, fingerprint: str):
        self.path, self.fingerprint = Path(path), fingerprint

    def load(self) -> dict[str, Any] | None:
        """The saved state, None when there is no file; another run's file is an error."""
        if not self.path.exists():
            return None
        try:
            data = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line error
            raise ValueError(f"{self.path} is not a readable HAPS checkpoint ({type(exc).__name__}); "
                             "delete it to start over.") from None
        if not isinstance(data, dict) or data.get("format") != self.FORMAT:
            raise ValueError(f"{self.path} is not a HAPS joint checkpoint; delete it to start over.")
        if data["fingerprint"] != self.fingerprint:
            raise ValueError(f"{self.path} is the checkpoint of another run (other settings, questions "
                             "or warm-up table); delete it or choose another path.")
        return data

    def save(self, agent: "HAPSAgent", next_update: int, stopper: "_EarlyStopping", finished: bool) -> None:
        """Write the state; a finished run keeps only its final weights (a fine-tuned backbone
        with Adam's moments and early stopping's copy would be four times the size)."""
        data = {
            "format": self.FORMAT, "fingerprint": self.fingerprint, "next_update": next_update,
            "finished": finished, "state": agent._state_dicts(), "baseline": float(agent.baseline),
            "steps": dict(agent._steps),
            "stopper": {"best": float(stopper.best), "stale": int(stopper.stale),
                        "best_state": None if finished else stopper.best_state},
        }
        if not finished:
            data["optimizer"] = agent._optimizer().state_dict()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save(data, partial)
        os.replace(partial, self.path)

    @staticmethod
    def restore(data: Mapping[str, Any], agent: "HAPSAgent", stopper: "_EarlyStopping") -> None:
        agent._load_state_dicts(data["state"])
        agent.baseline = float(data["baseline"])
        agent._steps.update(data["steps"])
        stopper.best, stopper.best_state, stopper.stale = (
            float(data["stopper"]["best"]), data["stopper"]["best_state"], int(data["stopper"]["stale"]))
        if not data["finished"]:
            agent._optimizer().load_state_dict(data["optimizer"])


class HAPSAgent(Agent):
    """HAPS: a high-level policy picks a model per role, per-model generators write its LoRA."""

    name = "haps"
    Config = HAPSConfig
    training = TRAIN_PER_REGIME
    checkpoint_suffix = ""  # save() writes a folder

    def __init__(self, config: HAPSConfig | None = None, **overrides):
        self.config = make_config(HAPSConfig, config, overrides)
        self._check_config()
        cfg = self.config
        wanted = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else cfg.device
        self.device = torch.device("cpu" if wanted == "auto" else wanted)
        self.layout: HybridLayout | None = None
        self.policy: HAPSPolicy | None = None
        self.encoder_high: PromptEncoder | None = None  # features of the high level
        # features of the generators: the same object when the backbone is shared
        self.encoder_low: PromptEncoder | None = None
        self.arms: list[tuple[int, ...]] = []
        self._to_env: np.ndarray | None = None  # the bound env's index of each layout model
        self.baseline = 0.0
        self.fixed_arm: int | None = None
        self._env: Any = None
        self._rng = np.random.default_rng(cfg.seed)
        self._writer = None
        self._joint_optimizer: torch.optim.Optimizer | None = None
        self._steps = {"warmup": 0, "joint": 0}
        self.last_warmup: dict[str, float] = {}  # the last warm-up epoch's loss and accuracy
        self._seeded_envs: set[int] = set()

    def _check_config(self) -> None:
        cfg = self.config
        for key, allowed in (
            ("router", ROUTERS),
            ("ties", TIES),
            ("shaping", SHAPINGS),
            ("baseline", BASELINES),
            ("token_logprob", TOKEN_REDUCTIONS),
        ):
            if getattr(cfg, key) not in allowed:
                raise ValueError(
                    f"HAPSConfig key {key!r} must be one of {allowed}, got {getattr(cfg, key)!r}."
                )
        check_lam(cfg.lam)
        k = cfg.lora_layers
        if not (k == "all" or (isinstance(k, int) and not isinstance(k, bool) and k >= 1)):
            raise ValueError(
                f"HAPSConfig key 'lora_layers' must be a positive int or 'all', got {k!r}."
            )
        for key in (
            "lora_rank",
            "hidden_size",
            "max_prompt_tokens",
            "question_chars",
            "warmup_batch_size",
            "episodes_per_update",
            "rollout_envs",
            "eval_every",
            "valid_episodes",
            "patience",
        ):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"HAPSConfig key {key!r} must be an int >= 1, got {value!r}.")
        if cfg.episodes_per_update % cfg.rollout_envs:
            # every lockstep round plays rollout_envs episodes; a remainder would be played for nothing
            raise ValueError(
                f"HAPSConfig key 'rollout_envs' ({cfg.rollout_envs}) must divide 'episodes_per_update' "
                f"({cfg.episodes_per_update})."
            )
        for key in ("warmup_epochs", "joint_updates"):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"HAPSConfig key {key!r} must be an int >= 0, got {value!r}.")
        if not 0.0 <= cfg.baseline_momentum < 1.0:
            raise ValueError(
                "HAPSConfig key 'baseline_momentum' must be in [0, 1), "
                f"got {cfg.baseline_momentum!r}."
            )
        if cfg.router == "fixed" and (
            cfg.fixed_assignment is None or len(cfg.fixed_assignment) != len(ROLES)
        ):
            raise ValueError(
                f"HAPSConfig key 'fixed_assignment' must name one model per role {ROLES} "
                "for router='fixed', "
                f"got {cfg.fixed_assignment!r}."
            )
        if not cfg.share_backbone and not cfg.finetune_backbone:
            raise ValueError(
                "HAPSConfig key 'share_backbone': False gives the generators their own fine-tuned "
                "backbone copy, so it needs finetune_backbone=True (a frozen backbone is the same "
                "either way)."
            )

    # -- λ and the env ------------------------------------------------------------------------
    @property
    def lam(self) -> float:
        """λ of the reward: the config's, else the bound env's, else "balanced"."""
        fixed = check_lam(self.config.lam)
        if fixed is not None:
            return fixed
        return self.layout.lam if self.layout is not None else REGIMES["balanced"]

    def adapt_to(self, env: Any) -> None:
        """Bind ``env`` (``predict`` reads its question) and build the networks for its layout."""
        is_vec = hasattr(env, "get_attr") and hasattr(env, "num_envs")
        layout = HybridLayout.from_env(env.get_attr("unwrapped", indices=0)[0] if is_vec else env)
        cfg = self.config
        if layout.rank != cfg.lora_rank or layout.layers != cfg.lora_layers:
            raise ValueError(
                f"HAPSConfig keys 'lora_rank'/'lora_layers' ({cfg.lora_rank}, {cfg.lora_layers!r}) "
                f"differ from the env's ({layout.rank}, {layout.layers!r}); "
                "make the env with haps_env_config(config)."
            )
        if self.layout is None:
            self._build(layout)
        else:
            # the same models in another order are matched by name; a missing one is refused
            self._to_env = match_models(
                "HAPS", self.layout.models, layout.models, allow_extra=False
            )
            mine = (self.layout.lora_shapes, self.layout.alpha, self.layout.scale)
            if mine != (layout.lora_shapes, layout.alpha, layout.scale):
                raise ValueError(
                    f"HAPS was built for LoRA shapes {self.layout.lora_shapes} "
                    f"(alpha {self.layout.alpha}, scale {self.layout.scale}); the env differs."
                )
            self.layout.lam, self.layout.task = layout.lam, layout.task
        self._env = env

    def _build(self, layout: HybridLayout) -> None:
        """Backbone(s), policy and arms for ``layout``."""
        cfg = self.config
        self.layout = layout
        self.arms = all_assignments(len(layout.models), len(ROLES))
        self._to_env = None
        shared = PromptEncoder.load(
            cfg.backbone,
            cfg.max_prompt_tokens,
            cfg.finetune_backbone and cfg.share_backbone,
            self.device,
        )
        self.encoder_high = shared
        self.encoder_low = shared if cfg.share_backbone else shared.copy_trainable()
        torch.manual_seed(cfg.seed)
        self.policy = HAPSPolicy(shared.dim, layout, cfg).to(self.device)
        self.fixed_arm = None
        if cfg.router == "fixed":
            unknown = [m for m in cfg.fixed_assignment if m not in layout.models]
            if unknown:
                raise ValueError(
                    f"HAPSConfig key 'fixed_assignment': {unknown[0]!r} is not in the env's "
                    f"pool {layout.models}."
                )
            self.fixed_arm = self.arms.index(
                tuple(layout.models.index(m) for m in cfg.fixed_assignment)
            )

    def _require_built(self) -> None:
        if self.policy is None:
            raise RuntimeError(
                "HAPS has no env layout yet: call adapt_to(env), fit_env(env) or load(path) first."
            )

    # -- the two levels -----------------------------------------------------------------------
    def prompt_for(self, example: Any) -> str:
        """The routing prompt of a question (an example or a string)."""
        self._require_built()
        question = example_text(example, self.config.question_chars)
        return routing_prompt(question, self.layout.models, self.layout.task)

    def _features(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        high = self.encoder_high.encode(prompts)
        low = high if self.encoder_low is self.encoder_high else self.encoder_low.encode(prompts)
        return high, low

    def assignment_logits(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(b, M²)`` logits of the high level (no gradient)."""
        self._require_built()
        with torch.no_grad():
            return self.policy.high(self._features(prompts)[0])

    def _choose(self, logits: torch.Tensor, deterministic: bool) -> int:
        if self.config.router == "fixed":
            return self.fixed_arm
        if self.config.router == "random":
            return int(self._rng.integers(len(self.arms)))
        if deterministic:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        return int(self._rng.choice(len(probs), p=probs / probs.sum()))

    def _action(self, arm: int, low_features: torch.Tensor) -> dict[str, Any]:
        """The env's Dict action: the arm's models, LoRA for the open ones, zeros elsewhere."""
        layout = self.layout
        lora = {m: np.zeros(layout.vector_size(m), dtype=np.float32) for m in layout.lora_shapes}
        for model in {layout.models[i] for i in self.arms[arm]}:
            generator = self.policy.generator(model)
            if generator is not None:
                lora[model] = (
                    generator(low_features[None])[0].detach().cpu().numpy().astype(np.float32)
                )
        assignment = np.array(self.arms[arm], dtype=np.int64)
        if self._to_env is not None:  # the bound env orders the models differently
            assignment = self._to_env[assignment]
        return {"assignment": assignment, "lora": lora}

    def predict_episode(self, question: Any, deterministic: bool = True) -> dict[str, Any]:
        """The env action for one question (text or example): an assignment and its LoRA vectors."""
        self._require_built()
        prompt = self.prompt_for(question)
        with torch.no_grad():
            high, low = self._features([prompt])
            logits = self.policy.high(high)[0]
            return self._action(self._choose(logits, deterministic), low[0])

    def predict(
        self,
        observation: Mapping[str, np.ndarray],
        state: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        question: Any | Sequence[Any] | None = None,
    ) -> tuple[dict[str, Any] | list[dict[str, Any]], np.ndarray | None]:
        """SB3-style: the Dict action for the bound env's current question (or ``question=``).

        A batched observation (a VecEnv's) gives a list of actions, one per env.
        """
        self._require_built()
        context = (
            np.asarray(observation["context"])
            if isinstance(observation, Mapping)
            else np.asarray(observation)
        )
        batched = context.ndim == 2
        if question is not None:
            questions = list(question) if batched else [question]
        elif self._env is not None:
            questions = current_example(self._env)
        else:
            raise RuntimeError(
                "HAPS needs the question: bind an env with adapt_to(env) or pass question=."
            )
        if len(questions) != (len(context) if batched else 1):
            raise ValueError(
                f"{len(questions)} questions for an observation batch of "
                f"{len(context) if batched else 1}."
            )
        actions = [self.predict_episode(q, deterministic) for q in questions]
        return (actions if batched else actions[0]), state

    # -- warm-up ------------------------------------------------------------------------------
    def fit(
        self,
        questions: Sequence[Any],
        rewards: np.ndarray,
        costs: np.ndarray | None = None,
        valid: tuple[Sequence[Any], np.ndarray] | None = None,
    ) -> "HAPSAgent":
        """SFT warm-up of the high level: questions, rewards ``(n, M²)`` (and costs, for ties).

        Columns follow ``all_assignments(M)`` (see ``table_arrays``). With ``valid`` =
        (questions, rewards) the epoch whose argmax earns the most there is kept, and training
        stops after ``patience`` epochs without improvement.
        """
        self._require_built()
        cfg = self.config
        rewards = np.asarray(rewards, dtype=np.float64)
        if rewards.shape != (len(questions), len(self.arms)):
            raise ValueError(
                f"rewards must be (questions, {len(self.arms)} assignments), got {rewards.shape}."
            )
        if cfg.router != "learned":
            return self
        prompts = [self.prompt_for(q) for q in questions]
        targets = torch.tensor(
            warmup_targets(rewards, costs, cfg.ties), dtype=torch.float32, device=self.device
        )
        groups = [{"params": list(self.policy.high.parameters()), "lr": cfg.warmup_lr}]
        if self.encoder_high.trainable:
            groups.append(
                {"params": list(self.encoder_high.model.parameters()), "lr": cfg.backbone_lr}
            )
        params = [p for group in groups for p in group["params"]]
        optimizer = torch.optim.Adam(groups)
        stopper, stats = _EarlyStopping(self, cfg.patience), {}
        generator = torch.Generator().manual_seed(cfg.seed)
        bar = tqdm(range(cfg.warmup_epochs), desc="HAPS warm-up", disable=not cfg.progress_bar)
        for epoch in bar:
            order = torch.randperm(len(prompts), generator=generator).tolist()
            total = 0.0
            for start in range(0, len(order), cfg.warmup_batch_size):
                rows = order[start : start + cfg.warmup_batch_size]
                logits = self.policy.high(self.encoder_high.encode([prompts[i] for i in rows]))
                loss = nn.functional.cross_entropy(logits, targets[rows])
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                total += float(loss.detach()) * len(rows)
            stats = {
                "loss": total / len(prompts),
                "accuracy": self._table_accuracy(prompts, targets),
            }
            if valid is not None:
                stats["valid_reward"] = self.table_reward(*valid)
            self._log("warmup", stats)
            bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
            if valid is not None and stopper.should_stop(stats["valid_reward"]):
                break
        stopper.restore_best()
        self.last_warmup = stats
        return self

    def _table_accuracy(self, prompts: list[str], targets: torch.Tensor) -> float:
        """Share of questions whose argmax assignment has target mass (one of the best)."""
        chosen = self.assignment_logits(prompts).argmax(dim=1)
        return float((targets[torch.arange(len(prompts)), chosen] > 0).float().mean())

    def table_reward(self, questions: Sequence[Any], rewards: np.ndarray) -> float:
        """Mean reward of the high level's argmax assignments on table rows."""
        chosen = (
            self.assignment_logits([self.prompt_for(q) for q in questions])
            .argmax(dim=1)
            .cpu()
            .numpy()
        )
        return float(np.asarray(rewards)[np.arange(len(chosen)), chosen].mean())

    # -- joint phase --------------------------------------------------------------------------
    def batched_env(self, env: gym.Env, n_envs: int):
        """``n_envs`` copies of ``env`` (its ID and config) in a ``BatchedRoutingVecEnv``.

        ``rollout`` on it plays ``n_envs`` episodes per round, their turns batched per model.
        Copy ``i`` is seeded with ``config.seed + i``, so each walks its own question order.
        """
        from routing_gym.vector import make_batched_vec_env

        if env.spec is None:
            raise ValueError("Batched rollouts copy the env by its ID: make it with gym.make.")
        config = copy.deepcopy(env.unwrapped.config)
        vec = make_batched_vec_env(env.spec.id, n_envs=n_envs, seed=self.config.seed, env_kwargs={"config": config})
        vec.reset()
        return vec

    def _rollout_batched(self, vec: Any, episodes: int, deterministic: bool) -> list[Episode]:
        """Play rounds of ``vec.num_envs`` episodes in lockstep until ``episodes`` are played."""
        played: list[Episode] = []
        while len(played) < episodes:
            prompts = [self.prompt_for(example) for example in current_example(vec)]
            with torch.no_grad():
                high, low = self._features(prompts)
                logits = self.policy.high(high)
                arms = [self._choose(logits[i], deterministic) for i in range(len(prompts))]
                actions = [self._action(arm, low[i]) for i, arm in enumerate(arms)]
            vec.step_async(actions)
            _, env_rewards, _, infos = vec.step_wait()  # every episode ends; each env resets itself
            played.extend(map(self._played_episode, prompts, arms, env_rewards, infos))
        return played[:episodes]

    def _played_episode(self, prompt: str, arm: int, env_reward: float, info: dict) -> Episode:
        """An episode as the joint phase uses it, from the env's step."""
        perf, cost = float(info["perf"]), float(info["normalized_cost"])
        return Episode(
            prompt=prompt,
            arm=arm,
            perf=perf,
            normalized_cost=cost,
            # formed from the info in float64 (a vec env hands rewards back as float32)
            env_reward=float(routing_reward(perf, cost, info["lam"])) if "lam" in info else float(env_reward),
            reward=haps_reward(perf, cost, self.lam, self.config.shaping),
            calls=list(info.get("calls", [])),
            info=dict(info),
        )

    def rollout(
        self, env: Any, episodes: int, deterministic: bool = False, seed: int | None = None
    ) -> list[Episode]:
        """Play ``episodes`` episodes through ``env`` with the current policy (no gradient).

        ``env`` is one env, or a vector env from ``batched_env`` (its episodes play in lockstep;
        ``seed`` does not apply, its copies were seeded when it was made).
        """
        self._require_built()
        if hasattr(env, "num_envs") and hasattr(env, "step_async"):
            return self._rollout_batched(env, episodes, deterministic)
        played = []
        for i in range(episodes):
            first = id(env) not in self._seeded_envs
            reset_seed = (
                seed if (seed is not None and i == 0) else (self.config.seed if first else None)
            )
            self._seeded_envs.add(id(env))
            env.reset(seed=reset_seed)
            played.append(self._play_current(env, deterministic))
        return played

    def _play_current(self, env: Any, deterministic: bool) -> Episode:
        """Choose the assignment and adapters for the env's current question and play it."""
        prompt = self.prompt_for(current_example(env)[0])
        with torch.no_grad():
            high, low = self._features([prompt])
            arm = self._choose(self.policy.high(high)[0], deterministic)
            action = self._action(arm, low[0])
        _, env_reward, _, _, info = env.step(action)
        return self._played_episode(prompt, arm, env_reward, info)

    def _episode_terms(
        self, episode: Episode, pool: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log π(assignment), the tokens' log-likelihood under the generated LoRA, the entropy."""
        cfg = self.config
        high, low = self._features([episode.prompt])
        zero = torch.zeros((), device=self.device)
        arm_logprob, entropy = zero, zero
        if cfg.router == "learned":
            logp = torch.log_softmax(self.policy.high(high)[0], dim=-1)
            arm_logprob, entropy = logp[episode.arm], -(logp.exp() * logp).sum()
        token_logprob = zero
        adapters = {}
        for model in {self.layout.models[i] for i in self.arms[episode.arm]}:
            generator = self.policy.generator(model)
            if generator is not None:
                adapters[model] = generator.adapter(
                    generator(low)[0], self.layout.alpha, self.layout.scale, model
                )
        if adapters:
            if not episode.calls:
                raise ValueError(
                    "The episode has no recorded calls: make the env with record_text=True."
                )
            token_logprob = pool.episode_logprob(episode.calls, adapters).to(self.device)
            if cfg.token_logprob == "mean":
                tokens = sum(
                    len(c["completion_ids"]) for c in episode.calls if c["model"] in adapters
                )
                token_logprob = token_logprob / max(1, tokens)
        return arm_logprob, token_logprob, entropy

    def _trainable(self) -> list[dict[str, Any]]:
        groups = [{"params": list(self.policy.parameters()), "lr": self.config.lr}]
        backbones = {id(e): e for e in (self.encoder_high, self.encoder_low) if e.trainable}
        for encoder in backbones.values():
            groups.append(
                {"params": list(encoder.model.parameters()), "lr": self.config.backbone_lr}
            )
        return groups

    def joint_loss(
        self, episodes: Sequence[Episode], advantages: Sequence[float], pool: Any
    ) -> float:
        """REINFORCE loss of a batch, no step: −mean adv·(log π + token log-lik) − entropy bonus."""
        with torch.no_grad():
            total = 0.0
            for episode, adv in zip(episodes, advantages):
                arm, tokens, entropy = self._episode_terms(episode, pool)
                total += float(-adv * (arm + tokens) - self.config.ent_coef * entropy)
        return total / len(episodes)

    def update(
        self, episodes: Sequence[Episode], advantages: Sequence[float], pool: Any, optimizer=None
    ) -> dict[str, float]:
        """One gradient step on the REINFORCE loss; each episode is backpropagated alone.

        ``pool`` scores the recorded tokens: the env's ``engine`` or an ``LLMPool`` (anything
        with ``episode_logprob``).
        """
        cfg = self.config
        optimizer = optimizer or self._optimizer()
        optimizer.zero_grad()
        stats = {"loss": 0.0, "arm_logprob": 0.0, "token_logprob": 0.0, "entropy": 0.0}
        for episode, adv in zip(episodes, advantages):
            arm, tokens, entropy = self._episode_terms(episode, pool)
            loss = (-float(adv) * (arm + tokens) - cfg.ent_coef * entropy) / len(episodes)
            if loss.requires_grad:
                loss.backward()
            for key, value in (
                ("loss", loss * len(episodes)),
                ("arm_logprob", arm),
                ("token_logprob", tokens),
                ("entropy", entropy),
            ):
                stats[key] += float(value.detach()) / len(episodes)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        stats["grad_norm"] = float(nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        optimizer.step()
        return stats

    def _optimizer(self) -> torch.optim.Optimizer:
        if self._joint_optimizer is None:
            self._joint_optimizer = torch.optim.Adam(self._trainable())
        return self._joint_optimizer

    def train_joint(
        self,
        env: gym.Env,
        valid_env: gym.Env | None = None,
        updates: int | None = None,
        checkpoint: JointCheckpoint | None = None,
    ) -> "HAPSAgent":
        """REINFORCE on both levels through ``env``; early stopping on ``valid_env``'s reward.

        With ``checkpoint`` the state is saved after every update, and a run that finds its
        own checkpoint resumes after the last saved update (or returns at once if it finished).
        """
        self._require_built()
        cfg = self.config
        base = env.unwrapped
        if not base.records_text:
            raise ValueError(
                "The joint phase reads each episode's calls: make the env with record_text=True."
            )
        if cfg.use_lora and not base.engine.temperature:
            warnings.warn(
                "The env's protocol temperature is 0: the joint phase trains on greedy episodes."
            )
        if cfg.router != "learned" and not self.policy.open_models:
            return self  # a random or fixed router without LoRA has nothing to learn
        stopper = _EarlyStopping(self, cfg.patience)
        total = cfg.joint_updates if updates is None else updates
        first = 0
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None:
            JointCheckpoint.restore(saved, self, stopper)
            if saved["finished"]:
                return self
            first = int(saved["next_update"])
        bar = tqdm(range(first, total), desc="HAPS joint", disable=not cfg.progress_bar, initial=first, total=total)
        rollout_env = self.batched_env(env, cfg.rollout_envs) if cfg.rollout_envs > 1 else env
        stopped = False
        for step in bar:
            episodes = self._training_rollout(rollout_env, step)
            rewards = np.array([e.reward for e in episodes])
            advantages = rewards - (self.baseline if cfg.baseline == "ema" else 0.0)
            stats = self.update(episodes, advantages, base.engine)
            if cfg.baseline == "ema":
                for r in rewards:
                    self.baseline = (
                        cfg.baseline_momentum * self.baseline + (1 - cfg.baseline_momentum) * r
                    )
            stats.update(
                reward=float(rewards.mean()),
                env_reward=float(np.mean([e.env_reward for e in episodes])),
                perf=float(np.mean([e.perf for e in episodes])),
                cost=float(np.mean([e.normalized_cost for e in episodes])),
                baseline=self.baseline,
            )
            for r, role in enumerate(ROLES):
                for m, model in enumerate(self.layout.models):
                    stats[f"share/{role}/{model}"] = float(
                        np.mean([self.arms[e.arm][r] == m for e in episodes])
                    )
            self._log("joint", stats)
            bar.set_postfix(reward=f"{stats['reward']:.3f}", perf=f"{stats['perf']:.3f}")
            if valid_env is not None and (step + 1) % cfg.eval_every == 0:
                score = self.evaluate(valid_env, cfg.valid_episodes)
                self._log("valid", score, step=self._steps["joint"])
                stopped = stopper.should_stop(score["env_reward"])
            if checkpoint is not None and not stopped and step + 1 < total:
                checkpoint.save(self, step + 1, stopper, finished=False)
            if stopped:
                break
        if rollout_env is not env:
            rollout_env.close()
        stopper.restore_best()
        if checkpoint is not None:
            checkpoint.save(self, total, stopper, finished=True)
        return self

    def training_schedule(self, step: int, questions: int) -> list[tuple[int, int]]:
        """(question index, reset seed) of each episode of joint update ``step``.

        Epoch e walks the ``questions`` in the permutation seeded by (seed, e); episode j gets
        the reset seed of (seed, j). A function of the seed and the step alone, so a resumed
        run plays the same episodes as an uninterrupted one.
        """
        per_update = self.config.episodes_per_update
        schedule = []
        for j in range(step * per_update, (step + 1) * per_update):
            epoch, position = divmod(j, questions)
            order = np.random.default_rng([self.config.seed, epoch]).permutation(questions)
            reset_seed = int(np.random.SeedSequence([self.config.seed, j]).generate_state(1)[0] >> 1)
            schedule.append((int(order[position]), reset_seed))
        return schedule

    def _training_rollout(self, env: Any, step: int) -> list[Episode]:
        """The sampled episodes of joint update ``step`` (see ``training_schedule``)."""
        batched = hasattr(env, "num_envs") and hasattr(env, "step_async")
        count = len((env.envs[0] if batched else env).unwrapped.examples)
        # the assignment samples too depend on the step alone
        self._rng = np.random.default_rng([self.config.seed, 1, step])
        return self._play_scheduled(env, self.training_schedule(step, count), deterministic=False)

    def _play_scheduled(
        self, env: Any, schedule: Sequence[tuple[int, int]], deterministic: bool, progress_bar: bool = False
    ) -> list[Episode]:
        """One episode per (question index, reset seed) of ``schedule``: through ``env``, or a
        round of its lockstep copies at a time when it is a ``batched_env`` (a last round's spare
        copies play an episode that is not kept)."""
        batched = hasattr(env, "num_envs") and hasattr(env, "step_async")
        copies = list(env.envs) if batched else [env]
        played: list[Episode] = []
        with tqdm(total=len(schedule), desc="evaluate", unit="episode", disable=not progress_bar) as bar:
            for start in range(0, len(schedule), len(copies)):
                chunk = schedule[start : start + len(copies)]
                # each copy is reset on its own: VecEnv.seed takes one seed for all copies
                for copy_env, (index, seed) in zip(copies, chunk):
                    copy_env.reset(seed=seed, options={"index": int(index)})
                if batched:
                    played += self._rollout_batched(env, len(copies), deterministic)[: len(chunk)]
                else:
                    played.append(self._play_current(env, deterministic))
                bar.update(len(chunk))
        return played

    def evaluate_questions(
        self, env: gym.Env, copies: int = 1, progress_bar: bool = False
    ) -> dict[str, Any]:
        """Greedy episodes on every question of ``env``'s split, once each, in index order.

        Returns what ``evaluate_agent(..., return_episodes=True)`` returns. With ``copies`` > 1
        the questions are played ``copies`` at a time in lockstep env copies (``batched_env``),
        each round's model calls batched; the last round's spare copies play an extra episode
        that is not counted.
        """
        from routing_gym.evaluation import episode_scores

        self.adapt_to(env)
        played = self._play_questions(env, range(len(env.unwrapped.examples)), copies, progress_bar)
        # a hybrid action plays the whole episode in one step
        return episode_scores([e.info for e in played], [e.env_reward for e in played], [1] * len(played))

    def _play_questions(
        self, env: gym.Env, indices: Sequence[int], copies: int = 1, progress_bar: bool = False
    ) -> list[Episode]:
        """Greedy episodes on the questions ``indices`` of ``env``'s split, ``copies`` at a time."""
        vec = self.batched_env(env, copies) if copies > 1 else None
        try:
            schedule = [(index, self.config.seed) for index in indices]
            return self._play_scheduled(vec or env, schedule, deterministic=True, progress_bar=progress_bar)
        finally:
            if vec is not None:
                vec.close()

    def evaluate(self, env: gym.Env, episodes: int) -> dict[str, float]:
        """Mean perf, normalized cost, env reward and shaped reward of greedy episodes on the
        first ``episodes`` questions of ``env``'s split (``rollout_envs`` at a time)."""
        count = min(episodes, len(env.unwrapped.examples))
        played = self._play_questions(env, range(count), self.config.rollout_envs)
        return {
            key: float(np.mean([getattr(e, attr) for e in played]))
            for key, attr in (
                ("perf", "perf"),
                ("cost", "normalized_cost"),
                ("env_reward", "env_reward"),
                ("reward", "reward"),
            )
        }

    def learn(self, run: TrainingRun) -> "HAPSAgent":
        """Warm-up on ``run.action_table`` (if any), then the joint phase in ``run``'s hybrid env."""
        return self.fit_env(run.make_env(), action_table=run.action_table)

    def fit_env(
        self,
        env: gym.Env,
        action_table: Any | None = None,
        valid_env: gym.Env | None = None,
        valid_table: Any | None = None,
        updates: int | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> "HAPSAgent":
        """Warm-up on ``action_table`` (exhaustive, of ``env``'s split), then the joint phase.

        ``checkpoint``: a file for the joint phase's state after every update. When it holds
        this run's state (same settings, questions and tables), the warm-up is skipped and the
        joint phase resumes after its last saved update.
        """
        self.adapt_to(env)
        total = self.config.joint_updates if updates is None else updates
        saved = None
        if checkpoint is not None:
            checkpoint = JointCheckpoint(
                checkpoint, run_fingerprint(self, env, valid_env, total, action_table, valid_table))
            saved = checkpoint.load()
        if (
            saved is None
            and action_table is not None
            and self.config.router == "learned"
            and self.config.warmup_epochs
        ):
            examples, rewards, costs = table_arrays(
                action_table, env, self.lam, self.config.shaping, models=self.layout.models
            )
            valid = None
            if valid_table is not None and valid_env is not None:
                valid_examples, valid_rewards, _ = table_arrays(
                    valid_table,
                    valid_env,
                    self.lam,
                    self.config.shaping,
                    models=self.layout.models,
                )
                valid = (valid_examples, valid_rewards)
            self.fit(examples, rewards, costs, valid=valid)
        if total > 0:
            self.train_joint(env, valid_env, total, checkpoint=checkpoint)
        self._env = env
        return self

    # -- logging, state, saving ---------------------------------------------------------------
    def _log(self, phase: str, stats: Mapping[str, float], step: int | None = None) -> None:
        if phase in self._steps and step is None:
            self._steps[phase] += 1
            step = self._steps[phase]
        if self.config.tensorboard_log is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.config.tensorboard_log)
        for key, value in stats.items():
            self._writer.add_scalar(f"{phase}/{key}", value, step)
        self._writer.flush()

    def _state_dicts(self) -> dict[str, Any]:
        """Copies of everything trained: the policy and any fine-tuned backbone."""
        state = {"policy": copy.deepcopy(self.policy.state_dict())}
        if self.encoder_high.trainable:
            state["backbone"] = copy.deepcopy(self.encoder_high.model.state_dict())
        if self.encoder_low is not self.encoder_high:
            state["backbone_low"] = copy.deepcopy(self.encoder_low.model.state_dict())
        return state

    def _load_state_dicts(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if "backbone" in state:
            self.encoder_high.model.load_state_dict(state["backbone"])
        if "backbone_low" in state:
            self.encoder_low.model.load_state_dict(state["backbone_low"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write a folder: ``config.json`` (config, env layout, baseline) and ``weights.pt``."""
        self._require_built()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": SAVE_FORMAT,
            "agent": type(self).__name__,
            "config": dataclasses.asdict(self.config),
            "layout": self.layout.to_dict(),
            "baseline": self.baseline,
        }
        (path / "config.json").write_text(json.dumps(meta, indent=2))
        torch.save(self._state_dicts(), path / "weights.pt")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, **overrides) -> "HAPSAgent":
        """Read a folder written by ``save`` (keyword overrides change config keys: ``device``)."""
        path = Path(path)
        meta = json.loads((path / "config.json").read_text())
        if meta.get("format") != SAVE_FORMAT or meta.get("agent") != cls.__name__:
            raise ValueError(f"{path} is not a {cls.__name__} folder of format {SAVE_FORMAT}.")
        agent = cls(HAPSConfig(**meta["config"]), **overrides)
        agent._build(HybridLayout.from_dict(meta["layout"]))
        agent.baseline = float(meta["baseline"])
        weights = path / "weights.pt"
        try:  # weights_only: a file that needs unpickling (it could run code) is refused
            state = torch.load(weights, map_location=agent.device, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
            reason = (str(exc).strip().splitlines() or [""])[0][:160]
            raise CheckpointError(
                f"{weights} is not a HAPS weights file of tensors ({type(exc).__name__}: {reason})."
            ) from None
        agent._load_state_dicts(state)
        return agent

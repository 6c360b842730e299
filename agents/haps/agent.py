"""The HAPS agent: binds a hybrid env, builds its networks, and acts (an assignment and its LoRA).

Training and playing live in ``training`` and ``rollouts``, saving in ``checkpoints``; the
methods here that train, play or save call them, so the agent keeps SB3's one-object API.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from agents.base import Agent, all_assignments, check_lam, make_config, match_models
from agents.haps import checkpoints, rollouts
from agents.haps import training as haps_training  # `training` is the Agent's schedule attribute
from agents.haps.config import HAPSConfig
from agents.haps.layout import HybridLayout
from agents.haps.networks import HAPSPolicy, PromptEncoder
from agents.haps.prompt import current_example, example_text, is_vector_env, routing_prompt
from agents.haps.rollouts import Episode
from routing_gym.cost import REGIMES
from routing_gym.routers import TRAIN_PER_REGIME, TrainingRun


class HAPSAgent(Agent):
    """HAPS: a high-level policy picks a model per role, per-model generators write its LoRA."""

    name = "haps"
    Config = HAPSConfig
    training = TRAIN_PER_REGIME
    checkpoint_suffix = ""  # save() writes a folder

    def __init__(self, config: HAPSConfig | None = None, **overrides):
        self.config = make_config(HAPSConfig, config, overrides)
        cfg = self.config
        wanted = "cuda" if cfg.device == "auto" and torch.cuda.is_available() else cfg.device
        self.device = torch.device("cpu" if wanted == "auto" else wanted)
        self.layout: HybridLayout | None = None
        self.policy: HAPSPolicy | None = None
        self.encoder_high: PromptEncoder | None = None  # features of the high level
        # features of the generators: the same object when the backbone is shared
        self.encoder_low: PromptEncoder | None = None
        self.arms: list[tuple[int, ...]] = []  # model index per role, the env's role order
        self._to_env: np.ndarray | None = None  # the bound env's index of each layout model
        self.baseline = 0.0
        self.fixed_arm: int | None = None
        self.last_warmup: dict[str, float] = {}  # the last warm-up epoch's loss and accuracy
        # state the training functions (training.py, rollouts.py) keep on the agent
        self._env: Any = None
        self._rng = np.random.default_rng(cfg.seed)
        self._writer = None
        self._joint_optimizer: torch.optim.Optimizer | None = None
        self._steps = {"warmup": 0, "joint": 0}
        self._seeded_envs: set[int] = set()

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
        layout = HybridLayout.from_env(
            env.get_attr("unwrapped", indices=0)[0] if is_vector_env(env) else env
        )
        cfg = self.config
        if layout.rank != cfg.lora_rank or layout.layers != cfg.lora_layers:
            raise ValueError(
                f"HAPSConfig keys 'lora_rank'/'lora_layers' ({cfg.lora_rank}, {cfg.lora_layers!r}) "
                f"differ from the env's ({layout.rank}, {layout.layers!r}); "
                "make the env with haps_env_config(config)."
            )
        if self.layout is None:
            self.build(layout)
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
            if self.layout.roles != layout.roles:
                raise ValueError(
                    f"HAPS was built for the roles {self.layout.roles}; "
                    f"the env's are {layout.roles}."
                )
            self.layout.lam, self.layout.task = layout.lam, layout.task
        self.bind(env)

    def bind(self, env: Any) -> None:
        """Make ``env`` the env whose current question ``predict`` reads (its layout unchecked:
        ``adapt_to`` checks it)."""
        self._env = env

    def build(self, layout: HybridLayout) -> None:
        """Backbone(s), policy and arms for ``layout``."""
        cfg = self.config
        if cfg.router == "fixed":
            self._check_fixed_assignment(layout)
        self.layout = layout
        self.arms = all_assignments(len(layout.models), len(layout.roles))
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
            self.fixed_arm = self.arms.index(
                tuple(layout.models.index(m) for m in cfg.fixed_assignment)
            )

    def _check_fixed_assignment(self, layout: HybridLayout) -> None:
        assignment = self.config.fixed_assignment
        if len(assignment) != len(layout.roles):
            raise ValueError(
                f"HAPSConfig key 'fixed_assignment' must name one model per role {layout.roles}, "
                f"got {assignment!r}."
            )
        unknown = [m for m in assignment if m not in layout.models]
        if unknown:
            raise ValueError(
                f"HAPSConfig key 'fixed_assignment': {unknown[0]!r} is not in the env's pool "
                f"{layout.models}."
            )

    def require_built(self) -> None:
        """Raise RuntimeError until an env layout is known."""
        if self.policy is None:
            raise RuntimeError(
                "HAPS has no env layout yet: call adapt_to(env), fit_env(env) or load(path) first."
            )

    # -- the two levels -----------------------------------------------------------------------
    def prompt_for(self, example: Any) -> str:
        """The routing prompt of a question (an example or a string)."""
        self.require_built()
        question = example_text(example, self.config.question_chars)
        return routing_prompt(question, self.layout.models, self.layout.task)

    def features(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features of the high level and of the generators (one tensor when shared)."""
        high = self.encoder_high.encode(prompts)
        low = high if self.encoder_low is self.encoder_high else self.encoder_low.encode(prompts)
        return high, low

    def assignment_logits(self, prompts: Sequence[str]) -> torch.Tensor:
        """``(b, assignments)`` logits of the high level (no gradient)."""
        self.require_built()
        with torch.no_grad():
            return self.policy.high(self.features(prompts)[0])

    def choose_arm(self, logits: torch.Tensor, deterministic: bool) -> int:
        """The assignment to play: fixed, uniform, the argmax or a sample of the high level."""
        if self.config.router == "fixed":
            return self.fixed_arm
        if self.config.router == "random":
            return int(self._rng.integers(len(self.arms)))
        if deterministic:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        return int(self._rng.choice(len(probs), p=probs / probs.sum()))

    def env_action(self, arm: int, low_features: torch.Tensor) -> dict[str, Any]:
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

    def act(
        self, prompts: Sequence[str], deterministic: bool
    ) -> tuple[list[int], list[dict[str, Any]]]:
        """The arm and the env action of each routing prompt (no gradient)."""
        with torch.no_grad():
            high, low = self.features(prompts)
            logits = self.policy.high(high)
            arms = [self.choose_arm(logits[i], deterministic) for i in range(len(prompts))]
            return arms, [self.env_action(arm, low[i]) for i, arm in enumerate(arms)]

    def predict_episode(self, question: Any, deterministic: bool = True) -> dict[str, Any]:
        """The env action for one question (text or example): an assignment and its LoRA vectors."""
        self.require_built()
        return self.act([self.prompt_for(question)], deterministic)[1][0]

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
        self.require_built()
        context = np.asarray(
            observation["context"] if isinstance(observation, Mapping) else observation
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
        expected = len(context) if batched else 1
        if len(questions) != expected:
            raise ValueError(f"{len(questions)} questions for an observation batch of {expected}.")
        actions = [self.predict_episode(q, deterministic) for q in questions]
        return (actions if batched else actions[0]), state

    # -- training (training.py) ---------------------------------------------------------------
    def learn(self, run: TrainingRun) -> "HAPSAgent":
        """Warm-up on ``run.action_table`` (if any), then the joint phase in ``run``'s env."""
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
        """Warm-up on ``action_table``, then the joint phase, resumable from ``checkpoint``
        (``training.fit_env``)."""
        return haps_training.fit_env(
            self, env, action_table, valid_env, valid_table, updates, checkpoint
        )

    def fit(
        self,
        questions: Sequence[Any],
        rewards: np.ndarray,
        costs: np.ndarray | None = None,
        valid: tuple[Sequence[Any], np.ndarray] | None = None,
    ) -> "HAPSAgent":
        """SFT warm-up of the high level on rewards ``(questions, assignments)``
        (``training.warmup``)."""
        return haps_training.warmup(self, questions, rewards, costs, valid)

    def table_reward(self, questions: Sequence[Any], rewards: np.ndarray) -> float:
        """Mean reward of the high level's argmax assignments on table rows."""
        return haps_training.table_reward(self, questions, rewards)

    def train_joint(
        self,
        env: gym.Env,
        valid_env: gym.Env | None = None,
        updates: int | None = None,
        checkpoint: checkpoints.JointCheckpoint | None = None,
    ) -> "HAPSAgent":
        """REINFORCE on both levels through ``env``, early stopping on ``valid_env``
        (``training.train_joint``)."""
        return haps_training.train_joint(self, env, valid_env, updates, checkpoint)

    def update(
        self, episodes: Sequence[Episode], advantages: Sequence[float], pool: Any, optimizer=None
    ) -> dict[str, float]:
        """One gradient step on the REINFORCE loss of ``episodes`` (``training.update``)."""
        return haps_training.update(self, episodes, advantages, pool, optimizer)

    def joint_loss(
        self, episodes: Sequence[Episode], advantages: Sequence[float], pool: Any
    ) -> float:
        """The REINFORCE loss of a batch, without a step (``training.joint_loss``)."""
        return haps_training.joint_loss(self, episodes, advantages, pool)

    def joint_optimizer(self) -> torch.optim.Optimizer:
        """The joint phase's Adam, made on first use (a resumed run loads its moments into it)."""
        if self._joint_optimizer is None:
            self._joint_optimizer = torch.optim.Adam(haps_training.trainable_groups(self))
        return self._joint_optimizer

    # -- playing (rollouts.py) ----------------------------------------------------------------
    def rollout(
        self, env: Any, episodes: int, deterministic: bool = False, seed: int | None = None
    ) -> list[Episode]:
        """Play ``episodes`` episodes through ``env`` or lockstep copies (``rollouts.rollout``)."""
        return rollouts.rollout(self, env, episodes, deterministic, seed)

    def batched_env(self, env: gym.Env, n_envs: int):
        """``n_envs`` lockstep copies of ``env``, copy ``i`` seeded with ``config.seed + i``."""
        return rollouts.batched_env(env, n_envs, self.config.seed)

    def training_schedule(self, step: int, questions: int) -> list[tuple[int, int]]:
        """(question index, reset seed) of each episode of joint update ``step``."""
        return rollouts.training_schedule(
            self.config.seed, self.config.episodes_per_update, step, questions
        )

    def evaluate(self, env: gym.Env, episodes: int) -> dict[str, float]:
        """Mean perf, cost and rewards of greedy episodes on ``env``'s first ``episodes``
        questions."""
        return rollouts.evaluate(self, env, episodes)

    def evaluate_questions(
        self, env: gym.Env, copies: int = 1, progress_bar: bool = False
    ) -> dict[str, Any]:
        """Greedy episodes on every question of ``env``'s split, once each
        (``rollouts.evaluate_questions``)."""
        return rollouts.evaluate_questions(self, env, copies, progress_bar)

    def record_play(self, env: Any) -> bool:
        """Remember that HAPS plays ``env``; True the first time (then it is reset with the
        config's seed)."""
        first = id(env) not in self._seeded_envs
        self._seeded_envs.add(id(env))
        return first

    def reseed_sampling(self, *entropy: int) -> None:
        """Restart the generator of sampled and random assignments from ``entropy`` (e.g. the
        seed and the update, so that an update's samples depend on it alone)."""
        self._rng = np.random.default_rng(list(entropy))

    # -- logging, state, saving ---------------------------------------------------------------
    @property
    def logged_steps(self) -> dict[str, int]:
        """How many steps each phase (``warmup``, ``joint``) has logged: a copy."""
        return dict(self._steps)

    @logged_steps.setter
    def logged_steps(self, steps: Mapping[str, int]) -> None:
        # a resumed run's counts; a phase it does not name keeps its own
        self._steps.update(steps)

    def log(self, phase: str, stats: Mapping[str, float], step: int | None = None) -> None:
        """Count the phase's step and write ``stats`` to TensorBoard (with ``tensorboard_log``)."""
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

    def trained_state(self) -> dict[str, Any]:
        """Copies of everything trained: the policy and any fine-tuned backbone."""
        state = {"policy": copy.deepcopy(self.policy.state_dict())}
        if self.encoder_high.trainable:
            state["backbone"] = copy.deepcopy(self.encoder_high.model.state_dict())
        if self.encoder_low is not self.encoder_high:
            state["backbone_low"] = copy.deepcopy(self.encoder_low.model.state_dict())
        return state

    def load_trained_state(self, state: Mapping[str, Any]) -> None:
        """Load what ``trained_state`` returned."""
        self.policy.load_state_dict(state["policy"])
        if "backbone" in state:
            self.encoder_high.model.load_state_dict(state["backbone"])
        if "backbone_low" in state:
            self.encoder_low.model.load_state_dict(state["backbone_low"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write a folder: ``config.json`` (config, env layout, baseline) and ``weights.pt``."""
        return checkpoints.save_agent(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, **overrides) -> "HAPSAgent":
        """Read a folder written by ``save`` (keyword overrides change config keys: ``device``);
        a weights file that needs unpickling is a ``CheckpointError``."""
        return checkpoints.load_agent(cls, path, **overrides)

"""HAPS's hyperparameters in one dataclass, checked when made, and the env config that fits it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.base import check_lam

ROUTERS = ("learned", "random", "fixed")
TIES = ("cheapest", "first", "soft")
SHAPINGS = ("haps", "none")
BASELINES = ("ema", "none")
TOKEN_REDUCTIONS = ("sum", "mean")

#: Keys that must be ints >= 1 (the rest of the ints may be 0).
POSITIVE_INTS = (
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
)


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
    fixed_assignment: list[str] | None = None  # one model per env role, for router="fixed"
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

    def __post_init__(self) -> None:
        check_config(self)


def check_config(cfg: HAPSConfig) -> None:
    """Raise ValueError naming the first bad key (the env-dependent checks come in ``adapt_to``)."""
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
    for key in POSITIVE_INTS:
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
            f"HAPSConfig key 'baseline_momentum' must be in [0, 1), got {cfg.baseline_momentum!r}."
        )
    if cfg.router == "fixed" and (
        not isinstance(cfg.fixed_assignment, (list, tuple))
        or not cfg.fixed_assignment
        or not all(isinstance(m, str) for m in cfg.fixed_assignment)
    ):
        # its length is checked against the env's roles once an env is bound
        raise ValueError(
            "HAPSConfig key 'fixed_assignment' must name one model per role of the env for "
            f"router='fixed', got {cfg.fixed_assignment!r}."
        )
    if not cfg.share_backbone and not cfg.finetune_backbone:
        raise ValueError(
            "HAPSConfig key 'share_backbone': False gives the generators their own fine-tuned "
            "backbone copy, so it needs finetune_backbone=True (a frozen backbone is the same "
            "either way)."
        )


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

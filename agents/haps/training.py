"""Training HAPS: a warm-up on an exhaustive table, then REINFORCE on both levels, early stopping.

``fit_env`` runs both phases: ``warmup`` (cross-entropy of the high level against each
question's best assignment) and ``train_joint`` (per update: sampled episodes, then one
``update`` on ``(R − b) · (log π(assignment) + Σ log p(tokens | LoRA))``). Every function
takes the agent first; the agent's methods of the same names call them.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from agents.haps.checkpoints import JointCheckpoint, run_fingerprint
from agents.haps.rollouts import Episode, batched_env, training_rollout
from agents.haps.tables import examples_of, shaped_rewards, table_outcomes, warmup_targets

if TYPE_CHECKING:
    from agents.haps.agent import HAPSAgent


class EarlyStopping:
    """Keeps the best-scoring weights and says when ``patience`` checks brought no gain."""

    def __init__(self, agent: "HAPSAgent", patience: int):
        self.agent, self.patience = agent, patience
        self.best, self.best_state, self.stale = -math.inf, None, 0

    def should_stop(self, score: float) -> bool:
        if score > self.best:
            self.best, self.best_state, self.stale = score, self.agent.trained_state(), 0
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.agent.load_trained_state(self.best_state)


# ---------------------------------------------------------------------------- warm-up


def warmup(
    agent: "HAPSAgent",
    questions: Sequence[Any],
    rewards: np.ndarray,
    costs: np.ndarray | None = None,
    valid: tuple[Sequence[Any], np.ndarray] | None = None,
) -> "HAPSAgent":
    """SFT warm-up of the high level: questions, rewards ``(n, assignments)`` (and costs, for ties).

    Columns follow ``all_assignments`` (see ``table_outcomes``). With ``valid`` = (questions,
    rewards) the epoch whose argmax earns the most there is kept, and training stops after
    ``patience`` epochs without improvement.
    """
    agent.require_built()
    cfg = agent.config
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.shape != (len(questions), len(agent.arms)):
        raise ValueError(
            f"rewards must be (questions, {len(agent.arms)} assignments), got {rewards.shape}."
        )
    if cfg.router != "learned":
        return agent
    prompts = [agent.prompt_for(q) for q in questions]
    targets = torch.tensor(
        warmup_targets(rewards, costs, cfg.ties), dtype=torch.float32, device=agent.device
    )
    groups = [{"params": list(agent.policy.high.parameters()), "lr": cfg.warmup_lr}]
    if agent.encoder_high.trainable:
        groups.append(
            {"params": list(agent.encoder_high.model.parameters()), "lr": cfg.backbone_lr}
        )
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.Adam(groups)
    stopper, stats = EarlyStopping(agent, cfg.patience), {}
    generator = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(range(cfg.warmup_epochs), desc="HAPS warm-up", disable=not cfg.progress_bar)
    for _ in bar:
        order = torch.randperm(len(prompts), generator=generator).tolist()
        total = 0.0
        for start in range(0, len(order), cfg.warmup_batch_size):
            rows = order[start : start + cfg.warmup_batch_size]
            logits = agent.policy.high(agent.encoder_high.encode([prompts[i] for i in rows]))
            loss = nn.functional.cross_entropy(logits, targets[rows])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        stats = {"loss": total / len(prompts), "accuracy": table_accuracy(agent, prompts, targets)}
        if valid is not None:
            stats["valid_reward"] = table_reward(agent, *valid)
        agent.log("warmup", stats)
        bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()})
        if valid is not None and stopper.should_stop(stats["valid_reward"]):
            break
    stopper.restore_best()
    agent.last_warmup = stats
    return agent


def table_accuracy(agent: "HAPSAgent", prompts: list[str], targets: torch.Tensor) -> float:
    """Share of questions whose argmax assignment has target mass (one of the best)."""
    chosen = agent.assignment_logits(prompts).argmax(dim=1)
    return float((targets[torch.arange(len(prompts)), chosen] > 0).float().mean())


def table_reward(agent: "HAPSAgent", questions: Sequence[Any], rewards: np.ndarray) -> float:
    """Mean reward of the high level's argmax assignments on table rows."""
    logits = agent.assignment_logits([agent.prompt_for(q) for q in questions])
    chosen = logits.argmax(dim=1).cpu().numpy()
    return float(np.asarray(rewards)[np.arange(len(chosen)), chosen].mean())


# ---------------------------------------------------------------------------- REINFORCE


def trainable_groups(agent: "HAPSAgent") -> list[dict[str, Any]]:
    """The joint phase's parameter groups: the policy, each fine-tuned backbone at its own lr."""
    groups = [{"params": list(agent.policy.parameters()), "lr": agent.config.lr}]
    backbones = {id(e): e for e in (agent.encoder_high, agent.encoder_low) if e.trainable}
    for encoder in backbones.values():
        groups.append({"params": list(encoder.model.parameters()), "lr": agent.config.backbone_lr})
    return groups


def episode_terms(
    agent: "HAPSAgent", episode: Episode, pool: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log π(assignment), the tokens' log-likelihood under the generated LoRA, the entropy."""
    cfg, layout = agent.config, agent.layout
    high, low = agent.features([episode.prompt])
    zero = torch.zeros((), device=agent.device)
    arm_logprob, entropy = zero, zero
    if cfg.router == "learned":
        logp = torch.log_softmax(agent.policy.high(high)[0], dim=-1)
        arm_logprob, entropy = logp[episode.arm], -(logp.exp() * logp).sum()
    token_logprob = zero
    adapters = {}
    for model in {layout.models[i] for i in agent.arms[episode.arm]}:
        generator = agent.policy.generator(model)
        if generator is not None:
            adapters[model] = generator.adapter(
                generator(low)[0], layout.alpha, layout.scale, model
            )
    if adapters:
        if not episode.calls:
            raise ValueError(
                "The episode has no recorded calls: make the env with record_text=True."
            )
        token_logprob = pool.episode_logprob(episode.calls, adapters).to(agent.device)
        if cfg.token_logprob == "mean":
            tokens = sum(len(c["completion_ids"]) for c in episode.calls if c["model"] in adapters)
            token_logprob = token_logprob / max(1, tokens)
    return arm_logprob, token_logprob, entropy


def joint_loss(
    agent: "HAPSAgent", episodes: Sequence[Episode], advantages: Sequence[float], pool: Any
) -> float:
    """REINFORCE loss of a batch, no step: −mean adv·(log π + token log-lik) − entropy bonus."""
    with torch.no_grad():
        total = 0.0
        for episode, adv in zip(episodes, advantages):
            arm, tokens, entropy = episode_terms(agent, episode, pool)
            total += float(-adv * (arm + tokens) - agent.config.ent_coef * entropy)
    return total / len(episodes)


def update(
    agent: "HAPSAgent",
    episodes: Sequence[Episode],
    advantages: Sequence[float],
    pool: Any,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, float]:
    """One gradient step on the REINFORCE loss; each episode is backpropagated alone, so memory
    stays at one episode's graph.

    ``pool`` scores the recorded tokens: the env's ``engine`` or an ``LLMPool`` (anything
    with ``episode_logprob``).
    """
    cfg = agent.config
    optimizer = optimizer or agent.joint_optimizer()
    optimizer.zero_grad()
    stats = {"loss": 0.0, "arm_logprob": 0.0, "token_logprob": 0.0, "entropy": 0.0}
    for episode, adv in zip(episodes, advantages):
        arm, tokens, entropy = episode_terms(agent, episode, pool)
        loss = (-float(adv) * (arm + tokens) - cfg.ent_coef * entropy) / len(episodes)
        if loss.requires_grad:
            loss.backward()
        terms = (
            ("loss", loss * len(episodes)),
            ("arm_logprob", arm),
            ("token_logprob", tokens),
            ("entropy", entropy),
        )
        for key, value in terms:
            stats[key] += float(value.detach()) / len(episodes)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    stats["grad_norm"] = float(nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
    optimizer.step()
    return stats


def episode_stats(agent: "HAPSAgent", episodes: Sequence[Episode]) -> dict[str, float]:
    """The batch's mean rewards, perf and cost, and how often each role got each model."""
    stats = {
        "reward": float(np.mean([e.reward for e in episodes])),
        "env_reward": float(np.mean([e.env_reward for e in episodes])),
        "perf": float(np.mean([e.perf for e in episodes])),
        "cost": float(np.mean([e.normalized_cost for e in episodes])),
    }
    for r, role in enumerate(agent.layout.roles):
        for m, model in enumerate(agent.layout.models):
            stats[f"share/{role}/{model}"] = float(
                np.mean([agent.arms[e.arm][r] == m for e in episodes])
            )
    return stats


# ---------------------------------------------------------------------------- the joint phase


def check_joint_env(agent: "HAPSAgent", env: gym.Env) -> None:
    """The joint phase reads each episode's calls, and samples them to explore."""
    base = env.unwrapped
    if not base.records_text:
        raise ValueError(
            "The joint phase reads each episode's calls: make the env with record_text=True."
        )
    if agent.config.use_lora and not base.engine.temperature:
        warnings.warn(
            "The env's protocol temperature is 0: the joint phase trains on greedy episodes."
        )


def train_joint(
    agent: "HAPSAgent",
    env: gym.Env,
    valid_env: gym.Env | None = None,
    updates: int | None = None,
    checkpoint: JointCheckpoint | None = None,
) -> "HAPSAgent":
    """REINFORCE on both levels through ``env``; early stopping on ``valid_env``'s reward.

    With ``checkpoint`` the state is saved after every update, and a run that finds its
    own checkpoint resumes after the last saved update (or returns at once if it finished).
    """
    agent.require_built()
    cfg = agent.config
    check_joint_env(agent, env)
    if cfg.router != "learned" and not agent.policy.open_models:
        return agent  # a random or fixed router without LoRA has nothing to learn
    stopper = EarlyStopping(agent, cfg.patience)
    total = cfg.joint_updates if updates is None else updates
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        checkpoint.restore(saved, agent, stopper)
        if saved["finished"]:
            return agent
    first = int(saved["next_update"]) if saved is not None else 0
    bar = tqdm(
        range(first, total),
        desc="HAPS joint",
        disable=not cfg.progress_bar,
        initial=first,
        total=total,
    )
    rollout_env = batched_env(env, cfg.rollout_envs, cfg.seed) if cfg.rollout_envs > 1 else env
    for step in bar:
        episodes = training_rollout(agent, rollout_env, step)
        rewards = np.array([e.reward for e in episodes])
        advantages = rewards - (agent.baseline if cfg.baseline == "ema" else 0.0)
        stats = agent.update(episodes, advantages, env.unwrapped.engine)
        if cfg.baseline == "ema":
            for r in rewards:
                agent.baseline = (
                    cfg.baseline_momentum * agent.baseline + (1 - cfg.baseline_momentum) * r
                )
        stats.update(episode_stats(agent, episodes), baseline=agent.baseline)
        agent.log("joint", stats)
        bar.set_postfix(reward=f"{stats['reward']:.3f}", perf=f"{stats['perf']:.3f}")
        stopped = False
        if valid_env is not None and (step + 1) % cfg.eval_every == 0:
            score = agent.evaluate(valid_env, cfg.valid_episodes)
            agent.log("valid", score, step=agent.logged_steps["joint"])
            stopped = stopper.should_stop(score["env_reward"])
        if stopped:
            break
        if checkpoint is not None and step + 1 < total:
            checkpoint.save(agent, step + 1, stopper, finished=False)
    if rollout_env is not env:
        rollout_env.close()
    stopper.restore_best()
    if checkpoint is not None:
        checkpoint.save(agent, total, stopper, finished=True)
    return agent


def fit_env(
    agent: "HAPSAgent",
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
    agent.adapt_to(env)
    cfg = agent.config
    total = cfg.joint_updates if updates is None else updates
    saved = None
    if checkpoint is not None:
        fingerprint = run_fingerprint(agent, env, valid_env, total, action_table, valid_table)
        checkpoint = JointCheckpoint(checkpoint, fingerprint)
        saved = checkpoint.load()
    if saved is None and action_table is not None and cfg.router == "learned" and cfg.warmup_epochs:
        train = table_outcomes(action_table, env, agent.layout.models)
        valid = None
        if valid_table is not None and valid_env is not None:
            held_out = table_outcomes(valid_table, valid_env, agent.layout.models)
            valid = (
                examples_of(valid_env, held_out.query_ids),
                shaped_rewards(held_out, agent.lam, cfg.shaping),
            )
        rewards = shaped_rewards(train, agent.lam, cfg.shaping)
        agent.fit(examples_of(env, train.query_ids), rewards, train.costs, valid=valid)
    if total > 0:
        agent.train_joint(env, valid_env, total, checkpoint=checkpoint)
    agent.bind(env)  # predict reads the train env's questions
    return agent

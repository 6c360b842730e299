"""Train HAPS (assignment router + per-query LoRA generators) on a hybrid Teacher–Student env.

The command line behind ``routing-gym train-haps`` and ``examples/train_haps.py`` (same flags).

Real pool, real HotpotQA (train and valid from $ROUTING_GYM_DATA). First the exhaustive
action-level table of the train split, for the warm-up (resumable, cached):

    routing-gym precompute --env LLMRouting-HotpotQA-v0 --split train --limit 100 \
        --out runs/train_table.jsonl

then warm-up, joint REINFORCE with early stopping on valid, and a held-out score:

    routing-gym train-haps --action-table runs/train_table.jsonl --train-limit 100 \
        --valid-limit 20 --updates 200 --episodes-per-update 4 --tensorboard-log runs/haps \
        --out runs/haps_agent

``--profile-step [BATCH ...]`` times one joint update at each batch size (wall time, peak
memory; episodes against backward), with the batch's episodes in lockstep and, for the ratio,
one after another, and exits. ``--rollout-envs N`` plays the joint phase's episodes in N env
copies in lockstep.
Mixed-source setting (HAPS's Remark 1): ``--closed qwen2.5-coder-1.5b`` uses that model as it
is (no LoRA generator, no backward through it).
Ablations: ``--router random|fixed --fixed-assignment smollm2-135m,gemma3-270m``, ``--no-lora``,
``--no-share-backbone`` (with ``--finetune-backbone``), ``--lora-layers 1|2|4|all``.
``tensorboard --logdir runs/haps`` shows ``warmup/*``, ``joint/*`` (reward, perf, cost, token
log-likelihood, role shares) and ``valid/*``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from agents.evaluation import evaluate_agent
from agents.haps.agent import HAPSAgent
from agents.haps.checkpoints import JointCheckpoint, run_fingerprint
from agents.haps.config import ROUTERS, TIES, HAPSConfig, haps_env_config
from routing_gym.action_table import ActionTable
from routing_gym.cli import OneLineArgumentParser
from routing_gym.errors import UsageError
from routing_gym.llm.spec import REAL_POOL, closed, resolve_spec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags, in four groups: envs, model and ablations, training, output."""
    parser = OneLineArgumentParser(
        prog="routing-gym train-haps", description=__doc__.split("\n\n")[0]
    )
    add_env_flags(parser.add_argument_group("envs and data"))
    add_model_flags(parser.add_argument_group("model and ablations"))
    add_training_flags(parser.add_argument_group("training"))
    add_output_flags(parser.add_argument_group("output"))
    return parser.parse_args(argv)


def add_env_flags(group: argparse._ArgumentGroup) -> None:
    """The envs: pool, splits, tables, λ, protocol and cache."""
    group.add_argument(
        "--env", default="LLMRouting-HotpotQA-HAPS-v0", help="a hybrid-action env ID"
    )
    group.add_argument("--models", default=",".join(REAL_POOL), help="comma-separated pool")
    group.add_argument(
        "--closed",
        default="",
        help="comma-separated models of the pool used as they are, "
        "without LoRA (HAPS's mixed-source setting)",
    )
    group.add_argument("--data-dir", default=None, help="data folder (default: $ROUTING_GYM_DATA)")
    group.add_argument("--train-split", default="train")
    group.add_argument("--valid-split", default="valid")
    group.add_argument("--train-limit", type=int, default=None)
    group.add_argument("--valid-limit", type=int, default=20)
    group.add_argument(
        "--action-table", default=None, help="exhaustive table of the train split (warm-up)"
    )
    group.add_argument(
        "--valid-table",
        default=None,
        help="exhaustive table of the valid split (warm-up early stopping)",
    )
    group.add_argument(
        "--lam", default="balanced", help="λ: a number, performance-first, balanced or cost-first"
    )
    group.add_argument("--protocol", default="{}", help="extra protocol settings, as JSON")
    group.add_argument(
        "--env-config",
        default="{}",
        help="further settings of every env (train, valid, early stopping), as JSON, e.g. "
        '\'{"subjects": ["astronomy", "marketing"]}\' for MMLU',
    )
    group.add_argument(
        "--temperature", type=float, default=0.7, help="sampling temperature of training episodes"
    )
    group.add_argument("--cache-mode", default="rw", choices=("rw", "ro", "off"))


def add_model_flags(group: argparse._ArgumentGroup) -> None:
    """The backbone, the two levels and their ablations, the LoRA shape."""
    group.add_argument(
        "--backbone", default="smollm2-135m", help="built-in model name or transformers folder"
    )
    group.add_argument("--finetune-backbone", action="store_true")
    group.add_argument(
        "--no-share-backbone", action="store_true", help="generators get their own backbone copy"
    )
    group.add_argument("--router", default="learned", choices=ROUTERS)
    group.add_argument(
        "--fixed-assignment",
        default=None,
        help="comma-separated model names, one per role of the env, for --router fixed",
    )
    group.add_argument("--no-lora", action="store_true")
    group.add_argument("--lora-layers", default="1", help="k: 1, 2, 4 or all")
    group.add_argument("--lora-rank", type=int, default=8)
    group.add_argument("--lora-alpha", type=float, default=0.01)
    group.add_argument("--lora-scale", type=float, default=1.0)


def add_training_flags(group: argparse._ArgumentGroup) -> None:
    """Warm-up, joint phase, validation and early stopping."""
    group.add_argument("--warmup-epochs", type=int, default=30)
    group.add_argument("--ties", default="cheapest", choices=TIES)
    group.add_argument("--updates", type=int, default=100, help="joint-phase updates")
    group.add_argument("--episodes-per-update", type=int, default=4)
    group.add_argument(
        "--rollout-envs",
        type=int,
        default=1,
        help="play the joint phase's episodes in this "
        "many env copies in lockstep (batched model calls)",
    )
    group.add_argument("--lr", type=float, default=1e-4)
    group.add_argument("--eval-every", type=int, default=10)
    group.add_argument("--valid-episodes", type=int, default=20)
    group.add_argument(
        "--stop-split",
        default=None,
        help="early-stop on this split's questions instead of the "
        "reported ones (with --stop-skip/--stop-limit)",
    )
    group.add_argument(
        "--stop-skip", type=int, default=0, help="skip this many questions of --stop-split"
    )
    group.add_argument(
        "--stop-limit", type=int, default=None, help="early-stopping questions of --stop-split"
    )
    group.add_argument("--patience", type=int, default=3)
    group.add_argument("--seed", type=int, default=0)


def add_output_flags(group: argparse._ArgumentGroup) -> None:
    """Logs, the saved agent, its checkpoint, the results file, profiling."""
    group.add_argument("--tensorboard-log", default=None)
    group.add_argument("--no-progress-bar", action="store_true")
    group.add_argument("--out", default=None, help="folder to save the trained agent")
    group.add_argument(
        "--checkpoint",
        default=None,
        help="the joint phase's state after every update; the same "
        "command resumes from it (default: <out>/joint_checkpoint.pt with --out)",
    )
    group.add_argument(
        "--results-json",
        default=None,
        help="write the valid scores and each valid episode (assignment, perf, cost) here",
    )
    group.add_argument(
        "--profile-step",
        type=int,
        nargs="*",
        default=None,
        metavar="BATCH",
        help="time one joint update at each batch size (default 1) and exit",
    )


def check_disjoint(stop_env: gym.Env, others: dict[str, gym.Env]) -> None:
    """Raise ValueError when an early-stopping question is also trained on or reported."""
    stop = {str(e.id) for e in stop_env.unwrapped.examples}
    for role, env in others.items():
        shared = stop & {str(e.id) for e in env.unwrapped.examples}
        if shared:
            raise ValueError(
                f"{len(shared)} early-stopping questions are also {role} questions "
                f"(e.g. {sorted(shared)[0]!r}); choose another --stop-split or --stop-skip."
            )


def config_from_args(args: argparse.Namespace) -> HAPSConfig:
    """The agent's config from the flags."""
    layers = args.lora_layers if args.lora_layers == "all" else int(args.lora_layers)
    return HAPSConfig(
        backbone=args.backbone,
        finetune_backbone=args.finetune_backbone,
        share_backbone=not args.no_share_backbone,
        router=args.router,
        fixed_assignment=args.fixed_assignment.split(",") if args.fixed_assignment else None,
        use_lora=not args.no_lora,
        lora_rank=args.lora_rank,
        lora_layers=layers,
        lam=args.lam,
        warmup_epochs=args.warmup_epochs,
        ties=args.ties,
        joint_updates=args.updates,
        episodes_per_update=args.episodes_per_update,
        rollout_envs=args.rollout_envs,
        lr=args.lr,
        eval_every=args.eval_every,
        valid_episodes=args.valid_episodes,
        patience=args.patience,
        seed=args.seed,
        tensorboard_log=args.tensorboard_log,
        progress_bar=not args.no_progress_bar,
    )


def profile_step(
    agent: HAPSAgent, env: gym.Env, batch: int, lockstep: bool = True
) -> dict[str, float]:
    """Wall time and peak memory of one joint update: ``batch`` sampled episodes + the backward.

    With ``lockstep`` the episodes play together in ``batch`` env copies (one batched model call
    per round of turns), else one after another. The update backpropagates one episode at a
    time (gradient accumulation), so the peak memory of the backward pass does not grow with
    the batch; the wall time grows with it.
    """
    agent.adapt_to(env)  # loads the pool and the backbone first, so only the step is timed
    rollout_env = agent.batched_env(env, batch) if lockstep and batch > 1 else env
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    episodes = agent.rollout(rollout_env, batch)
    played = time.perf_counter()
    advantages = [e.reward - agent.baseline for e in episodes]
    stats = agent.update(episodes, advantages, env.unwrapped.engine)
    end = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tokens = sum(len(c["completion_ids"]) for e in episodes for c in e.calls)
    prompt = sum(len(c["prompt_ids"]) for e in episodes for c in e.calls)
    calls = sum(len(e.calls) for e in episodes)
    if rollout_env is not env:
        rollout_env.close()
    row = {
        "batch": batch,
        "lockstep": float(lockstep and batch > 1),
        "step_s": end - start,
        "episodes_s": played - start,
        "update_s": end - played,
        "calls": calls,
        "prompt_tokens": prompt,
        "generated_tokens": tokens,
        "peak_rss_mib": peak,
    }
    if torch.cuda.is_available():
        row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(
        f"one joint step at batch {batch}: {row['step_s']:.1f} s "
        f"(episodes {row['episodes_s']:.1f} s: "
        f"{calls} calls, {prompt} prompt and {tokens} generated tokens; "
        f"update {row['update_s']:.1f} s); peak RSS {peak:.0f} MiB "
        f"({peak - before:+.0f} MiB during the step)"
        + (f", CUDA peak {row['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in row else "")
    )
    print(json.dumps({k: round(v, 4) for k, v in stats.items()}))
    return row


def pool_models(models: str, closed_models: str) -> list[Any]:
    """The pool: names, with ``closed_models`` marked closed (same weights and cache, no LoRA)."""
    names = [m for m in models.split(",") if m]
    wanted = [m for m in closed_models.split(",") if m]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise UsageError(f"--closed {unknown[0]!r} is not in --models {models!r}.")
    return [closed(resolve_spec(m)).to_dict() if m in wanted else m for m in names]


#: Env settings that have their own flag, refused in --env-config.
OWN_FLAGS = (
    "models",
    "lam",
    "data_dir",
    "cache_mode",
    "lora_alpha",
    "lora_scale",
    "protocol",
    "split",
    "limit",
    "skip",
    "cost_bounds",
)


def env_settings(args: argparse.Namespace, table: ActionTable | None) -> dict[str, Any]:
    """The settings every env shares (train, valid, early stopping): the flags and --env-config."""
    try:
        extra = json.loads(args.env_config)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--env-config: not valid JSON ({exc.msg}).") from None
    if not isinstance(extra, dict):
        raise UsageError(f"--env-config must be a JSON object, got {args.env_config!r}.")
    reserved = sorted(set(extra) & set(OWN_FLAGS))
    if reserved:
        raise UsageError(f"--env-config {reserved[0]!r}: set it with its own flag.")
    common = {
        **extra,
        "models": pool_models(args.models, args.closed),
        "lam": args.lam,
        "data_dir": args.data_dir,
        "cache_mode": args.cache_mode,
        "lora_alpha": args.lora_alpha,
        "lora_scale": args.lora_scale,
        "protocol": json.loads(args.protocol),
    }
    if table is not None:  # frozen bounds fitted on the train table, shared by every env
        common["cost_bounds"] = table.fit_cost_normalizer().to_dict()
    return common


def profile(agent: HAPSAgent, env: gym.Env, batches: list[int]) -> None:
    """``--profile-step``: one joint update per batch size, in lockstep and one after another."""
    rows = []
    for batch in batches or [1]:
        rows.append(profile_step(agent, env, batch, lockstep=True))
        if batch > 1:  # the same batch one episode after another, for the ratio
            rows.append(profile_step(agent, env, batch, lockstep=False))
            print(
                f"batch {batch}: episodes in lockstep take "
                f"{rows[-2]['episodes_s'] / rows[-1]['episodes_s']:.2f}x "
                "the time of one after another"
            )
    print(json.dumps({"profile": [{k: round(v, 3) for k, v in r.items()} for r in rows]}))


def checkpoint_path(args: argparse.Namespace) -> str | None:
    """--checkpoint, else <out>/joint_checkpoint.pt with --out, else none."""
    return args.checkpoint or (str(Path(args.out) / "joint_checkpoint.pt") if args.out else None)


def say_if_resuming(path: str, fingerprint: str, updates: int) -> None:
    """Tell (on stderr) that this run's checkpoint is there and where the run stands."""
    saved = JointCheckpoint(path, fingerprint).load()
    if saved is not None:
        where = (
            "training finished"
            if saved["finished"]
            else f"update {saved['next_update']} of {updates}"
        )
        print(f"Resuming from {path}: {where}.", file=sys.stderr)


def score(agent: HAPSAgent, env: gym.Env, args: argparse.Namespace) -> dict[str, Any]:
    """Greedy episodes on every question of ``env`` (in lockstep copies with --rollout-envs)."""
    if args.rollout_envs > 1:  # the valid questions in lockstep copies too, each once
        return agent.evaluate_questions(
            env, args.rollout_envs, progress_bar=not args.no_progress_bar
        )
    return evaluate_agent(agent, env, return_episodes=True, progress_bar=not args.no_progress_bar)


def report(args: argparse.Namespace, scores: dict[str, Any], trained: float) -> None:
    """Write --results-json and print the valid scores (the last line one JSON object)."""
    if args.results_json:
        summary = {"config": vars(args), "train_seconds": trained, **scores}
        Path(args.results_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results_json).write_text(json.dumps(summary, indent=1, default=str))
    print(
        f"Valid ({args.valid_split}, {scores['episodes']} questions): perf {scores['perf']:.3f}, "
        f"normalized cost {scores['cost']:.3f}, reward {scores['reward']:.3f}"
    )
    print("Call shares: " + ", ".join(f"{m} {s:.2f}" for m, s in scores["share"].items()))
    print(
        json.dumps(
            {k: v for k, v in scores.items() if isinstance(v, (int, float)) and np.isfinite(v)}
        )
    )


def make_envs(
    args: argparse.Namespace, config: HAPSConfig, common: dict[str, Any]
) -> tuple[gym.Env, gym.Env, gym.Env]:
    """The train env (sampling), the reported env (greedy) and the early-stopping env (the
    reported one unless --stop-split keeps its questions apart, checked disjoint)."""

    def make_env(split: str, temperature: float | None, **where) -> gym.Env:
        return gym.make(
            args.env, config=haps_env_config(config, temperature, split=split, **where, **common)
        )

    train_env = make_env(args.train_split, args.temperature, limit=args.train_limit)
    valid_env = make_env(args.valid_split, None, limit=args.valid_limit)
    stop_env = valid_env
    if args.stop_split is not None:  # early stopping on questions kept apart from the reported ones
        stop_env = make_env(args.stop_split, None, skip=args.stop_skip, limit=args.stop_limit)
        check_disjoint(stop_env, {"train": train_env, "reported": valid_env})
    return train_env, valid_env, stop_env


def main(argv: list[str] | None = None) -> int:
    """Build the envs, warm up, train jointly, save and score on the valid split."""
    args = parse_args(argv)
    config = config_from_args(args)
    table = ActionTable.load(args.action_table) if args.action_table else None
    common = env_settings(args, table)

    train_env, valid_env, stop_env = make_envs(args, config, common)
    agent = HAPSAgent(config)
    if args.profile_step is not None:
        profile(agent, train_env, args.profile_step)
        return 0
    valid_table = ActionTable.load(args.valid_table) if args.valid_table else None
    start = time.perf_counter()
    checkpoint = checkpoint_path(args)
    if checkpoint:
        fingerprint = run_fingerprint(
            agent, train_env, stop_env, config.joint_updates, table, valid_table
        )
        say_if_resuming(checkpoint, fingerprint, config.joint_updates)
    agent.fit_env(
        train_env,
        action_table=table,
        valid_env=stop_env,
        valid_table=valid_table,
        checkpoint=checkpoint,
    )
    trained = time.perf_counter() - start
    print(f"Trained in {trained:.0f} s.", file=sys.stderr)
    if args.out:
        print(f"Saved to {agent.save(args.out)}.")
    report(args, score(agent, valid_env, args), trained)
    train_env.close()
    valid_env.close()
    return 0


if __name__ == "__main__":
    # through routing-gym's main: it prints a usage error as one line and knows --debug
    from routing_gym.cli import main as routing_gym_main

    sys.exit(routing_gym_main(["train-haps", *sys.argv[1:]]))

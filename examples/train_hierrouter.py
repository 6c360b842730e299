"""Train HierRouter (PPO) on a routing env, log to TensorBoard, save it and score it.

Outcome-table env (minutes on a CPU, no model runs):

    python examples/train_hierrouter.py --env LLMRouting-Table-v0 --lam balanced \
        --timesteps 20000 --tensorboard-log runs/ --out results/hierrouter_table.zip

Live Teacher–Student env (pre-fill the response cache first with
``python -m routing_gym precompute --env LLMRouting-HotpotQA-v0 --split train ...``):

    python examples/train_hierrouter.py --env LLMRouting-HotpotQA-v0 \
        --config '{"split": "train", "limit": 50}' --eval-config '{"split": "valid", "limit": 50}' \
        --timesteps 2000 --n-envs 8 --vec-env batched

Then ``tensorboard --logdir runs/`` shows ``routing/perf``, ``routing/cost`` and
``routing/share/<model>`` next to PPO's own curves.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import torch

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from agents import HierRouter
from agents.evaluation import evaluate_agent
from agents.hierrouter import VEC_ENVS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="LLMRouting-Table-v0", help="a registered routing env ID")
    parser.add_argument(
        "--lam", default="balanced", help="λ: a number or performance-first / balanced / cost-first"
    )
    parser.add_argument("--config", default="{}", help="env config for training, as JSON")
    parser.add_argument(
        "--eval-config",
        default=None,
        help='env config for scoring, as JSON (default: --config with split "test" on table envs)',
    )
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--vec-env", default="auto", choices=VEC_ENVS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tensorboard-log", default=None, help="TensorBoard folder")
    parser.add_argument("--no-progress-bar", action="store_true")
    parser.add_argument("--out", default=None, help="where to save the trained agent (.zip)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Train, save, and print the held-out scores."""
    args = parse_args(argv)
    torch.set_num_threads(1)  # small MLP policy: threads cost more than they save
    config = {**json.loads(args.config), "lam": args.lam}
    if args.eval_config is not None:
        eval_config = {**json.loads(args.eval_config), "lam": args.lam}
    else:
        eval_config = {**config, "split": "test"} if "Table" in args.env else dict(config)

    agent = HierRouter(
        n_envs=args.n_envs,
        vec_env=args.vec_env,
        seed=args.seed,
        tensorboard_log=args.tensorboard_log,
        progress_bar=not args.no_progress_bar,
    )
    start = time.perf_counter()
    agent.fit(args.env, total_timesteps=args.timesteps, env_kwargs={"config": config})
    print(f"Trained {args.timesteps:,} steps on {args.env} in {time.perf_counter() - start:.0f} s.")
    if args.out:
        print(f"Saved to {agent.save(args.out)}.")

    env = gym.make(args.env, config=eval_config)
    scores = evaluate_agent(agent, env)
    print(
        f"Held-out ({eval_config.get('split', 'default split')}): perf {scores['perf']:.3f}, "
        f"normalized cost {scores['cost']:.3f}, reward {scores['reward']:.3f} over {scores['episodes']} episodes"
    )
    print("Call shares: " + ", ".join(f"{m} {s:.2f}" for m, s in scores["share"].items()))
    env.close()


if __name__ == "__main__":
    main()

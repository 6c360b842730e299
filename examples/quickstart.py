"""A first loop: PPO on the outcome-table env, against kNN and the best fixed model.

Run ``python examples/quickstart.py`` (no data folder needed: the table ships in the package).
Each row is the mean reward on the test questions with its 95% interval; Δ is paired with the
best fixed model over the same questions.
"""

import argparse

import gymnasium as gym
from stable_baselines3 import PPO

import routing_gym  # noqa: F401  (registers the LLMRouting-* IDs)
from agents import FixedRouter, KNNRouter
from routing_gym.evaluation import evaluate_agent
from routing_gym.stats import mean_interval, paired_difference_interval

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--env", default="LLMRouting-Table-v0")
parser.add_argument("--lam", default="balanced", help="a number or a regime name")
parser.add_argument("--timesteps", type=int, default=20_000)
parser.add_argument("--n-steps", type=int, default=2048, help="PPO's steps per update")
args = parser.parse_args()

train = gym.make(args.env, split="train", lam=args.lam)
test = gym.make(args.env, split="test", lam=args.lam)
agents = {
    "PPO": PPO("MlpPolicy", train, n_steps=args.n_steps, seed=0).learn(args.timesteps),
    "kNN": KNNRouter().fit_env(train),
    "best fixed": FixedRouter(rule="best").fit_env(train),
}
rewards = {}
for name, agent in agents.items():
    episodes = evaluate_agent(agent, test, return_episodes=True)["per_episode"]
    rewards[name] = dict(sorted((e["question_id"], e["reward"]) for e in episodes))
baseline = list(rewards["best fixed"].values())
print(f"{args.env}, λ = {args.lam}, test split\n")
print("| router | n | reward [95% CI] | Δ vs best fixed [95% CI] |\n|---|---|---|---|")
for name, by_question in rewards.items():
    values = list(by_question.values())
    delta = paired_difference_interval(values, baseline).format(signed=True)
    print(f"| {name} | {len(values)} | {mean_interval(values).format()} | {delta} |")

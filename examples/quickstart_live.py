"""A first live loop: PPO routes each turn of HotpotQA Teacher–Student episodes between LLMs.

Run ``python examples/quickstart_live.py --data-dir DIR`` (DIR holds ``hotpotqa/``; default
``$ROUTING_GYM_DATA``). It uses the tiny random models, which load in a second but cannot
answer; ``--pool real`` plays the real offline pool (SmolLM2-135M, Qwen2.5-Coder-0.5B and -1.5B)
instead. Each row is the mean reward on the test questions with its 95% interval; Δ is paired
with always-the-first-model over the same questions. Responses are cached in ``--cache``.
"""

import argparse
import json
import os

import gymnasium as gym
from stable_baselines3 import PPO

import routing_gym  # noqa: F401  (registers the LLMRouting-* IDs)
from agents import FixedRouter
from routing_gym.evaluation import evaluate_agent
from routing_gym.llm.spec import DEFAULT_POOL, TINY_POOL
from routing_gym.stats import mean_interval, paired_difference_interval

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--pool", choices=("tiny", "real"), default="tiny")
parser.add_argument("--data-dir", default=os.environ.get("ROUTING_GYM_DATA"))
parser.add_argument("--train-split", default="train")
parser.add_argument("--test-split", default="valid")
parser.add_argument("--limit", type=int, default=20, help="questions per split")
parser.add_argument("--timesteps", type=int, default=256)
parser.add_argument("--cache", default="quickstart_responses.sqlite")
parser.add_argument("--protocol", type=json.loads, default={}, help='e.g. {"search_budget": 1}')
args = parser.parse_args()

models = list(TINY_POOL if args.pool == "tiny" else DEFAULT_POOL)
config = {"models": models, "data_dir": args.data_dir, "limit": args.limit, "cache_path": args.cache,
          "protocol": args.protocol}
train = gym.make("LLMRouting-HotpotQA-v0", config={**config, "split": args.train_split})
test = gym.make("LLMRouting-HotpotQA-v0", config={**config, "split": args.test_split})
ppo = PPO("MultiInputPolicy", train, n_steps=32, batch_size=32, seed=0, verbose=0)
agents = {"PPO": ppo.learn(args.timesteps)}
agents.update({f"always {m}": FixedRouter(model=m).fit_env(test) for m in models})
rewards = {}
for name, agent in agents.items():
    episodes = evaluate_agent(agent, test, return_episodes=True)["per_episode"]
    rewards[name] = dict(sorted((e["question_id"], e["reward"]) for e in episodes))
baseline = list(rewards[f"always {models[0]}"].values())
print(f"LLMRouting-HotpotQA-v0, pool {models}, {args.test_split} split\n")
print(f"| router | n | reward [95% CI] | Δ vs always {models[0]} [95% CI] |\n|---|---|---|---|")
for name, by_question in rewards.items():
    values = list(by_question.values())
    delta = paired_difference_interval(values, baseline).format(signed=True)
    print(f"| {name} | {len(values)} | {mean_interval(values).format()} | {delta} |")

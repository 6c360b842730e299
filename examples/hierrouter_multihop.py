"""HierRouter on the multi-hop env, trained on the depth-2 hop tree and scored against every baseline.

Steps: build (or resume) the exhaustive depth-2 hop tree of the train and held-out queries;
train sb3-contrib's MaskablePPO on the tree's replay env (``MultiHopTableEnv``) once per λ
regime; score on the held-out queries, all from the tree: HierRouter, every single model,
the best fixed two-hop pipeline (chosen on the train queries), Random (its exact expectation
over the tree), the one-shot routers of ``agents/`` choosing the first hop (fitted on the
train queries' first-hop outcomes), and the per-query Oracle over the tree: "Oracle" takes
each query's best-reward path (the bound on reward), "Oracle (quality)" its best-score path
(the bound on quality; a best-reward path may trade quality for cost). Last, the trained
policy runs on the live env (through the response cache) for the held-out queries, and its
rewards must equal the replayed ones. Prints per task and overall quality, normalized cost
and reward of each method at each λ; the last line is one JSON object.

Real pool (the default multi-hop pool, the tasks' own train and test splits):

    python examples/hierrouter_multihop.py --limit 60 --out-dir results/multihop \
        --timesteps 20000

The per-task trees of ``scripts/build_hop_trees.py`` (one file per task and split, read as
one; a task is scored once both of its trees are complete, the others are named as left out),
three PPO seeds, with and without the length feature; the report adds the mean over seeds ±
spread, the paired intervals against the best single model on train and the verdict on
HierRouter's claim (``routing_gym.bench.hierrouter_report``); there is no live check here:

    python examples/hierrouter_multihop.py --trees results/hierrouter3 --seeds 0 1 2 \
        --feature-sets "embedding,task;embedding,task,length" --out-dir results/hierrouter3/report

Tiny random models on the test fixtures (one split, held-out queries chosen by id hash):

    python examples/hierrouter_multihop.py --models tiny-llama,tiny-qwen2 \
        --tasks gsm8k,arc_challenge,mbpp --data-dir tests/data/fixtures --train-split test \
        --heldout-split test --fractions '{"test": 1.0}' --limit 3 --max-new-tokens 8 \
        --timesteps 64 --out-dir /tmp/multihop
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import routing_gym  # noqa: F401  (registers the IDs)
from agents import AGENTS, ONE_SHOT_ROUTERS
from agents.hierrouter import HierRouterConfig
from routing_gym.bench.comparison import multihop_comparison
from routing_gym.bench.hierrouter_report import report as seeded_report
from routing_gym.cost import CostNormalizer, resolve_lambda
from routing_gym.data.splits import assign_split
from routing_gym.envs.features import check_features
from routing_gym.envs.multihop import MULTIHOP_FEATURES, hop_features
from routing_gym.envs.multihop_table import MultiHopTableEnv
from routing_gym.hop_tree import HopTree, build_hop_tree, decode_vector, load_tree_folder
from routing_gym.records import json_digest

LIVE_TOLERANCE = 1e-9


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated pool (default: the multi-hop pool)")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks (default: all six)")
    parser.add_argument("--data-dir", default=None, help="data folder (default: ROUTING_GYM_DATA)")
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--heldout-split", default="test")
    parser.add_argument("--heldout-fraction", type=float, default=0.5,
                        help="when both splits are the same: the share of its queries held out (by id hash)")
    parser.add_argument("--fractions", default=None, help="id-hash split fractions, as JSON")
    parser.add_argument("--limit", type=int, default=None, help="queries per task and split")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--config", default="{}", help="further MultiHopEnv config, as JSON")
    parser.add_argument("--lams", default="performance-first,balanced,cost-first")
    parser.add_argument("--timesteps", type=int, default=20_000, help="MaskablePPO steps per λ")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=128, help="PPO rollout length per env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train (and fit the seeded routers) once per seed (default: --seed)")
    parser.add_argument("--feature-sets", default=None,
                        help="observation features, sets separated by ';' (e.g. 'embedding,task;"
                             "embedding,task,length'); every router runs with each (default: the env's)")
    parser.add_argument("--trees", default=None,
                        help="a folder of per-task, per-split trees (scripts/build_hop_trees.py): "
                             "score its complete tasks; builds nothing, no live check")
    parser.add_argument("--out-dir", default="results/multihop",
                        help="hop trees, response cache and result.json (the last line, indented)")
    parser.add_argument("--cache-path", default=None, help="response cache (default: <out-dir>/responses.sqlite)")
    parser.add_argument("--queries-per-batch", type=int, default=8)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def env_config(args: argparse.Namespace) -> dict[str, Any]:
    """The live env config shared by both splits (greedy, horizon 2)."""
    config: dict[str, Any] = json.loads(args.config)
    if args.models:
        config["models"] = args.models.split(",")
    if args.tasks:
        config["tasks"] = args.tasks.split(",")
    if args.data_dir:
        config["data_dir"] = args.data_dir
    if args.fractions:
        config["fractions"] = json.loads(args.fractions)
    if args.limit is not None:
        config["limit"] = args.limit
    if args.max_new_tokens is not None:
        config["max_new_tokens"] = args.max_new_tokens
    config.setdefault("cache_path", args.cache_path or str(Path(args.out_dir) / "responses.sqlite"))
    config.update(horizon=2, temperature=0.0)
    return config


def build_tree(config: dict[str, Any], split: str, out_dir: Path, batch: int):
    """Build (or resume) the depth-2 tree of one split; the file name carries the config digest."""

    content = {k: v for k, v in config.items() if k not in ("cache_path", "cache_mode", "max_batch_size")}
    digest = json_digest({**content, "split": split})[:12]
    path = out_dir / f"tree-{split}-{digest}.jsonl"
    build_hop_tree(path, {**config, "split": split}, depth=2, queries_per_batch=batch, progress=True)
    return HopTree.load(path)


def folder_queries(args, out_dir: Path) -> tuple[Any, list[str], Any, list[str], dict[str, str]]:
    """The complete tasks of the ``--trees`` folder: (train tree, train ids, held-out tree,
    held-out ids, skipped task -> why); each merged tree is written to ``out_dir`` (the replay
    env reads a file)."""
    given = [flag for flag, value in (("--models", args.models), ("--tasks", args.tasks), ("--limit", args.limit),
                                      ("--fractions", args.fractions), ("--max-new-tokens", args.max_new_tokens))
             if value is not None]
    if given or json.loads(args.config):
        raise ValueError(f"--trees reads the pool, tasks, sizes and config from the tree files; drop "
                         f"{', '.join(given) or '--config'}.")
    if args.heldout_split == args.train_split:
        raise ValueError("--trees needs a --train-split and a --heldout-split that differ.")
    folder = load_tree_folder(args.trees, splits=(args.train_split, args.heldout_split), data_dir=args.data_dir)
    if not folder.tasks:
        raise ValueError(f"no task of {args.trees} has complete {args.train_split} and {args.heldout_split} trees "
                         f"({'; '.join(f'{t}: {why}' for t, why in folder.skipped.items())}).")
    trees = {}
    for split in (args.train_split, args.heldout_split):
        merged = folder.trees[split]
        merged.write(out_dir / f"merged-{split}-{merged.header['config_digest'][:12]}.jsonl")
        trees[split] = merged
    train_tree, heldout_tree = trees[args.train_split], trees[args.heldout_split]
    return train_tree, list(train_tree.queries), heldout_tree, list(heldout_tree.queries), folder.skipped


def split_queries(args, config, out_dir) -> tuple[Any, list[str], Any, list[str]]:
    """(train tree, train ids, held-out tree, held-out ids)."""

    train_tree = build_tree(config, args.train_split, out_dir, args.queries_per_batch)
    if args.heldout_split == args.train_split:
        if not 0 < args.heldout_fraction < 1:
            raise ValueError(f"--heldout-fraction must be in (0, 1), got {args.heldout_fraction}.")
        share = {"train": 1 - args.heldout_fraction, "test": args.heldout_fraction}
        side = {q: assign_split(q, share, salt="multihop-heldout") for q in train_tree.queries}
        train = [q for q in train_tree.queries if side[q] == "train"]
        heldout = [q for q in train_tree.queries if side[q] == "test"]
        heldout_tree = train_tree
    else:
        heldout_tree = build_tree(config, args.heldout_split, out_dir, args.queries_per_batch)
        train, heldout = list(train_tree.queries), list(heldout_tree.queries)
        if train_tree.header["cost_bounds"] != heldout_tree.header["cost_bounds"]:
            raise ValueError("the train and held-out trees have different cost bounds; give --config cost_bounds.")
    if not train or not heldout:
        raise ValueError(f"{len(train)} train and {len(heldout)} held-out queries: both must be non-empty "
                         "(more queries or another --heldout-fraction).")
    return train_tree, train, heldout_tree, heldout


# -- scoring from the tree --------------------------------------------------------------------
class TreeScorer:
    """Rewards, scores and normalized costs of tree paths under one λ."""

    def __init__(self, tree, lam: float):

        self.tree, self.lam = tree, lam
        self.norm = CostNormalizer.from_dict(tree.header["cost_bounds"])
        self.n_models = len(tree.models)

    def outcome(self, question: str, path: tuple[int, ...]) -> tuple[float, float, float]:
        """(score, normalized cost, reward) of stopping after ``path``."""
        node = self.tree.node(question, path)
        cost = float(self.norm(node["cost"]))
        score = float(node["score"])
        return score, cost, score - self.lam * cost

    def paths(self):
        """Every stopping path (length 1 and 2)."""
        models = range(self.n_models)
        return [(i,) for i in models] + list(itertools.product(models, repeat=2))

    def random_expectation(self, question: str) -> tuple[float, float, float]:
        """Exact expectation of the uniform masked policy: a model, then a model or STOP."""
        total = np.zeros(3)
        for first in range(self.n_models):
            branch = [self.outcome(question, (first,))] + [self.outcome(question, (first, second))
                                                           for second in range(self.n_models)]
            total += np.mean(branch, axis=0)
        return tuple(total / self.n_models)

    def oracle(self, question: str) -> tuple[float, float, float]:
        """The best reward over every stopping path of the query (the bound on reward)."""
        return max((self.outcome(question, path) for path in self.paths()), key=lambda o: o[2])

    def quality_oracle(self, question: str) -> tuple[float, float, float]:
        """The best score over every stopping path, the cheapest among ties (the bound on quality)."""
        return max((self.outcome(question, path) for path in self.paths()), key=lambda o: (o[0], -o[1]))


def summarize(tree, questions: list[str], outcomes: list[tuple[float, float, float]]) -> dict[str, dict]:
    """Per task and overall mean quality, normalized cost and reward."""
    rows: dict[str, list] = {}
    for question, outcome in zip(questions, outcomes):
        rows.setdefault(tree.queries[question]["task"], []).append(outcome)
        rows.setdefault("overall", []).append(outcome)
    return {key: dict(zip(("quality", "cost", "reward"), np.mean(values, axis=0).tolist()))
            for key, values in rows.items()}


def per_query_outcomes(tree, questions: list[str], outcomes_of: dict[str, list]) -> dict[str, Any]:
    """The held-out queries, their tasks and each method's quality, cost and reward on each one
    (the tables' intervals are computed from these)."""
    keys = ("quality", "cost", "reward")
    return {"question_ids": list(questions), "tasks": [tree.queries[q]["task"] for q in questions],
            "methods": {method: {key: [float(o[i]) for o in outcomes] for i, key in enumerate(keys)}
                        for method, outcomes in outcomes_of.items()}}


def fixed_policy_outcomes(scorer: TreeScorer, questions, path) -> list:
    return [scorer.outcome(q, path) for q in questions]


# -- HierRouter: MaskablePPO on the replay env --------------------------------------------------
def train_ppo(tree_path: str, train_ids: list[str], lam: float, args, seed: int | None = None,
              features=MULTIHOP_FEATURES):
    """MaskablePPO on the tree's replay env over the train queries (HierRouter's defaults)."""

    seed = args.seed if seed is None else seed
    defaults = HierRouterConfig()
    vec = make_vec_env(lambda: MultiHopTableEnv(tree_path=tree_path, lam=lam, question_ids=train_ids,
                                                features=list(features)),
                       n_envs=args.n_envs, seed=seed)
    model = MaskablePPO(
        "MultiInputPolicy", vec, learning_rate=defaults.learning_rate, n_steps=args.n_steps,
        batch_size=min(defaults.batch_size, args.n_steps * args.n_envs), n_epochs=defaults.n_epochs,
        gamma=defaults.gamma, gae_lambda=defaults.gae_lambda, clip_range=defaults.clip_range,
        ent_coef=defaults.ent_coef, vf_coef=defaults.vf_coef, max_grad_norm=defaults.max_grad_norm,
        policy_kwargs={"net_arch": list(defaults.net_arch)}, seed=seed, device="cpu")
    model.learn(total_timesteps=args.timesteps)
    vec.close()
    return model


def run_policy(env, model, reset: Callable[[], Any]) -> tuple[list[int], float, dict]:
    """One deterministic masked episode; (actions, episode reward, final info)."""
    obs, _ = reset()
    actions, total, done, info = [], 0.0, False, {}
    while not done:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        actions.append(int(action))
        obs, reward, done, _, info = env.step(int(action))
        total += reward
    return actions, total, info


def ppo_on_tree(tree_path: str, model, questions: list[str], lam: float,
                features=MULTIHOP_FEATURES) -> tuple[list, dict[str, tuple]]:
    """The policy's held-out outcomes on the replay env, and each query's (actions, reward, perf, cost)."""

    env = MultiHopTableEnv(tree_path=tree_path, lam=lam, question_ids=questions, shuffle=False,
                           features=list(features))
    outcomes, episodes = [], {}
    for q in questions:
        actions, reward, info = run_policy(env, model, lambda q=q: env.reset(options={"question_id": q}))
        outcomes.append((info["perf"], info["normalized_cost"], reward))
        episodes[q] = (actions, reward, info["perf"], info["cost"])
    return outcomes, episodes


def live_check(config: dict, split: str, runs: list[tuple[float, tuple, Any, dict]]) -> dict[str, Any]:
    """Run each trained policy (λ, features, model, its replayed episodes) on the live env for
    the held-out queries; compare with the replay."""

    mismatches, episodes, hits = [], 0, 0
    for features in dict.fromkeys(features for _, features, _, _ in runs):
        env = gym.make("LLMRouting-MultiHop-v0", config={**config, "split": split, "shuffle": False,
                                                         "features": list(features)}).unwrapped
        try:
            found = _live_episodes(env, [run for run in runs if run[1] == features])
        finally:
            env.close()
        mismatches += found["mismatches"]
        episodes += found["episodes"]
        hits += found["cache_hits"]
    return {"episodes": episodes, "mismatches": mismatches, "equal": not mismatches, "cache_hits": hits}


def _live_episodes(env, runs) -> dict[str, Any]:
    """One env's share of ``live_check``: the runs of its feature set."""
    index_of = {str(example.id): i for i, (_, example) in enumerate(env.examples)}
    mismatches, episodes = [], 0
    for lam, _features, model, replayed in runs:
        env.configure({"lam": lam})
        for q, (actions, reward, perf, cost) in replayed.items():
            got = run_policy(env, model, lambda q=q: env.reset(options={"index": index_of[q]}))
            live_actions, live_reward, info = got
            episodes += 1
            if (live_actions != actions or abs(live_reward - reward) > LIVE_TOLERANCE
                    or info["perf"] != perf or abs(info["cost"] - cost) > LIVE_TOLERANCE):
                mismatches.append({"lam": lam, "question_id": q, "replay": [actions, reward, perf, cost],
                                   "live": [live_actions, live_reward, info["perf"], info["cost"]]})
    stats = env.pool.cache.stats() if env.pool.cache is not None else {}
    return {"episodes": episodes, "mismatches": mismatches,
            "cache_hits": int(sum(s.get("hits", 0) for s in stats.values()))}


def first_hop_shares(episodes: dict[str, tuple], models: list[str]) -> dict[str, float]:
    """Each model's share of the first hops of ``episodes`` (``ppo_on_tree``'s second value)."""
    firsts = [actions[0] for actions, *_ in episodes.values()]
    return {name: firsts.count(i) / len(firsts) for i, name in enumerate(models)}


# -- one-shot routers on the first hop ---------------------------------------------------------
def first_hop_data(scorer: TreeScorer, questions: list[str], features=MULTIHOP_FEATURES):
    """Root features, first-hop scores and normalized costs (n × M) of ``questions``. The features
    are what the replay env observes at the root, in ``flatten_observation``'s order: the
    embedding, then the task one-hot and the length where ``features`` names them."""

    def root(q: str) -> np.ndarray:
        row = scorer.tree.queries[q]
        extra = hop_features(row["task"], row.get("question_chars"), features, str(scorer.tree.path))
        return np.concatenate([decode_vector(row["nodes"][()]["context"]),
                               *(extra[key] for key in ("task", "length") if key in extra)])

    x = np.stack([root(q) for q in questions])
    outcomes = np.array([[scorer.outcome(q, (i,))[:2] for i in range(scorer.n_models)] for q in questions])
    return x, outcomes[:, :, 0], outcomes[:, :, 1]


def one_shot_router(name: str, lam: float, n_train: int, seed: int):
    """The router ``name`` of agents/, sized for ``n_train`` queries."""

    overrides: dict[str, Any] = {"lam": lam}
    if name == "knn":
        overrides["k"] = min(40, n_train)
    if name == "mlp":
        overrides["early_stopping"] = n_train >= 50  # sklearn's held-out tenth needs enough rows
    if "seed" in AGENTS[name].config_keys():
        overrides["seed"] = seed
    return AGENTS[name](**overrides)


# -- main -------------------------------------------------------------------------------------
def run_labels(seeds: list[int], feature_sets: list[tuple[str, ...]]):
    """(group label suffix, method label suffix) of each (features, seed): a label names the
    features and the seed only where the run has several."""
    def features_label(features):
        return f" [{'+'.join(features)}]" if len(feature_sets) > 1 else ""

    def seed_label(seed):
        return f" seed {seed}" if len(seeds) > 1 else ""

    return features_label, seed_label


def parse_feature_sets(text: str | None) -> list[tuple[str, ...]]:
    """``--feature-sets``: feature lists separated by ';', names by ','."""
    if text is None:
        return [tuple(MULTIHOP_FEATURES)]
    sets = [check_features([name.strip() for name in part.split(",") if name.strip()], "--feature-sets")
            for part in text.split(";") if part.strip()]
    if not sets or len(set(sets)) != len(sets):
        raise ValueError(f"--feature-sets must name at least one set, each once; got {text!r}.")
    return sets


def largest_model(tree) -> str:
    """The pool's model with the highest price (output, then input per token): the notional
    prices scale with parameter count."""
    prices = tree.header["config"].get("prices") or {}
    if set(prices) != set(tree.models):
        raise ValueError(f"the tree header has prices for {sorted(prices)}, its models are {tree.models}.")
    ranked = sorted(tree.models, key=lambda m: (prices[m]["output_per_m"], prices[m]["input_per_m"]), reverse=True)
    top = prices[ranked[0]]
    if len(ranked) > 1 and prices[ranked[1]] == top:
        raise ValueError(f"{ranked[0]} and {ranked[1]} have the same price: no single largest model.")
    return ranked[0]


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or read), train, score, check; returns the result object."""

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, str] = {}
    seeds = list(dict.fromkeys(args.seeds if args.seeds else [args.seed]))
    feature_sets = parse_feature_sets(args.feature_sets)
    if args.trees:
        config = None
        train_tree, train_ids, tree, heldout_ids, skipped = folder_queries(args, out_dir)
    else:
        config = env_config(args)
        train_tree, train_ids, tree, heldout_ids = split_queries(args, config, out_dir)

    # The trees are built with every core (LLM batches); the small PPO policy runs faster on one.
    torch.set_num_threads(1)
    models = tree.models
    features_label, seed_label = run_labels(seeds, feature_sets)
    lams = [resolve_lambda(name) for name in args.lams.split(",")]
    results: dict[str, dict[str, dict]] = {}
    per_query: dict[str, dict[str, Any]] = {}  # per λ: each method's outcome on each held-out query
    runs, labels, best_singles, first_hops = [], {}, {}, {}
    for lam in lams:
        train_scorer, scorer = TreeScorer(train_tree, lam), TreeScorer(tree, lam)
        outcomes_of: dict[str, list] = {}  # method -> its (quality, cost, reward) on each held-out query
        groups: dict[str, list[str]] = {}  # a router's label -> its method of each seed
        first_hops[str(lam)] = {}
        for features in feature_sets:
            group = f"HierRouter (MaskablePPO){features_label(features)}"
            for seed in seeds:
                method = group + seed_label(seed)
                model = train_ppo(str(train_tree.path), train_ids, lam, args, seed, features)
                outcomes, replayed = ppo_on_tree(str(tree.path), model, heldout_ids, lam, features)
                runs.append((lam, features, model, replayed))
                # what the policy learned: its first hop on the queries it trained on and on held-out ones
                _, trained_on = ppo_on_tree(str(train_tree.path), model, train_ids, lam, features)
                first_hops[str(lam)][method] = {"train": first_hop_shares(trained_on, models),
                                                "heldout": first_hop_shares(replayed, models)}
                outcomes_of[method] = outcomes
                groups.setdefault(group, []).append(method)
        for i, name in enumerate(models):
            outcomes_of[f"single {name}"] = fixed_policy_outcomes(scorer, heldout_ids, (i,))
        best_singles[str(lam)] = max(
            models, key=lambda m: np.mean([train_scorer.outcome(q, (models.index(m),))[2] for q in train_ids]))
        pairs = list(itertools.product(range(len(models)), repeat=2))
        best = max(pairs, key=lambda p: np.mean([train_scorer.outcome(q, p)[2] for q in train_ids]))
        labels[lam] = f"{models[best[0]]} -> {models[best[1]]}"
        outcomes_of["best two-hop"] = fixed_policy_outcomes(scorer, heldout_ids, best)
        outcomes_of["Random"] = [scorer.random_expectation(q) for q in heldout_ids]
        for features in feature_sets:
            x_train, s_train, c_train = first_hop_data(train_scorer, train_ids, features)
            x_test, _, _ = first_hop_data(scorer, heldout_ids, features)
            for name in ONE_SHOT_ROUTERS:
                group = f"{name} (first hop){features_label(features)}"
                # a router without a seed gives one result: fitting it again would repeat it
                router_seeds = seeds if "seed" in AGENTS[name].config_keys() else seeds[:1]
                for seed in router_seeds:
                    method = group + (seed_label(seed) if len(router_seeds) > 1 else "")
                    router = one_shot_router(name, lam, len(train_ids), seed)
                    router.fit(x_train, s_train, c_train, models=models)
                    arms = router.select_arms(x_test)
                    outcomes_of[method] = [scorer.outcome(q, (int(a),)) for q, a in zip(heldout_ids, arms)]
                    groups.setdefault(group, []).append(method)
        outcomes_of["Oracle"] = [scorer.oracle(q) for q in heldout_ids]
        outcomes_of["Oracle (quality)"] = [scorer.quality_oracle(q) for q in heldout_ids]
        results[str(lam)] = {method: summarize(tree, heldout_ids, o) for method, o in outcomes_of.items()}
        per_query[str(lam)] = per_query_outcomes(tree, heldout_ids, outcomes_of)
        per_query[str(lam)]["groups"] = {g: m for g, m in groups.items() if m != [g]}
    result = {"models": models, "train_queries": len(train_ids), "heldout_queries": len(heldout_ids),
              "tasks": sorted({tree.queries[q]["task"] for q in heldout_ids}), "timesteps": args.timesteps,
              "seeds": seeds, "feature_sets": [list(f) for f in feature_sets],
              "best_two_hop": {str(k): v for k, v in labels.items()}, "best_single": best_singles,
              "results": results, "per_query": per_query, "ppo_first_hop": first_hops}
    try:
        result["largest_model"] = largest_model(tree)
    except ValueError as exc:  # hand-made trees without prices: no verdict on the cost claim
        result["largest_model"] = None
        result["largest_model_error"] = str(exc)
    if args.trees:
        result.update(trees=str(args.trees), skipped_tasks=skipped,
                      tree_digests={split: t.header["config_digest"] for split, t in
                                    (("train", train_tree), ("heldout", tree))},
                      live_equals_replay=None, live=None)
        return result
    live = live_check(config, args.heldout_split, runs)
    return {**result, "live_equals_replay": live["equal"], "live": live}


def print_tables(result: dict[str, Any]) -> None:
    """Per λ: the interval table (n, 95% CIs, Δ from the best two-hop on train) over the held-out
    queries, then the per-task table (cells quality / normalized cost / reward, means only)."""

    columns = result["tasks"] + ["overall"]
    for lam, table in result["results"].items():
        if "per_query" in result:
            print("\n" + multihop_comparison(result, lam))
        else:
            print(f"\nλ = {lam}: this result keeps no per-query outcomes, so it has no intervals.")
        print(f"\nλ = {lam}  (held-out {result['heldout_queries']} queries; best two-hop = "
              f"{result['best_two_hop'][lam]}; cells: quality / normalized cost / reward, per-task "
              "means without intervals: a task has 13–25 of them)\n")
        print("| method | " + " | ".join(columns) + " |")
        print("|---|" + "---:|" * len(columns))
        for method, cells in table.items():
            row = " | ".join(f"{cells[c]['quality']:.3f} / {cells[c]['cost']:.3f} / {cells[c]['reward']:+.3f}"
                             for c in columns)
            print(f"| {method} | {row} |")
        for method, shares in result["ppo_first_hop"][lam].items():
            print(f"\n{method}'s first hop: " + "; ".join(
                f"{part} queries " + ", ".join(f"{m} {v:.2f}" for m, v in shares[part].items())
                for part in ("train", "heldout")))
    if result.get("skipped_tasks"):
        print("\ntasks left out (trees not complete): "
              + "; ".join(f"{t}: {why}" for t, why in result["skipped_tasks"].items()))
    if len(result.get("seeds", [])) > 1 or len(result.get("feature_sets", [])) > 1 or result.get("trees"):
        print("\n" + seeded_report(result))
    live = result["live"]
    if live is None:
        print("\nno live check: the trees were read from a folder (their builder ran the live env)")
    else:
        print(f"\nlive env vs replay: {live['episodes']} episodes, {len(live['mismatches'])} mismatches, "
              f"{live['cache_hits']} cache hits")


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline; prints the tables and one JSON line; exit 1 if live differs from replay."""
    args = parse_args(argv)
    try:
        result = evaluate(args)
    except Exception as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print_tables(result)
    # Written whole, then renamed: a run stopped here never leaves a half-written result.
    path = Path(args.out_dir) / "result.json"
    path.with_suffix(".tmp").write_text(json.dumps(result, indent=1))
    path.with_suffix(".tmp").replace(path)
    print(json.dumps(result))
    return 0 if result["live_equals_replay"] in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())

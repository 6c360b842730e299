"""One PPO for every λ against one PPO per λ on a two-model outcome table, with intervals.

On a two-model table (``examples/two_model_table.py`` writes one) this trains, with one seed:

* one HierRouter PPO per λ of ``--lams`` (``--steps`` each, the bench's per-regime budget);
* one HierRouter PPO with λ in its observation, trained across ``[0, --lam-max]`` with all
  those steps together, once per way of drawing λ (``--samplings``: ``uniform`` λ, the old
  recipe, and ``uniform-obs`` λ/(1+λ), the recipe of ``routing-gym bench --curves``) and
  per way of scaling its reward (``--reward-scales``: ``none``, or ``1/(1+lam)``),

then records every router's model choice for every test query at every λ of its curve (so the
statistics below can be recomputed without training again) and prints, per curve, the
strong-model share at each λ and RouteLLM's APGR, each with a 95% bootstrap interval over the
test queries, and the paired difference of APGR against the per-λ PPOs (the same resampled
queries for both curves).

    python examples/two_model_table.py --models gemma-2-9b-it \\
        llama-3.1-nemotron-51b-instruct --out results/two_model/llmrouter_pair.csv
    python examples/two_model_lambda.py --table results/two_model/llmrouter_pair.csv \\
        --out results/two_model/llmrouter_pair_lambda.json

docs/results/two_model_lambda.md has the measured curves and every command.

A second run with the same ``--out`` reads the recorded choices and only prints.
``--reuse`` takes the curves of an earlier record of the same table, seed and steps (the
per-λ PPOs and any curve across λ) and trains only the curves it lacks.
``--write-synthetic`` first writes a synthetic two-model table whose right strong share at
each λ is known (``write_break_even_table``) to ``--table``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

import routing_gym  # noqa: F401  (registers the envs)
from agents.hierrouter import HierRouter
from routing_gym.bench import metrics
from routing_gym.bench.curves import policy_lambda_grid
from routing_gym.bench.runner import make_table_env
from routing_gym.outcomes import Outcomes
from routing_gym.routers import TrainingRun
from routing_gym.stats import mean_interval, paired_difference_interval

ENV_ID = "LLMRouting-Table-v0"
SHARE_LAMS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)  # where the report prints the strong share
ENT_COEF = HierRouter.Config.ent_coef


def write_break_even_table(path: Path, n: int = 200) -> Path:
    """A synthetic two-model table whose right strong share at each λ is known.

    Two clusters of 8-d embeddings; the strong model scores 1 and costs 1 (normalized), the
    weak one costs 0 and scores 0.7 on cluster A, 0.9 on cluster B. The strong model is the
    better call on A below λ = 0.3 and on B below λ = 0.1: the right share is 100% below 0.1,
    50% up to 0.3, 0% above. Rows 0–149 train, the rest test.
    """
    rng = np.random.default_rng(0)
    cluster = np.arange(n) % 2
    x = rng.normal(scale=0.1, size=(n, 8))
    x[np.arange(n), cluster] += 1.0
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    lines = ["id,split,embedding,weak,strong,weak|cost,strong|cost"]
    for i in range(n):
        vector = json.dumps([round(float(v), 6) for v in x[i]])
        split = "train" if i < 0.75 * n else "test"
        weak = 0.7 if cluster[i] == 0 else 0.9
        lines.append(f'q{i},{split},"{vector}",{weak},1.0,1e-06,1e-05')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def train(env_config: dict, seed: int, steps: int, ent_coef: float = ENT_COEF) -> HierRouter:
    """HierRouter PPO with the bench's defaults (but ``ent_coef``), on the train split."""
    agent = HierRouter(seed=seed, total_timesteps=steps, ent_coef=ent_coef)
    return agent.learn(TrainingRun(ENV_ID, {**env_config, "split": "train"}, timesteps=steps))


def choices(
    agent: HierRouter, table: str, lam: float, lam_in_obs: bool, copies: int = 1
) -> list[int]:
    """The agent's model for every test query at ``lam`` (λ in the observation, in ``copies``
    entries, or not)."""
    config = {"table": table, "lam_in_obs": lam_in_obs}
    if lam_in_obs:
        config["lam_obs_copies"] = copies
    env = make_table_env(ENV_ID, "test", lam, config)
    agent.adapt_to(env)
    data = Outcomes.from_table_env(env)
    obs = data.features
    if lam_in_obs:
        lam_obs = env.unwrapped.lam_observation()
        obs = {"embedding": obs, "lam": np.repeat(lam_obs[None, :], len(data), axis=0)}
    actions, _ = agent.predict(obs, deterministic=True)
    env.close()
    return [int(a) for a in actions]


def curve_name(
    sampling: str, scale: str, lam_max: float = 2.0, ent_coef: float = ENT_COEF, copies: int = 1
) -> str:
    """The record's name of the curve across λ of one draw, reward scale, λ range, entropy
    coefficient and copies of λ in the observation (the parts left at the first recipe's values
    are left out of the name)."""
    name = f"any-lam-{sampling}" + ("" if scale == "none" else "-scaled")
    name += "" if lam_max == 2.0 else f"-max{lam_max:g}"
    name += "" if ent_coef == ENT_COEF else f"-ent{ent_coef:g}"
    return name + ("" if copies == 1 else f"-copies{copies}")


def reused_curves(path: str | None, args) -> dict:
    """The curves of an earlier record, checked to come from the same table, seed and steps."""
    if path is None:
        return {}
    record = json.loads(Path(path).read_text())
    for key in ("table", "seed", "steps"):
        if record[key] != getattr(args, key):
            raise ValueError(
                f"--reuse {path}: its {key} is {record[key]!r}, this run's is "
                f"{getattr(args, key)!r}"
            )
    lams = sorted(float(k) for k in record["curves"]["per-lam"]["arms"])
    if lams != sorted(float(x) for x in args.lams):
        raise ValueError(f"--reuse {path}: its per-λ PPOs are at λ = {lams}, not --lams")
    return record["curves"]


def run(args) -> dict:
    """Train every router (or read the recorded choices) and return them."""
    out = Path(args.out)
    if out.exists():
        return json.loads(out.read_text())
    lams = [float(x) for x in args.lams]
    record = {"table": args.table, "seed": args.seed, "steps": args.steps, "curves": {}}
    reused = reused_curves(args.reuse, args)
    if reused:
        record["reused_from"] = args.reuse
    per_lam, fit_s = {}, 0.0
    for lam in lams:
        if reused:
            break
        start = time.perf_counter()
        agent = train({"table": args.table, "lam": lam}, args.seed, args.steps)
        fit_s += time.perf_counter() - start
        per_lam[repr(lam)] = choices(agent, args.table, lam, lam_in_obs=False)
        print(f"per-λ PPO at λ={lam:g} trained", flush=True)
    record["curves"] = dict(reused) if reused else {"per-lam": {"arms": per_lam, "fit_s": fit_s}}
    grid = sorted(set(policy_lambda_grid(args.lam_max).tolist()) | set(lams) | set(SHARE_LAMS))
    grid = [lam for lam in grid if lam <= args.lam_max]
    for sampling in args.samplings:
        for scale in args.reward_scales:
            name = curve_name(sampling, scale, args.lam_max, args.ent_coef, args.lam_obs_copies)
            if name in record["curves"]:
                continue
            config = {
                "table": args.table,
                "lam_in_obs": True,
                "lam_range": [0.0, args.lam_max],
                "lam_sampling": sampling,
                "lam_reward_scale": scale,
                "lam_obs_copies": args.lam_obs_copies,
            }
            start = time.perf_counter()
            agent = train(config, args.seed, args.steps * len(lams), args.ent_coef)
            arms = {
                repr(lam): choices(agent, args.table, lam, True, args.lam_obs_copies)
                for lam in grid
            }
            fit_s = time.perf_counter() - start
            record["curves"][name] = {"arms": arms, "fit_s": fit_s}
            print(f"one PPO across λ ({sampling}, reward scale {scale}) trained", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record) + "\n")
    return record


def summarize(record: dict, table: str, resamples: int, seed: int) -> dict:
    """Strong share per λ and APGR of each curve, with 95% bootstrap intervals over queries."""
    env = make_table_env(ENV_ID, "test", 0.0, {"table": table})
    data = Outcomes.from_table_env(env)
    env.close()
    n = len(data)
    singles = data.scores.mean(axis=0)
    weak_i, strong_i = np.argsort(data.costs.mean(axis=0))  # the dearer model is the strong one
    curves = {
        name: {float(k): np.asarray(v) for k, v in c["arms"].items()}
        for name, c in record["curves"].items()
    }

    per_lams = set(curves["per-lam"])

    def apgr(name: str, rows: np.ndarray, same_lams: bool = False) -> float:
        """APGR over the curve's own points, or (``same_lams``) over the per-λ PPOs' λ only."""
        arms = curves[name]
        arms = {lam: a for lam, a in arms.items() if lam in per_lams or not same_lams}
        share = [float(np.mean(a[rows] == strong_i)) for a in arms.values()]
        perf = [float(data.scores[rows, a[rows]].mean()) for a in arms.values()]
        s = data.scores[rows]
        weak, strong = s[:, weak_i].mean(), s[:, strong_i].mean()
        if max(share) == min(share) or strong <= weak:  # one share, or no gap: no APGR
            return float("nan")
        return metrics.routellm_apgr(share, perf, weak, strong)

    def interval(statistic) -> list[float] | None:
        """95% percentile interval of a whole-curve statistic over resampled queries.

        A resample where the strong model is not better than the weak one has no APGR (its
        denominator is <= 0): it is left out of the percentiles (and counted in ``undefined``).
        """
        if not np.isfinite(statistic(np.arange(n))):
            return None
        result = stats.bootstrap(
            (np.arange(n),),
            lambda idx: statistic(np.asarray(idx, dtype=np.int64)),
            vectorized=False,
            n_resamples=resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        values = np.asarray(result.bootstrap_distribution, dtype=np.float64)
        undefined.append(int(np.sum(~np.isfinite(values))))
        return [float(v) for v in np.nanpercentile(values, [2.5, 97.5])]

    undefined: list[int] = []
    everything = np.arange(n)

    def reward(arms: np.ndarray, lam: float) -> np.ndarray:
        return data.scores[everything, arms] - lam * data.costs[everything, arms]
    out = {
        "queries": n,
        "weak": data.models[weak_i],
        "strong": data.models[strong_i],
        "singles": {m: float(singles[i]) for i, m in enumerate(data.models)},
        "curves": {},
    }
    for name, arms in curves.items():
        shares = {}
        for lam, a in arms.items():
            if lam in SHARE_LAMS or name == "per-lam":
                share = mean_interval((a == strong_i).astype(float))
                shares[repr(lam)] = {
                    "share": share.estimate,
                    "ci": [share.low, share.high],
                    "perf": float(data.scores[everything, a].mean()),
                }
        entry = {
            "share": shares,
            "share_range": [
                float(min(np.mean(a == strong_i) for a in arms.values())),
                float(max(np.mean(a == strong_i) for a in arms.values())),
            ],
            "apgr": apgr(name, everything),
            "apgr_ci": interval(lambda idx, c=name: apgr(c, idx)),
        }
        if name != "per-lam":
            # at each λ of the per-λ PPOs: reward (perf − λ·cost) minus theirs, query by query
            entry["reward_minus_per_lam"] = {}
            for key, theirs in record["curves"]["per-lam"]["arms"].items():
                lam, mine = float(key), arms[float(key)]
                theirs = reward(np.asarray(theirs), lam)
                diff = paired_difference_interval(reward(mine, lam), theirs)
                entry["reward_minus_per_lam"][key] = [diff.estimate, diff.low, diff.high]
            entry["apgr_minus_per_lam"] = entry["apgr"] - apgr("per-lam", everything)
            entry["apgr_minus_per_lam_ci"] = interval(
                lambda idx, c=name: apgr(c, idx) - apgr("per-lam", idx)
            )
            # the same λ as the per-λ PPOs: APGR is a mean over the share range a curve
            # covers, and λ up to --lam-max reaches low shares, where every router's PGR is low
            entry["apgr_same_lams"] = apgr(name, everything, same_lams=True)
            entry["apgr_same_lams_ci"] = interval(lambda idx, c=name: apgr(c, idx, True))
            entry["apgr_same_lams_minus_per_lam"] = entry["apgr_same_lams"] - apgr(
                "per-lam", everything
            )
            entry["apgr_same_lams_minus_per_lam_ci"] = interval(
                lambda idx, c=name: apgr(c, idx, True) - apgr("per-lam", idx)
            )
        out["curves"][name] = entry
    out["resamples"] = resamples
    out["undefined_resamples_max"] = max(undefined, default=0)
    return out


def print_summary(summary: dict) -> None:
    """A readable table per curve, then the summary as one JSON line."""
    print(
        f"{summary['queries']} test queries; weak {summary['weak']} "
        f"{summary['singles'][summary['weak']]:.3f}, strong {summary['strong']} "
        f"{summary['singles'][summary['strong']]:.3f}"
    )
    for name, c in summary["curves"].items():
        if c["apgr_ci"] is None:
            line = f"{name:24s} APGR undefined (one strong share)"
        else:
            lo, hi = c["apgr_ci"]
            line = f"{name:24s} APGR {c['apgr']:.3f} [{lo:.3f}, {hi:.3f}]"
        if c.get("apgr_minus_per_lam_ci") is not None:
            lo, hi = c["apgr_minus_per_lam_ci"]
            line += f"  − per-λ {c['apgr_minus_per_lam']:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        lo, hi = c["share_range"]
        print(line + f"  strong share swept {100 * lo:.0f}–{100 * hi:.0f}%")
        if c.get("apgr_same_lams_ci") is not None:
            lo, hi = c["apgr_same_lams_ci"]
            dlo, dhi = c["apgr_same_lams_minus_per_lam_ci"]
            print(
                f"{'':24s} at the per-λ PPOs' λ only: APGR {c['apgr_same_lams']:.3f} "
                f"[{lo:.3f}, {hi:.3f}]  − per-λ {c['apgr_same_lams_minus_per_lam']:+.3f} "
                f"[{dlo:+.3f}, {dhi:+.3f}]"
            )
        for lam, s in c["share"].items():
            text = (
                f"    λ={float(lam):<5g} strong share {100 * s['share']:5.1f}% "
                f"[{100 * s['ci'][0]:.1f}, {100 * s['ci'][1]:.1f}]  perf {s['perf']:.3f}"
            )
            diff = c.get("reward_minus_per_lam", {}).get(lam)
            if diff is not None:
                text += f"  reward − per-λ PPO {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]"
            print(text)
    print(
        f"intervals: 95%, bootstrap over the {summary['queries']} test queries; shares BCa, "
        f"APGR percentile over {summary['resamples']} paired resamples (at most "
        f"{summary['undefined_resamples_max']} without a strong-weak gap left out)"
    )
    print(json.dumps(summary))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="a two-model outcome table")
    parser.add_argument("--out", required=True, help="JSON of every router's choices")
    parser.add_argument("--lams", nargs="+", default=["0", "0.1", "0.5", "1"])
    parser.add_argument("--steps", type=int, default=20_000, help="PPO steps per λ")
    parser.add_argument("--lam-max", type=float, default=2.0)
    parser.add_argument("--samplings", nargs="+", default=["uniform", "uniform-obs"])
    parser.add_argument(
        "--reward-scales", nargs="+", default=["none"], choices=["none", "1/(1+lam)"]
    )
    parser.add_argument(
        "--ent-coef", type=float, default=ENT_COEF, help="entropy coefficient of the PPO across λ"
    )
    parser.add_argument(
        "--lam-obs-copies", type=int, default=1, help="entries of the observation that hold λ"
    )
    parser.add_argument("--reuse", help="an earlier record of this table, seed and steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument(
        "--write-synthetic",
        action="store_true",
        help="first write the synthetic table of known shares to --table (see its docstring)",
    )
    args = parser.parse_args(argv)
    if args.write_synthetic:
        write_break_even_table(Path(args.table))
    print_summary(summarize(run(args), args.table, args.resamples, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Curves across the cost knob: exact sweeps, the metrics read off them, and a bring-your-own
two-model table run end to end through ``routing-gym bench --curves``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import routing_gym  # noqa: F401
from agents import KNNRouter, MFRouter
from routing_gym.bench.curves import (
    GAP_LAMS,
    Curve,
    curve_metrics,
    curve_point,
    env_references,
    env_summary,
    lambda_grid,
    router_at_lams,
    sweep_router,
)
from routing_gym.cli import main
from routing_gym.outcomes import Outcomes

WEAK, STRONG = "small-model", "large-model"


def normalized_outcomes(embeddings, scores, costs, models) -> Outcomes:
    """Hand-made rows with normalized costs (ids "0"...)."""
    ids = tuple(str(i) for i in range(len(scores)))
    return Outcomes(models=models, scores=scores, costs=costs, query_ids=ids, features=embeddings,
                    cost_unit="normalized")


def write_two_model_table(path: Path, n: int = 90, seed: int = 0) -> Path:
    """A synthetic two-model outcome table in the documented wide CSV format.

    8-d embeddings; the large model answers 85% of queries, the small one those whose first
    coordinate is high (a pattern a router can learn); the large model costs 6× as much.
    Explicit splits: the first 50 rows train, 10 valid, the rest test.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    small = (x[:, 0] + 0.15 * rng.normal(size=n) > 0.1).astype(int)
    large = (rng.random(n) < 0.85).astype(int)
    length = 1.0 + np.abs(x[:, 1])
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "split", "embedding", WEAK, STRONG, f"{WEAK}|cost", f"{STRONG}|cost"]
        )
        for i in range(n):
            split = "train" if i < 50 else "valid" if i < 60 else "test"
            writer.writerow(
                [
                    f"q{i}",
                    split,
                    json.dumps([round(float(v), 6) for v in x[i]]),
                    small[i],
                    large[i],
                    f"{1e-5 * length[i]:.9f}",
                    f"{6e-5 * length[i]:.9f}",
                ]
            )
    return path


@pytest.fixture(scope="module")
def two_model_csv(tmp_path_factory) -> Path:
    return write_two_model_table(tmp_path_factory.mktemp("byo") / "two_models.csv")


def table_env(table: Path, split: str, **config) -> gym.Env:
    return gym.make("LLMRouting-Table-v0", table=str(table), split=split, **config)


# ---------------------------------------------------------------- sweeps


def test_curve_point_means_and_call_shares():
    data = normalized_outcomes(
        embeddings=np.zeros((4, 2), np.float32),
        scores=np.array([[0, 1], [1, 1], [0, 0], [1, 0]], float),
        costs=np.array([[0.1, 0.9]] * 4),
        models=("a", "b"),
    )
    point = curve_point(data, np.array([1, 0, 0, 1]), knob=0.3)
    # chosen scores 1, 1, 0, 0 -> 0.5; costs 0.9, 0.1, 0.1, 0.9 -> 0.5; half the calls to each
    assert point == {"knob": 0.3, "cost": 0.5, "perf": 0.5, "share": {"a": 0.5, "b": 0.5}}
    kept = curve_point(data, np.array([1, 0, 0, 1]), knob=0.3, per_query=True)["per_query"]
    assert kept == {"perf": [1.0, 1.0, 0.0, 0.0], "cost": [0.9, 0.1, 0.1, 0.9]}
    # the Oracle at λ = 0 takes the better model, ties to the cheaper one: a, a, a, a
    assert data.oracle_arms(0.0).tolist() == [1, 0, 0, 0]


def test_an_estimate_router_sweep_is_the_router_at_each_lambda(two_model_csv):
    knn = KNNRouter(k=5).fit_env(table_env(two_model_csv, "train"))
    data = Outcomes.from_table_env(table_env(two_model_csv, "test"))
    lams = [0.0, 0.1, 0.5, 1.0, 3.0]
    knob, points = sweep_router(knn, data, lams)
    assert knob == "λ"
    for point, at in zip(points, router_at_lams(knn, data, lams).values()):
        per_query = at.pop("per_query")  # the points at a λ keep each query's outcome
        assert point == at  # one estimate, one argmax per λ == select_arms at that λ
        assert len(per_query["perf"]) == len(data)
        assert np.mean(per_query["perf"]) == pytest.approx(at["perf"])
        assert np.mean(per_query["cost"]) == pytest.approx(at["cost"])
    assert knn.config.lam is None  # the router's own λ setting is restored


def test_two_model_sweeps_cover_every_share_of_strong_calls(two_model_csv):
    train, test = table_env(two_model_csv, "train"), table_env(two_model_csv, "test")
    data = Outcomes.from_table_env(test)
    knn = KNNRouter(k=5).fit_env(train)
    assert lambda_grid(two_model=True).min() < 0 < lambda_grid(two_model=True).max()
    _, points = sweep_router(knn, data)
    shares = [p["share"][STRONG] for p in points]
    assert min(shares) == 0.0 and max(shares) == 1.0
    mf = MFRouter(epochs=2, dim=8).fit_env(train)
    knob, points = sweep_router(mf, data, bins=10)
    shares = [p["share"][STRONG] for p in points]
    assert knob == "threshold α" and min(shares) == 0.0 and max(shares) == 1.0
    # RouteLLM's rule on two models: strong iff P(strong wins) >= α
    win = mf.threshold_values(data.features)[:, 0]
    alpha = float(np.median(win))
    strong = STRONG == data.models[1]
    chosen = mf.select_arms_at(data.features, alpha)
    assert np.array_equal(chosen == (1 if strong else 0), win >= alpha)


def test_a_router_fit_on_another_pool_is_refused(two_model_csv):
    knn = KNNRouter(k=5).fit_env(gym.make("LLMRouting-Table-GSM8K-v0", split="train"))
    data = Outcomes.from_table_env(table_env(two_model_csv, "test"))
    with pytest.raises(ValueError, match="was fit on models"):
        sweep_router(knn, data)


# ---------------------------------------------------------------- metrics of a curve


def test_curve_metrics_on_a_hand_made_two_model_curve():
    # 4 queries; weak model perf 0.5 at cost 0.1, strong 0.75 at cost 0.5; oracle rewards differ
    data = normalized_outcomes(
        embeddings=np.zeros((4, 2), np.float32),
        scores=np.array([[1, 1], [0, 1], [1, 0], [0, 1]], float),
        costs=np.array([[0.1, 0.5]] * 4),
        models=("weak", "strong"),
    )
    refs = env_references(data)
    assert (refs.weak, refs.strong) == ("weak", "strong") and refs.two_model
    points = [
        {"knob": 0, "cost": 0.1, "perf": 0.5, "share": {"weak": 1.0, "strong": 0.0}},
        {"knob": 1, "cost": 0.3, "perf": 0.75, "share": {"weak": 0.5, "strong": 0.5}},
        {"knob": 2, "cost": 0.5, "perf": 0.75, "share": {"weak": 0.0, "strong": 1.0}},
    ]
    # at λ = 0 the router plays the middle point: reward 0.75; best single 0.75 (strong),
    # oracle 1.0 (every query has a model that scores 1) -> gap captured 0
    at = {0.0: points[1], 0.5: points[1]}
    m = curve_metrics(Curve("r", "R", "λ", points, at), refs)
    # APGR: trapz over share 0, 0.5, 1 of 0.5, 0.75, 0.75 = 0.3125 + 0.375 = 0.6875;
    # (0.6875 − 0.5) / (0.75 − 0.5) = 0.75
    assert m["apgr"] == pytest.approx(0.75)
    assert m["cpt50"] == pytest.approx(0.25)  # target 0.625: halfway from share 0 to 0.5
    assert m["strong_share_range"] == [0.0, 1.0]
    # AIQ over [0, 0.5]: 0 below 0.1, trapezoid 0.1..0.3 = 0.125, flat 0.75 on 0.3..0.5 = 0.15
    assert m["aiq"] == pytest.approx((0.125 + 0.15) / 0.5)
    assert m["gap_lam0"] == pytest.approx(0.0)
    # at λ = 0.5: router 0.75 − 0.15 = 0.6; best single: weak 0.5 − 0.05 = 0.45 vs strong
    # 0.75 − 0.25 = 0.5 -> 0.5; oracle per query max(score − 0.5·cost): 0.95, 0.75, 0.95, 0.75
    # -> 0.85; gap captured (0.6 − 0.5) / (0.85 − 0.5)
    assert m["gap_lam0.5"] == pytest.approx(0.1 / 0.35)
    assert GAP_LAMS == (0.0, 0.5)


def test_one_ppo_across_lam_is_scored_at_the_lams_of_the_per_lam_ppos():
    # APGR is a mean PGR over the share range a curve covers: a PPO across λ swept to λ = 2
    # also covers low shares that the per-λ PPOs (λ = 0.1, 0.5, 1) never reach
    data = normalized_outcomes(
        embeddings=np.zeros((4, 2), np.float32),
        scores=np.array([[1, 1], [0, 1], [1, 0], [0, 1]], float),
        costs=np.array([[0.1, 0.5]] * 4),
        models=("weak", "strong"),
    )

    def point(knob, strong_share, perf):
        share = {"weak": 1.0 - strong_share, "strong": strong_share}
        return {"knob": knob, "cost": 0.1 + 0.4 * strong_share, "perf": perf, "share": share}

    per_lam = [point(0.1, 1.0, 0.75), point(0.5, 0.5, 0.75), point(1.0, 0.25, 0.625)]
    # the same points at those λ, a point at λ = 0.3 between them, and two beyond λ = 1
    across = [
        point(0.0, 1.0, 0.75),
        point(0.1, 1.0, 0.75),
        point(0.30000000000000004, 0.75, 0.75),
        point(0.5, 0.5, 0.75),
        point(1.0, 0.25, 0.625),
        point(1.5, 0.1, 0.5),
        point(2.0, 0.0, 0.5),
    ]
    by_seed = {
        0: [
            Curve("hierrouter-per-lam", "per λ", "λ (trained at each)", per_lam, {}),
            Curve("hierrouter-any-lam", "across λ", "λ (in the observation)", across, {}),
        ]
    }
    curves = {c["name"]: c for c in env_summary(data, by_seed)["curves"]}
    mine, theirs = curves["hierrouter-any-lam"]["metrics"], curves["hierrouter-per-lam"]["metrics"]
    # per λ: trapz over shares 0.25, 0.5, 1 of 0.625, 0.75, 0.75 = 0.171875 + 0.375 = 0.546875;
    # (0.546875 − 0.5·0.75) / (0.25·0.75) = 0.916...
    assert theirs["apgr"] == pytest.approx((0.546875 - 0.375) / 0.1875)
    assert "apgr_knobs" not in theirs
    assert mine["apgr_knobs"] == [0.1, 0.5, 1.0]
    assert mine["apgr"] == pytest.approx(theirs["apgr"])
    assert mine["strong_share_range"] == theirs["strong_share_range"] == [0.25, 1.0]
    # over every point (shares 0–100%): trapz 0.05 + 0.084375 + 0.171875 + 0.1875 + 0.1875
    assert mine["apgr_all_points"] == pytest.approx((0.68125 - 0.5) / 0.25)
    assert mine["apgr_all_points"] < mine["apgr"]
    # without per-λ PPOs in the seed, its APGR is over its own points
    alone = env_summary(data, {0: [by_seed[0][1]]})["curves"][0]["metrics"]
    assert alone["apgr"] == pytest.approx(mine["apgr_all_points"])
    assert "apgr_knobs" not in alone


# ---------------------------------------------------------------- bring your own two-model table


def test_bring_your_own_two_model_table_end_to_end(two_model_csv, tmp_path, capsys):
    out = tmp_path / "bench"
    args = [
        "bench",
        "--agents",
        "knn",
        "routellm-mf",
        "fixed-cheapest",
        "hierrouter",
        "oracle",
        "--envs",
        "LLMRouting-Table-v0",
        "--env-config",
        json.dumps({"table": str(two_model_csv)}),
        "--regimes",
        "balanced",
        "cost-first",
        "--seeds",
        "0",
        "--timesteps",
        "256",
        "--agent-config",
        json.dumps(
            {
                "knn": {"k": 5},
                "routellm-mf": {"epochs": 2, "dim": 8},
                "hierrouter": {"n_steps": 64, "batch_size": 64, "n_envs": 2},
            }
        ),
        "--out",
        str(out),
        "--no-progress",
        "--jobs",
        "1",
        "--curves",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "fitting knn" in printed and "APGR ↑" in printed and "CPT(50%) ↓" in printed
    summary = json.loads((out / "curves.json").read_text())
    env = summary["envs"]["LLMRouting-Table-v0"]
    assert env["models"] == [WEAK, STRONG] and env["strong"] == STRONG and env["weak"] == WEAK
    curves = {c["name"]: c for c in env["curves"]}
    assert set(curves) == {
        "knn",
        "routellm-mf",
        "hierrouter-per-lam",
        "hierrouter-any-lam",
        "oracle",
    }
    for name in ("knn", "routellm-mf", "oracle"):
        m = curves[name]["metrics"]
        assert m["strong_share_range"] == [0.0, 1.0]
        # the JSON's APGR and CPT(50%) are RouteLLM's, worked out here from the curve's own points:
        # sorted by strong share, APGR = (trapezoid area - weak·width) / ((strong - weak)·width),
        # CPT(50%) = the share where the curve reaches weak + 0.5·(strong - weak)
        points = sorted(curves[name]["points"]["0"], key=lambda p: p["share"][STRONG])
        shares = np.array([p["share"][STRONG] for p in points])
        perfs = np.array([p["perf"] for p in points])
        weak, strong = env["singles"][WEAK]["perf"], env["singles"][STRONG]["perf"]
        area = float(np.sum(np.diff(shares) * (perfs[1:] + perfs[:-1]) / 2))
        width = shares[-1] - shares[0]
        assert m["apgr"] == pytest.approx((area - weak * width) / ((strong - weak) * width))
        assert m["cpt50"] == pytest.approx(float(np.interp(weak + 0.5 * (strong - weak), perfs, shares)))
    # the Oracle bounds every router from above
    assert curves["oracle"]["metrics"]["apgr"] >= max(
        curves[n]["metrics"]["apgr"] for n in ("knn", "routellm-mf")
    )
    assert curves["oracle"]["metrics"]["gap_lam0"] == pytest.approx(1.0)
    # one PPO per regime gives two points; the PPO trained across λ is swept over a grid
    assert len(curves["hierrouter-per-lam"]["points"]["0"]) == 2
    assert len(curves["hierrouter-any-lam"]["points"]["0"]) > 10
    # ... and read at the per-λ PPOs' λ for APGR, as they are
    assert curves["hierrouter-any-lam"]["metrics"]["apgr_knobs"] == [0.5, 1.0]
    assert "read at the λ of the per-λ PPOs (0.5, 1)" in (out / "curves.md").read_text()
    rows = list(csv.DictReader((out / "curves.csv").open()))
    assert {r["curve"] for r in rows} >= {"single", "knn", "oracle", "hierrouter-any-lam"}
    for r in rows:
        assert float(r[f"share_{WEAK}"]) + float(r[f"share_{STRONG}"]) == pytest.approx(1.0)
    # the paired comparison at each λ of the gap captured, against the best single model on train
    assert set(env["best_fixed_on_train"]) == {repr(0.0), repr(0.5)}
    markdown = (out / "curves.md").read_text()
    assert "against the best fixed model on train" in markdown
    assert "| kNN (RouterBench) | " in markdown
    assert "Δ reward vs best fixed on train [95% CI]" in markdown
    # the per-λ PPO at balanced comes from its bench row's per-question values
    assert "| HierRouter (PPO), one PPO per λ | " in markdown.split("λ = 0.5: ")[1]
    with Image.open(out / "curves.png") as image:
        assert image.size[0] > 1000  # two panels: cost, and the share of strong calls

    # a second run reads the fitted curves back: nothing is fitted or trained again
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "fitting" not in again and "one PPO across λ" not in again
    assert json.loads((out / "curves.json").read_text())["envs"] == summary["envs"]


def test_curves_comparison_is_paired_against_the_best_fixed_model_on_train():
    from routing_gym.bench.curves import best_fixed_on_train, curves_comparison

    # train: model a has reward 0.5 at λ = 0, b 0.4; the evaluation data: a 0.5, b 0.5
    train = normalized_outcomes(
        embeddings=np.zeros((2, 1), np.float32),
        scores=np.array([[0.5, 0.4], [0.5, 0.4]]),
        costs=np.zeros((2, 2)),
        models=("a", "b"),
    )
    data = normalized_outcomes(
        embeddings=np.zeros((4, 1), np.float32),
        scores=np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]),
        costs=np.zeros((4, 2)),
        models=("a", "b"),
    )
    reference = best_fixed_on_train(train, data, 0.0)
    assert reference["model"] == "a"
    assert reference["per_query"] == {"perf": [0.0, 1.0, 0.0, 1.0], "cost": [0.0] * 4}
    # a router that picks the better model on every query, seen with two seeds
    point = curve_point(data, np.array([1, 0, 1, 0]), 0.0, per_query=True)
    env = {
        "best_fixed_on_train": {repr(0.0): reference},
        "curves": [
            {"name": "knn", "label": "kNN", "at_lam": {s: {repr(0.0): point} for s in "01"}},
            {"name": "hierrouter-any-lam", "label": "PPO", "at_lam": {"0": {repr(0.0): {}}}},
        ],
    }
    text = curves_comparison(env, 0.0)
    assert "4 evaluation queries; reference = the best single model at λ = 0 on the train split (a)" in (
        text
    )
    assert "without per-query values (not compared): PPO" in text
    knn = next(line for line in text.splitlines() if line.startswith("| kNN |"))
    # +1 on two queries, 0 on two: Δ perf 0.5, its interval reaches 0
    assert "| +0.500 [" in knn and knn.endswith("not resolved |")


def test_one_ppo_for_every_lam_trains_on_lams_drawn_uniformly_in_the_observation(
    two_model_csv, tmp_path, monkeypatch
):
    # uniform λ on [0, 2] left two-model pools with a PPO that called the cheap model at every λ
    from agents.hierrouter import HierRouter
    from routing_gym.bench.curves import write_curves
    from routing_gym.bench.runner import BenchConfig

    class Trained(Exception):
        pass

    seen = []

    def learn(self, run):
        seen.append((dict(run.env_config), run.timesteps))
        raise Trained

    monkeypatch.setattr(HierRouter, "learn", learn)
    config = BenchConfig(
        agents=["hierrouter"],
        env_config={"table": str(two_model_csv)},
        regimes=["performance-first", "cost-first"],
        seeds=[0],
        timesteps=300,
        out=str(tmp_path),
    )
    with pytest.raises(Trained):
        write_curves(config, plot=False, log=lambda _: None)
    env_config, steps = seen[0]
    assert env_config["lam_in_obs"] is True and env_config["split"] == "train"
    assert env_config["lam_range"] == [0.0, 2.0]  # twice the largest regime (1.0), at least 2
    assert env_config["lam_sampling"] == "uniform-obs"
    # one λ entry beside the embedding left the policy nearly blind to λ: 32 copies of it
    assert env_config["lam_obs_copies"] == 32
    assert steps == 600  # the steps of both regimes together

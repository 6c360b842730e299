"""Routers across the whole cost range: sweep each router's cost knob, record and score the curve.

A router's *curve* is what it does at every setting of its cost knob on the same evaluation
queries: one point per setting, with the mean normalized cost, the mean perf and each model's
share of the calls. The knob is

* λ for the routers that play ``argmax predicted score − λ·predicted cost`` (kNN, MLP,
  IRT-Router, GraphRouter): one fit, the estimates computed once, then one argmax per λ of a
  fine grid (exactly what ``select_arms`` does at that λ);
* the threshold α for RouteLLM's MF router, swept as RouteLLM sweeps it: the quantiles of its
  predicted win probabilities on the evaluated queries, then just above the largest;
* λ in the observation for HierRouter trained across λ (the table envs' ``lam_in_obs`` and
  ``lam_range``, λ/(1+λ) drawn uniformly): one policy, evaluated at every λ of the grid; a
  HierRouter trained at one λ is one point per training run;
* λ for the Oracle (per query ``argmax true score − λ·cost``): an upper bound, not a router.

On a two-model pool the λ grid also runs below 0 (estimate routers and the Oracle): there
``argmax ŝ − λ·ĉ`` routes to the strong model iff ``(ŝ_strong − ŝ_weak) / (ĉ_strong − ĉ_weak)
≥ λ`` where the strong model is predicted dearer, a threshold on the router's break-even λ;
thresholds below 0 send more queries to the strong model than λ = 0 does, so the strong share
covers 0–100% as RouteLLM's threshold sweep does.

From a curve: RouterBench's AIQ (any pool), RouteLLM's APGR, CPT(50%) and CPT(80%) (two-model
pools), and the *gap captured* at λ = 0 and at balanced: (router − best single) / (oracle −
best single) in mean reward at that λ, with the router playing its own rule at that λ.
``write_curves`` adds all of this to a ``routing-gym bench`` run (``--curves``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from routing_gym.bench import metrics
from routing_gym.cost import REGIMES, resolve_lambda
from routing_gym.outcomes import Outcomes
from routing_gym.records import append_record, drop_partial_last_line, json_digest, read_records

#: λ values at which the gap captured is reported: performance only, and balanced.
GAP_LAMS: tuple[float, ...] = (0.0, REGIMES["balanced"])
#: Bumped when the curves of the same settings would change (resumed curves are keyed by it).
CURVES_VERSION = 2  # 2: the points at the λ of the gap captured keep per-query perf and cost
CURVES_FILE = "curves.jsonl"
#: How the PPO trained across λ draws each episode's λ: λ/(1+λ) uniform (``lam_sampling``).
#: Uniform λ on [0, 2] left two-model pools, whose break-even λ is often 0.1–0.3, with a PPO
#: that called the cheap model at every λ (docs/results/two_model_lambda.md).
ANY_LAM_SAMPLING = "uniform-obs"
#: How many entries of its observation hold λ/(1+λ). With one entry beside a 384-d embedding
#: (Adam steps every weight alike, so λ's one weight moves the policy little) the PPO across λ
#: called the strong model too little at λ = 0 (docs/results/two_model_lambda.md).
ANY_LAM_OBS_COPIES = 32
#: Curve names of a PPO agent trained at each λ, and trained once across λ.
PER_LAM_SUFFIX, ANY_LAM_SUFFIX = "-per-lam", "-any-lam"


def any_lam_env_config(
    env_config: Mapping[str, Any], split: str, lam_max: float | None = None
) -> dict:
    """The env config of one PPO for every λ: λ in ``ANY_LAM_OBS_COPIES`` entries of the
    observation; to train (``lam_max``), a new λ in ``[0, lam_max]`` every episode, drawn as
    ``ANY_LAM_SAMPLING`` says; to evaluate (None), the env's fixed λ."""
    config = {
        **env_config,
        "split": split,
        "lam_in_obs": True,
        "lam_obs_copies": ANY_LAM_OBS_COPIES,
    }
    if lam_max is not None:
        config.update(lam_range=[0.0, float(lam_max)], lam_sampling=ANY_LAM_SAMPLING)
    return config


# ---------------------------------------------------------------------------- outcomes and grids


def lambda_grid(
    two_model: bool = False,
    low: float = 1e-3,
    high: float = 1e3,
    per_decade: int = 12,
    extra: Iterable[float] = (),
) -> np.ndarray:
    """A sorted λ grid: 0, ``per_decade`` geometric steps per decade from ``low`` to ``high``,
    the regimes and ``extra``; mirrored below 0 for a two-model pool (see the module docstring)."""
    steps = int(round(np.log10(high / low) * per_decade)) + 1
    positive = np.geomspace(low, high, steps)
    values = [0.0, *positive, *GAP_LAMS, *REGIMES.values(), *extra]
    if two_model:
        values += [-v for v in positive]
    return np.unique(np.asarray(values, dtype=np.float64))


def policy_lambda_grid(high: float, steps: int = 41, extra: Iterable[float] = ()) -> np.ndarray:
    """λ grid of a policy trained across ``[0, high]``: evenly spaced, plus the regimes and
    ``extra`` inside."""
    values = [*np.linspace(0.0, high, steps), *GAP_LAMS]
    values += [lam for lam in [*REGIMES.values(), *extra] if lam <= high]
    return np.unique(np.asarray(values, dtype=np.float64))


def threshold_grid(values: np.ndarray, bins: int = 100) -> np.ndarray:
    """RouteLLM's thresholds: the ``bins``-quantile edges of the router's scores (``pd.qcut``
    with ``retbins``), then just above the largest so that the last point sends nothing up."""
    values = np.asarray(values, dtype=np.float64).ravel()
    edges = np.quantile(values, np.linspace(0.0, 1.0, bins + 1))
    return np.unique(np.append(edges, np.nextafter(float(values.max()), np.inf)))


# ---------------------------------------------------------------------------- points and sweeps


def curve_point(
    data: Outcomes, arms: np.ndarray, knob: float, per_query: bool = False
) -> dict[str, Any]:
    """The point of one knob setting: mean normalized cost and perf of the chosen models, and
    each model's share of the calls; ``per_query`` adds each query's perf and cost (row order),
    which the paired comparisons at the λ of the gap captured need."""
    arms = np.asarray(arms, dtype=np.int64).reshape(len(data))
    perf, cost = data.picked(arms)
    counts = np.bincount(arms, minlength=len(data.models)) / max(1, len(data))
    point = {
        "knob": float(knob),
        "cost": float(cost.mean()),
        "perf": float(perf.mean()),
        "share": {model: float(counts[i]) for i, model in enumerate(data.models)},
    }
    if per_query:
        point["per_query"] = {"perf": perf.tolist(), "cost": cost.tolist()}
    return point


def _check_models(router: Any, data: Outcomes) -> None:
    """The router's models must be the data's columns, matched by name and order."""
    models = tuple(getattr(router, "models", ()))
    arms = [tuple(a) for a in getattr(router, "arms", [])]
    if models != data.models or arms != [(i,) for i in range(len(data.models))]:
        raise ValueError(
            f"{type(router).__name__} was fit on models {list(models)}, the evaluation data has "
            f"{list(data.models)}: fit and evaluate on the same pool, in the same order."
        )


def oracle_curve(data: Outcomes, lams: Sequence[float]) -> list[dict[str, Any]]:
    """The Oracle at every λ: an upper bound on what any router reaches at that λ."""
    return [curve_point(data, data.oracle_arms(lam), lam) for lam in lams]


def single_model_points(data: Outcomes) -> dict[str, dict[str, Any]]:
    """Every single model's point (always calling it)."""
    return {
        model: curve_point(data, np.full(len(data), i), float("nan"))
        for i, model in enumerate(data.models)
    }


@dataclasses.dataclass
class Curve:
    """One router's curve on one env and seed, and its points at the λ of the gap captured."""

    name: str  # e.g. "knn", "hierrouter-any-lam"
    label: str
    knob: str  # "λ", "threshold α", "λ (trained at each)", "λ (in the observation)", "none"
    points: list[dict[str, Any]]
    at_lam: dict[float, dict[str, Any]]  # the router's own rule at each λ of GAP_LAMS
    fit_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (λ keys as strings)."""
        data = dataclasses.asdict(self)
        data["at_lam"] = {repr(float(k)): v for k, v in self.at_lam.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Curve":
        """Read what ``to_dict`` wrote."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in fields}
        kwargs["at_lam"] = {float(k): v for k, v in data["at_lam"].items()}
        return cls(**kwargs)


def router_at_lams(
    router: Any, data: Outcomes, lams: Iterable[float] = GAP_LAMS
) -> dict[float, dict[str, Any]]:
    """A fitted one-shot router's own decisions at each λ (``router.lam = λ``, ``select_arms``):
    MF calibrates α for that λ, a Fixed "best" rule re-picks its model."""
    _check_models(router, data)
    previous = router.config.lam
    try:
        out = {}
        for lam in lams:
            router.lam = float(lam)
            out[float(lam)] = curve_point(data, router.select_arms(data.features), lam, True)
        return out
    finally:
        router.lam = previous


def sweep_router(
    router: Any, data: Outcomes, lams: Sequence[float] | None = None, bins: int = 100
) -> tuple[str, list[dict[str, Any]]]:
    """``(knob name, points)`` of a fitted one-shot router over its knob (see the module docstring).

    * a router with ``select_arms_at(x, α)`` (RouteLLM's MF) is swept over RouteLLM's thresholds:
      the ``bins``-quantiles of its ``threshold_values`` on these queries;
    * a router that ``routes_by_estimates`` is swept over ``lams`` (default ``lambda_grid``,
      mirrored below 0 on a two-model pool) from one ``estimate`` call;
    * any other router is set to each λ >= 0 of ``lams`` and asked (``router_at_lams``).
    """
    _check_models(router, data)
    if lams is None:
        lams = lambda_grid(two_model=len(data.models) == 2)
    if hasattr(router, "select_arms_at"):
        thresholds = threshold_grid(router.threshold_values(data.features), bins)
        points = [
            curve_point(data, router.select_arms_at(data.features, alpha), alpha)
            for alpha in thresholds
        ]
        return "threshold α", points
    if getattr(router, "routes_by_estimates", False):
        scores, costs = router.estimate(data.features)
        points = [curve_point(data, np.argmax(scores - lam * costs, axis=1), lam) for lam in lams]
        return "λ", points
    at = router_at_lams(router, data, [lam for lam in lams if lam >= 0])
    return "λ", list(at.values())


def sweep_policy(
    agent: Any, make_env: Callable[[float], Any], lams: Sequence[float], seed: int = 0
) -> list[dict[str, Any]]:
    """Points of an agent that reads λ from the observation (``lam_in_obs``), at each λ of ``lams``.

    ``make_env(lam)`` builds the evaluation env at that λ. On the single-step table env the
    whole split is one batched ``predict`` per λ; on other envs (the cascade) every query is
    played through ``routing_gym.evaluation.evaluate_agent``.
    """
    from gymnasium import spaces

    from routing_gym.evaluation import evaluate_agent

    points = []
    for lam in lams:
        env = make_env(float(lam))
        base = env.unwrapped
        single_step = isinstance(base.observation_space, spaces.Dict) and set(
            base.observation_space.spaces
        ) == {"embedding", "lam"}
        if single_step:
            if hasattr(agent, "adapt_to"):  # models matched by name, as evaluate_agent does
                agent.adapt_to(env)
            data = Outcomes.from_table_env(env)
            observation = {
                "embedding": np.array(base.embeddings, dtype=np.float32),
                "lam": np.repeat(base.lam_observation()[None, :], len(data), axis=0),
            }
            actions, _ = agent.predict(observation, deterministic=True)
            points.append(curve_point(data, actions, lam))
        else:
            points.append(
                point_from_scores(lam, evaluate_agent(agent, env, seed=seed), base.model_names)
            )
        env.close()
    return points


def point_from_scores(
    lam: float, scores: Mapping[str, Any], models: Sequence[str], ids: Sequence[str] = ()
) -> dict[str, Any]:
    """A curve point from ``evaluate_agent``'s scores (or a bench row) at one λ; a bench row's
    per-question values are kept in the order of ``ids`` (the evaluation data's rows)."""
    share = scores.get("share", {})
    point = {
        "knob": float(lam),
        "cost": float(scores["cost"]),
        "perf": float(scores["perf"]),
        "share": {m: float(share.get(m, 0.0)) for m in models},
    }
    played = scores.get("per_query")
    if played and ids and sorted(map(str, played["query_ids"])) == sorted(ids):
        where = {str(q): i for i, q in enumerate(played["query_ids"])}
        point["per_query"] = {k: [played[k][where[q]] for q in ids] for k in ("perf", "cost")}
    return point


# ---------------------------------------------------------------------------- metrics


@dataclasses.dataclass(frozen=True)
class EnvReferences:
    """What a curve is scored against on one env's evaluation split."""

    models: tuple[str, ...]
    singles: dict[str, dict[str, Any]]
    cost_range: tuple[float, float]  # [0, dearest point of any curve or single model]
    strong: str | None  # two-model pools: the dearer model (RouteLLM's strong model)
    weak: str | None
    best_single_reward: dict[float, float]  # at each GAP_LAMS λ
    oracle_reward: dict[float, float]

    @property
    def two_model(self) -> bool:
        """Whether RouteLLM's two-model metrics apply (and the dearer model is the better one)."""
        return (
            self.strong is not None
            and self.singles[self.strong]["perf"] > self.singles[self.weak]["perf"]
        )


def env_references(data: Outcomes, curves: Iterable[Curve] = ()) -> EnvReferences:
    """Single models, the two-model roles, and the best-single / Oracle rewards at GAP_LAMS."""
    singles = single_model_points(data)
    strong = weak = None
    if len(data.models) == 2:
        by_cost = sorted(singles, key=lambda m: (singles[m]["cost"], singles[m]["perf"]))
        weak, strong = by_cost
    high = max(
        [p["cost"] for p in singles.values()]
        + [p["cost"] for c in curves for p in c.points]
        + [0.0]
    )
    rewards = lambda lam: data.scores - lam * data.costs  # noqa: E731
    return EnvReferences(
        models=tuple(data.models),
        singles=singles,
        cost_range=(0.0, high if high > 0 else 1.0),
        strong=strong,
        weak=weak,
        best_single_reward={lam: float(rewards(lam).mean(axis=0).max()) for lam in GAP_LAMS},
        oracle_reward={lam: float(rewards(lam).max(axis=1).mean()) for lam in GAP_LAMS},
    )


def points_at_knobs(points: Sequence[Mapping[str, Any]], knobs: Iterable[float]) -> list:
    """The points whose knob is one of ``knobs`` (up to float rounding), in curve order."""
    knobs = np.asarray(list(knobs), dtype=np.float64)
    return [p for p in points if np.isclose(float(p["knob"]), knobs, rtol=0, atol=1e-9).any()]


def curve_metrics(
    curve: Curve, refs: EnvReferences, apgr_knobs: Sequence[float] | None = None
) -> dict[str, Any]:
    """AIQ, RouteLLM's APGR / CPT(50%) / CPT(80%) on two-model pools, and the gap captured.

    ``apgr_knobs``: read APGR, CPT and the strong share swept off the points at these knobs
    only (the λ of the per-λ PPOs, for the PPO across λ). APGR is a mean PGR over the share
    range a curve covers, so two curves are compared over the same λ or not at all; the APGR
    over every point is kept as ``apgr_all_points``.
    """
    points = curve.points
    out: dict[str, Any] = {
        "aiq": metrics.aiq([(p["cost"], p["perf"]) for p in points], refs.cost_range)
        if points
        else None,
        "apgr": None,
        "cpt50": None,
        "cpt80": None,
        "cpt50_reached": None,
        "cpt80_reached": None,
        "strong_share_range": None,
    }
    if apgr_knobs is not None:
        out["apgr_knobs"] = sorted(float(k) for k in apgr_knobs)
        out["apgr_all_points"] = None
    if refs.two_model and points:
        weak, strong = refs.singles[refs.weak]["perf"], refs.singles[refs.strong]["perf"]
        if apgr_knobs is not None:
            all_share = [p["share"][refs.strong] for p in points]
            if max(all_share) > min(all_share):
                all_perf = [p["perf"] for p in points]
                out["apgr_all_points"] = metrics.routellm_apgr(all_share, all_perf, weak, strong)
            points = points_at_knobs(points, apgr_knobs)
    if refs.two_model and points:
        share = [p["share"][refs.strong] for p in points]
        perf = [p["perf"] for p in points]
        out["strong_share_range"] = [float(min(share)), float(max(share))]
        if max(share) > min(share):
            out["apgr"] = metrics.routellm_apgr(share, perf, weak, strong)
            for fraction in (0.5, 0.8):
                key = f"cpt{round(100 * fraction)}"
                out[key] = metrics.cost_to_performance(share, perf, weak, strong, fraction)
                # RouteLLM's np.interp returns the last share when the curve never gets there
                out[f"{key}_reached"] = max(perf) >= weak + fraction * (strong - weak)
    for lam in GAP_LAMS:
        point = curve.at_lam.get(lam)
        key = f"gap_lam{lam:g}"
        if point is None:
            out[key] = None
            continue
        reward = point["perf"] - lam * point["cost"]
        try:
            out[key] = metrics.gap_captured(
                reward, refs.best_single_reward[lam], refs.oracle_reward[lam]
            )
        except ValueError:
            out[key] = None
    return out


# ---------------------------------------------------------------------------- the bench's --curves


def default_lam_max(regimes: Iterable[float]) -> float:
    """The top of the λ range a policy trained across λ sees: twice the largest regime, >= 2."""
    return max(2.0, 2.0 * max(regimes))


def _fingerprint(config, agent: str, env_id: str, extra: Mapping[str, Any]) -> str:
    settings = {"bench": config.fingerprint(agent, env_id), "curves": CURVES_VERSION, **extra}
    return json_digest(settings)[:12]


def _per_lam_rows(config, env_id: str, seed: int, agent: str) -> list[dict[str, Any]]:
    from routing_gym.bench.runner import current_records

    records = current_records(config, read_records(config.rows_path))
    mine = [
        r
        for r in records
        if r.get("kind") == "row"
        and r["env"] == env_id
        and r["seed"] == seed
        and r["agent"] == agent
    ]
    return sorted(mine, key=lambda r: r["lam"])


def env_seed_curves(
    config,
    env_id: str,
    seed: int,
    train_env,
    data: Outcomes,
    lam_max: float,
    done: Mapping[tuple[str, str], Mapping[str, Any]],
    log: Callable[[str], None],
):
    """Yield ``(fingerprint, Curve)`` for every curve of one (env, seed) of a bench config.

    ``data`` is the evaluation split; curves in ``done`` ({(name, fingerprint): record}) are read
    back, not recomputed. The fingerprint is None for curves that cost nothing to rebuild (the
    Oracle, the per-λ PPO points read from the bench rows).
    """
    from routing_gym.bench.roster import build_agent, entry
    from routing_gym.bench.runner import make_table_env
    from routing_gym.routers import FIT_ON_EVAL, TRAIN_ONCE, TrainingRun

    train_data = Outcomes.from_table_env(train_env)
    for name in config.agents:
        spec = entry(name)
        if spec.training == FIT_ON_EVAL:
            at = {lam: curve_point(data, data.oracle_arms(lam), lam, True) for lam in GAP_LAMS}
            lams = lambda_grid(two_model=len(data.models) == 2)
            yield None, Curve(name, spec.label, "λ", oracle_curve(data, lams), at)
            continue
        if spec.training == TRAIN_ONCE:
            if spec.agent == "fixed":  # the single models are drawn as points anyway
                continue
            fingerprint = _fingerprint(config, name, env_id, {"seed": seed})
            if (name, fingerprint) in done:
                yield fingerprint, Curve.from_dict(done[(name, fingerprint)]["curve"])
                continue
            log(f"curves: {env_id} seed {seed}: fitting {name}")
            start = time.perf_counter()
            agent = build_agent(name, seed, config.agent_config.get(name), train_data)
            agent.learn(TrainingRun(env_id, env=train_env))
            fit_s = time.perf_counter() - start
            at = router_at_lams(agent, data)
            if spec.agent == "random":  # no knob: one point
                curve = Curve(name, spec.label, "none", [at[REGIMES["balanced"]]], at, fit_s)
            else:
                knob, points = sweep_router(agent, data)
                curve = Curve(name, spec.label, knob, points, at, fit_s)
            yield fingerprint, curve
            continue
        # trained per regime: the bench rows are its per-λ points ...
        rows = _per_lam_rows(config, env_id, seed, name)
        if rows:
            points = [point_from_scores(r["lam"], r, data.models, data.query_ids) for r in rows]
            at = {float(r["lam"]): p for r, p in zip(rows, points) if float(r["lam"]) in GAP_LAMS}
            label = f"{spec.label}, one PPO per λ"
            yield None, Curve(f"{name}{PER_LAM_SUFFIX}", label, "λ (trained at each)", points, at)
        if spec.agent != "hierrouter":
            continue
        # ... and one PPO trained across λ is swept over λ, with the steps of all regimes together
        steps = config.timesteps * len(config.regimes)
        extra = {"seed": seed, "lam_max": lam_max, "steps": steps}
        extra["lam_sampling"] = ANY_LAM_SAMPLING
        extra["lam_obs_copies"] = ANY_LAM_OBS_COPIES
        fingerprint = _fingerprint(config, name, env_id, extra)
        curve_name = f"{name}{ANY_LAM_SUFFIX}"
        if (curve_name, fingerprint) in done:
            yield fingerprint, Curve.from_dict(done[(curve_name, fingerprint)]["curve"])
            continue
        log(f"curves: {env_id} seed {seed}: one PPO across λ in [0, {lam_max:g}], {steps} steps")
        start = time.perf_counter()
        agent = build_agent(
            name, seed, {**config.agent_config.get(name, {}), "total_timesteps": steps}
        )
        train_config = any_lam_env_config(config.env_config, config.train_split, lam_max)
        agent.learn(TrainingRun(env_id, train_config, timesteps=steps))
        fit_s = time.perf_counter() - start
        eval_config = any_lam_env_config(config.env_config, config.eval_split)
        # the per-λ PPOs' λ are on the grid, so its APGR can be read at the same λ as theirs
        lams = policy_lambda_grid(lam_max, extra=[resolve_lambda(r) for r in config.regimes])
        points = sweep_policy(
            agent,
            lambda lam: make_table_env(env_id, config.eval_split, lam, eval_config),
            lams,
            seed,
        )
        at = {float(lam): p for lam, p in zip(lams, points) if float(lam) in GAP_LAMS}
        label = f"{spec.label}, one PPO for every λ"
        yield fingerprint, Curve(curve_name, label, "λ (in the observation)", points, at, fit_s)


def write_curves(
    config,
    lam_max: float | None = None,
    log: Callable[[str], None] | None = None,
    plot: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Curves of every agent of a bench config on every env and seed, and their metrics.

    Resumable: each fitted curve is one line of ``<out>/curves.jsonl`` (keyed by a fingerprint
    of its settings), so a second run only sweeps again. Writes ``curves.json`` (references,
    every curve's points per seed, metrics as mean and std over seeds), ``curves.csv`` (one line
    per point), ``curves.md`` and one figure per env (``curves.png``, or ``curves_<env>.png``).
    Returns ``(summary, paths)``.
    """
    from routing_gym.bench.runner import make_table_env

    log = log or print
    if lam_max is None:
        lam_max = default_lam_max(resolve_lambda(r) for r in config.regimes)
    lam_max = float(lam_max)
    out = Path(config.out)
    path = out / CURVES_FILE
    drop_partial_last_line(path)
    done: dict[tuple[str, int], dict[tuple[str, str], Mapping[str, Any]]] = {}
    for record in read_records(path):
        if record.get("kind") == "curve":
            key = (record["env"], record["seed"])
            done.setdefault(key, {})[(record["name"], record["fingerprint"])] = record
    summary: dict[str, Any] = {
        "curves_version": CURVES_VERSION,
        "settings": {**config.to_dict(), "lam_max": lam_max},
        "gap_lams": list(GAP_LAMS),
        "envs": {},
    }
    for env_id in config.envs:
        train_env = make_table_env(
            env_id, config.train_split, REGIMES["balanced"], config.env_config
        )
        eval_env = make_table_env(env_id, config.eval_split, REGIMES["balanced"], config.env_config)
        data = Outcomes.from_table_env(eval_env)
        by_seed: dict[int, list[Curve]] = {}
        for seed in config.seeds:
            by_seed[seed] = []
            mine = done.get((env_id, seed), {})
            for fingerprint, curve in env_seed_curves(
                config, env_id, seed, train_env, data, lam_max, mine, log
            ):
                if fingerprint is not None and (curve.name, fingerprint) not in mine:
                    record = {
                        "kind": "curve",
                        "env": env_id,
                        "seed": seed,
                        "name": curve.name,
                        "fingerprint": fingerprint,
                        "curve": curve.to_dict(),
                    }
                    append_record(path, record)
                by_seed[seed].append(curve)
        train_data = Outcomes.from_table_env(train_env)
        train_env.close()
        eval_env.close()
        summary["envs"][env_id] = env_summary(data, by_seed, train_data)
    paths: dict[str, Any] = {"json": out / "curves.json", "csv": out / "curves.csv"}
    out.mkdir(parents=True, exist_ok=True)
    paths["json"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    paths["csv"].write_text(curves_csv(summary), encoding="utf-8")
    paths["markdown"] = out / "curves.md"
    paths["markdown"].write_text(curves_markdown(summary), encoding="utf-8")
    paths["plots"] = []
    if plot:
        from routing_gym.bench.plot import curve_plot

        envs = list(summary["envs"])
        for env_id in envs:
            name = "curves.png" if len(envs) == 1 else f"curves_{env_id}.png"
            paths["plots"].append(curve_plot(summary["envs"][env_id], env_id, out / name))
    return summary, paths


def best_fixed_on_train(train: Outcomes, data: Outcomes, lam: float) -> dict[str, Any]:
    """The single model with the best mean reward at ``lam`` on the train split, and its
    per-query perf and cost on the evaluation split (the reference of the paired comparisons)."""
    (model,) = train.arm_models[train.best_fixed_arm(lam)]
    if model not in data.models:
        raise ValueError(
            f"the best fixed model on train, {model!r}, is not in the evaluation data."
        )
    column = data.column(model)
    return {
        "model": model,
        "per_query": {
            "perf": data.scores[:, column].tolist(),
            "cost": data.costs[:, column].tolist(),
        },
    }


def per_lam_knobs(curves: Sequence[Curve], curve: Curve) -> list[float] | None:
    """For a PPO across λ (``<agent>-any-lam``), the λ of its agent's per-λ PPOs in the same
    seed (``<agent>-per-lam``), over which its APGR is read; None for any other curve."""
    if not curve.name.endswith(ANY_LAM_SUFFIX):
        return None
    sibling = curve.name[: -len(ANY_LAM_SUFFIX)] + PER_LAM_SUFFIX
    per_lam = next((c for c in curves if c.name == sibling), None)
    if per_lam is None or not per_lam.points:
        return None
    return [float(p["knob"]) for p in per_lam.points]


def env_summary(
    data: Outcomes, by_seed: Mapping[int, list[Curve]], train: Outcomes | None = None
) -> dict[str, Any]:
    """One env's references, curves (points per seed) and metrics (mean and std over seeds);
    with the ``train`` split also the best fixed model on train at each λ of GAP_LAMS."""
    refs = env_references(data, [c for curves in by_seed.values() for c in curves])
    names = list(dict.fromkeys(c.name for curves in by_seed.values() for c in curves))
    curves = []
    for name in names:
        mine = {seed: c for seed, cs in by_seed.items() for c in cs if c.name == name}
        first = next(iter(mine.values()))
        per_seed = {
            seed: curve_metrics(c, refs, per_lam_knobs(by_seed[seed], c)) for seed, c in mine.items()
        }
        keys = list(next(iter(per_seed.values())))
        mean, std = {}, {}
        for key in keys:
            values = [m.get(key) for m in per_seed.values()]  # a seed may lack per-λ PPOs
            if key == "apgr_knobs":  # the λ read in any seed
                mean[key], std[key] = sorted({k for v in values if v for k in v}), None
            elif all(isinstance(v, (int, float)) for v in values):
                mean[key], std[key] = metrics.mean_std(values)
            elif all(isinstance(v, list) for v in values):  # a range: the union over seeds
                mean[key], std[key] = [min(v[0] for v in values), max(v[1] for v in values)], None
            else:
                mean[key], std[key] = values[0] if len(values) == 1 else None, None
        curves.append(
            {
                "name": name,
                "label": first.label,
                "knob": first.knob,
                "seeds": list(mine),
                "metrics": mean,
                "metrics_std": std,
                "metrics_by_seed": {str(s): m for s, m in per_seed.items()},
                "fit_s": float(np.mean([c.fit_s for c in mine.values()])),
                "points": {str(s): c.points for s, c in mine.items()},
                "at_lam": {
                    str(s): {repr(k): v for k, v in c.at_lam.items()} for s, c in mine.items()
                },
            }
        )
    return {
        "queries": len(data),
        "models": list(refs.models),
        "singles": refs.singles,
        "strong": refs.strong if refs.two_model else None,
        "weak": refs.weak if refs.two_model else None,
        "cost_range": list(refs.cost_range),
        "best_single_reward": {repr(k): v for k, v in refs.best_single_reward.items()},
        "oracle_reward": {repr(k): v for k, v in refs.oracle_reward.items()},
        "best_fixed_on_train": (
            None
            if train is None
            else {repr(float(lam)): best_fixed_on_train(train, data, lam) for lam in GAP_LAMS}
        ),
        "curves": curves,
    }


def curves_csv(summary: Mapping[str, Any]) -> str:
    """One line per point: env, seed, curve, knob, cost, perf and ``share_<model>``; the single
    models as curve ``single`` (knob empty)."""
    models = sorted({m for env in summary["envs"].values() for m in env["models"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["env", "seed", "curve", "label", "knob_name", "knob", "cost", "perf"]
        + [f"share_{m}" for m in models]
    )
    for env_id, env in summary["envs"].items():
        for model, p in env["singles"].items():
            writer.writerow(
                [env_id, "", "single", model, "", "", p["cost"], p["perf"]]
                + [p["share"].get(m, "") for m in models]
            )
        for curve in env["curves"]:
            for seed, points in curve["points"].items():
                for p in points:
                    writer.writerow(
                        [env_id, seed, curve["name"], curve["label"], curve["knob"], p["knob"]]
                        + [p["cost"], p["perf"]]
                        + [p["share"].get(m, "") for m in models]
                    )
    return buffer.getvalue()


def _cell(mean: Any, std: Any, percent: bool = False, n: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and not np.isfinite(mean)):
        return "–"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.1f}%" if percent else f"{mean:.3f}"
    if n > 1 and std is not None:
        text += f" ± {std * scale:.1f}" if percent else f" ± {std:.3f}"
    return text


def _cpt_cell(m: Mapping[str, Any], s: Mapping[str, Any], key: str, n: int) -> str:
    text = _cell(m[key], s[key], True, n)
    reached = m.get(f"{key}_reached")
    # not reached: RouteLLM's interpolation then reads the curve's last share
    return text + " †" if reached is not None and reached < 1 else text


def curves_table(env: Mapping[str, Any]) -> str:
    """Markdown: every curve's AIQ, RouteLLM's metrics (two-model pools) and the gap captured."""
    two_model = env["strong"] is not None
    header = ["Router", "knob", "AIQ ↑"]
    if two_model:
        header += ["APGR ↑", "CPT(50%) ↓", "CPT(80%) ↓", "strong share swept"]
    header += [f"gap captured λ={lam:g} ↑" for lam in GAP_LAMS]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for curve in env["curves"]:
        m, s, n = curve["metrics"], curve["metrics_std"], len(curve["seeds"])
        cells = [curve["label"], curve["knob"], _cell(m["aiq"], s["aiq"], n=n)]
        if two_model:
            swept = m.get("strong_share_range")
            cells += [
                _cell(m["apgr"], s["apgr"], n=n),
                _cpt_cell(m, s, "cpt50", n),
                _cpt_cell(m, s, "cpt80", n),
                "–" if not swept else f"{100 * swept[0]:.0f}–{100 * swept[1]:.0f}%",
            ]
        cells += [_cell(m[f"gap_lam{lam:g}"], s[f"gap_lam{lam:g}"], n=n) for lam in GAP_LAMS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves_comparison(env: Mapping[str, Any], lam: float) -> str:
    """Markdown: at one λ of GAP_LAMS, each router playing its own rule at that λ: n, perf,
    cost and reward with 95% intervals over the evaluation queries (each query's values
    averaged over seeds), and the paired Δ from the best single model chosen on the train split."""
    from routing_gym.bench.comparison import Metric, comparison_table
    from routing_gym.bench.roster import ROSTER

    key = repr(float(lam))
    reference = (env.get("best_fixed_on_train") or {}).get(key)
    if reference is None:
        return f"λ = {lam:g}: no best fixed model on train in this summary: no paired comparison."
    ref_label = f"Best fixed on train: {reference['model']}"

    def values(per_query: Mapping[str, list]) -> dict[str, list[float]]:
        perf, cost = np.asarray(per_query["perf"]), np.asarray(per_query["cost"])
        reward = perf - lam * cost
        return {"perf": perf.tolist(), "cost": cost.tolist(), "reward": reward.tolist()}

    methods = {ref_label: values(reference["per_query"])}
    bounds, skipped = [], []
    for curve in env["curves"]:
        points = [at.get(key) for at in curve["at_lam"].values()]
        if not points or any(p is None or "per_query" not in p for p in points):
            skipped.append(curve["label"])
            continue
        mean = {
            k: np.mean([p["per_query"][k] for p in points], axis=0).tolist()
            for k in ("perf", "cost")
        }
        methods[curve["label"]] = values(mean)
        if curve["name"] in ROSTER and ROSTER[curve["name"]].upper_bound:
            bounds.append(curve["label"])
    metrics = [
        Metric("perf", "perf", compare=True),
        Metric("cost", "cost", higher_is_better=False),
        Metric("reward", "reward", compare=True),
    ]
    caption = (
        f"λ = {lam:g}: {len(methods[ref_label]['perf'])} evaluation queries; reference = the best "
        f"single model at λ = {lam:g} on the train split ({reference['model']})"
    )
    if skipped:
        caption += f"; without per-query values (not compared): {', '.join(skipped)}"
    table = comparison_table(
        methods,
        metrics,
        ref_label,
        bounds=bounds,
        label="Router",
        reference_name="best fixed on train",
    )
    return caption + ".\n\n" + table


def curves_markdown(summary: Mapping[str, Any]) -> str:
    """Every env's curve table, with what it was measured against."""
    parts = []
    for env_id, env in summary["envs"].items():
        singles = ", ".join(
            f"{m} {p['perf']:.3f} @ {p['cost']:.3f}" for m, p in env["singles"].items()
        )
        text = (
            f"## Curves: {env_id}\n\n{env['queries']} evaluation queries; single models (perf @ "
            f"normalized cost): {singles}. AIQ over cost {env['cost_range'][0]:g}–"
            f"{env['cost_range'][1]:.3f}; gap captured = (router − best single) / (oracle − best "
            "single) in mean reward at that λ"
        )
        if env["strong"] is not None:
            text += (
                f"; APGR and CPT as RouteLLM computes them, strong model {env['strong']}, weak "
                f"{env['weak']} (CPT = share of calls to the strong model; †: the curve never "
                "reaches that perf, and RouteLLM's interpolation reads its last share)"
            )
            same = [c for c in env["curves"] if c["metrics"].get("apgr_knobs")]
            if same:
                knobs = ", ".join(f"{k:g}" for k in same[0]["metrics"]["apgr_knobs"])
                text += (
                    f"; one PPO for every λ: APGR, CPT and the share swept are read at the λ of "
                    f"the per-λ PPOs ({knobs}), since APGR is a mean over the share range a "
                    "curve covers"
                )
        parts.append(
            text
            + ". ± is the std over seeds (the spread of training runs), not an interval over "
            "queries.\n\n"
            + curves_table(env)
        )
        if env.get("best_fixed_on_train"):
            parts.append(
                "### Each router at its own rule, against the best fixed model on train\n\n"
                "95% bootstrap intervals over the evaluation queries; Δ is paired over the same "
                "queries, and `**beats**` or `below` is written only where its interval "
                "excludes 0.\n\n"
                + "\n\n".join(curves_comparison(env, lam) for lam in GAP_LAMS)
            )
    return "\n\n".join(parts) + "\n"

"""The agents a benchmark can run, by name: how each is built, labelled and trained.

Three kinds of training:

* **once per (env, seed)**: the one-shot routers (Random, Fixed, RouteLLM-MF, IRT-Router,
  GraphRouter, kNN, MLP) learn from the train split's outcomes; their decision rule takes λ at
  routing time, so one fit serves every regime;
* **per regime**: HierRouter's PPO learns by interacting with the train split at one λ;
* **on the evaluation split**: the Oracle reads the true outcomes of the very queries it is
  scored on. It is an upper bound, not a router, and never enters the Pareto set or the hull.

Any other name in ``agents.AGENTS`` works too: a ``OneShotRouter`` is fit once per (env, seed),
any other agent is trained per regime with ``fit(env_id, env_kwargs=...)``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from agents import AGENTS, FixedRouter, OneShotRouter, RoutingData

TRAIN_ONCE, TRAIN_PER_REGIME, FIT_ON_EVAL = "once", "per-regime", "on-eval"
#: How each kind of training reads in ``routing-gym list``.
TRAINING_TEXT = {
    TRAIN_ONCE: "fit once per env and seed, λ applied when routing",
    TRAIN_PER_REGIME: "trained at each λ",
    FIT_ON_EVAL: "reads the evaluation outcomes (upper bound)",
}


@dataclass(frozen=True)
class RosterEntry:
    """How to build, label and train one benchmark agent."""

    label: str
    agent: str  # the ``agents.AGENTS`` key of its class
    training: str = TRAIN_ONCE  # TRAIN_ONCE, TRAIN_PER_REGIME or FIT_ON_EVAL
    defaults: dict[str, Any] = field(default_factory=dict)  # config keys set before the user's
    #: builds config keys from the train data (e.g. which model is the strongest)
    from_data: Callable[[RoutingData], dict[str, Any]] | None = None

    @property
    def upper_bound(self) -> bool:
        """Whether the agent reads the evaluation outcomes (an upper bound, not a router)."""
        return self.training == FIT_ON_EVAL


def strongest_model(data: RoutingData) -> dict[str, Any]:
    """FixedRouter keys for the arm with the best mean train score."""
    arm = data.arms[int(np.argmax(data.scores.mean(axis=0)))]
    if len(arm) == 1:
        return {"model": data.models[arm[0]]}
    return {"assignment": {"student": data.models[arm[0]], "teacher": data.models[arm[1]]}}


#: Benchmark name -> entry, in table order.
ROSTER: dict[str, RosterEntry] = {
    "random": RosterEntry("Random", "random"),
    "fixed-cheapest": RosterEntry("Fixed: cheapest", "fixed", defaults={"rule": "cheapest"}),
    "fixed-strongest": RosterEntry("Fixed: strongest", "fixed", from_data=strongest_model),
    "fixed-best": RosterEntry("Fixed: best at λ", "fixed", defaults={"rule": "best"}),
    "routellm-mf": RosterEntry("RouteLLM-MF", "routellm-mf"),
    "irt-router": RosterEntry("IRT-Router", "irt-router"),
    "graphrouter": RosterEntry("GraphRouter", "graphrouter"),
    "knn": RosterEntry("kNN (RouterBench)", "knn"),
    "mlp": RosterEntry("MLP (RouterBench)", "mlp"),
    "hierrouter": RosterEntry("HierRouter (PPO)", "hierrouter", training=TRAIN_PER_REGIME),
    "oracle": RosterEntry("Oracle (upper bound)", "oracle", training=FIT_ON_EVAL),
}
#: What ``bench`` and ``demo`` run by default: every agent above.
DEFAULT_AGENTS: tuple[str, ...] = tuple(ROSTER)


def entry(name: str) -> RosterEntry:
    """The roster entry of a benchmark name (or of any ``agents.AGENTS`` name)."""
    if name in ROSTER:
        return ROSTER[name]
    if name in AGENTS:
        cls = AGENTS[name]
        training = TRAIN_ONCE if issubclass(cls, OneShotRouter) else TRAIN_PER_REGIME
        return RosterEntry(cls.__name__, name, training=training)
    raise ValueError(f"Unknown agent {name!r}; choose from {sorted(set(ROSTER) | set(AGENTS))}.")


def build_agent(
    name: str, seed: int, config: dict[str, Any] | None = None, data: RoutingData | None = None
):
    """An unfitted agent: the entry's defaults, keys derived from ``data``, then ``config``.

    ``seed`` goes to every agent whose config has a ``seed`` key.
    """
    spec = entry(name)
    cls = AGENTS[spec.agent]
    keys: dict[str, Any] = dict(spec.defaults)
    if spec.from_data is not None:
        if data is None:
            raise ValueError(f"Agent {name!r} needs the train data to be built.")
        keys.update(spec.from_data(data))
    keys.update(config or {})
    config_cls = getattr(cls, "Config", None)
    fields = getattr(config_cls, "__dataclass_fields__", {})
    if "seed" in fields and "seed" not in (config or {}):
        keys["seed"] = seed
    if cls is FixedRouter and ("model" in keys or "assignment" in keys):
        keys.pop("rule", None)
    try:
        return cls(**keys)
    except TypeError as exc:  # an agent class without keyword config
        params = sorted(inspect.signature(cls).parameters)
        raise ValueError(
            f"Agent {name!r}: bad config {keys!r} ({exc}); it takes {params}."
        ) from None

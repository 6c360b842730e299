"""The agents a benchmark can run, by name: how each is built, labelled and trained.

Three kinds of training:

* **once per (env, seed)**: the one-shot routers (Random, Fixed, RouteLLM-MF, IRT-Router,
  GraphRouter, kNN, MLP) learn from the train split's outcomes; their decision rule takes λ at
  routing time, so one fit serves every regime;
* **per regime**: HierRouter's PPO learns by interacting with the train split at one λ;
* **on the evaluation split**: the Oracle reads the true outcomes of the very queries it is
  scored on. It is an upper bound, not a router, and never enters the Pareto set or the hull.

Any other registered router name (``routing_gym.routers``) or entry point
(``"package.module:Class"``) works too: its class's ``training`` says how it is trained, and
``learn(TrainingRun)`` trains it. Classes are imported only when an agent is built, so this
module does not import the ``agents`` package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from routing_gym.outcomes import Outcomes
from routing_gym.routers import (
    FIT_ON_EVAL,
    TRAIN_ONCE,
    TRAIN_PER_REGIME,
    load_router_class,
    router_entry_point,
    router_names,
)

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
    agent: str  # a registered router name (``routing_gym.routers``) or an entry point
    training: str = TRAIN_ONCE  # TRAIN_ONCE, TRAIN_PER_REGIME or FIT_ON_EVAL
    defaults: dict[str, Any] = field(default_factory=dict)  # config keys set before the user's
    #: builds config keys from the train outcomes (e.g. which model is the strongest)
    from_data: Callable[[Outcomes], dict[str, Any]] | None = None

    @property
    def upper_bound(self) -> bool:
        """Whether the agent reads the evaluation outcomes (an upper bound, not a router)."""
        return self.training == FIT_ON_EVAL


def strongest_model(data: Outcomes) -> dict[str, Any]:
    """FixedRouter keys for the arm with the best mean train score."""
    names = data.arm_models[int(np.argmax(data.scores.mean(axis=0)))]
    if len(names) == 1:
        return {"model": names[0]}
    return {"assignment": dict(zip(data.roles, names))}


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
    """The roster entry of a benchmark name, a registered router name or an entry point.

    Only a name outside the roster imports its class (to read how it is trained).
    """
    if name in ROSTER:
        return ROSTER[name]
    try:
        router_entry_point(name)
    except ValueError:
        raise ValueError(
            f"Unknown agent {name!r}; choose from {sorted(set(ROSTER) | set(router_names()))} "
            "or give an entry point ('package.module:Class')."
        ) from None
    cls = load_router_class(name)
    return RosterEntry(cls.__name__, name, training=cls.training)


def build_agent(
    name: str, seed: int, config: dict[str, Any] | None = None, data: Outcomes | None = None
):
    """An unfitted agent: the entry's defaults, keys derived from ``data``, then ``config``.

    ``seed`` goes to every agent whose config has a ``seed`` key.
    """
    spec = entry(name)
    cls = load_router_class(spec.agent)
    keys: dict[str, Any] = dict(spec.defaults)
    if spec.from_data is not None:
        if data is None:
            raise ValueError(f"Agent {name!r} needs the train data to be built.")
        keys.update(spec.from_data(data))
    keys.update(config or {})
    if "seed" in cls.config_keys() and "seed" not in (config or {}):
        keys["seed"] = seed
    try:
        return cls(**keys)
    except TypeError as exc:  # a key the constructor does not take
        raise ValueError(
            f"Agent {name!r}: bad config {keys!r} ({exc}); it takes {sorted(cls.config_keys())}."
        ) from None

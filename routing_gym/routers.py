"""The router contract and registry: how the benchmark finds, trains and describes any agent.

Routers are found by name through string entry points (``"agents.knn_router:KNNRouter"``),
imported only when one is built, the way Gymnasium finds envs. So ``routing_gym`` never
imports the ``agents`` package, and a router of your own plugs in the same way::

    from routing_gym.routers import register_router
    register_router("my-router", "my_package.my_module:MyRouter")
    # or pass the entry point itself: routing-gym bench --agents my_package.my_module:MyRouter

A router class offers what ``Router`` lists: SB3's ``predict``, one typed training entry
``learn(TrainingRun)``, ``describe()``, ``save`` / ``load``, and two class attributes the
benchmark schedules by (``training``, ``checkpoint_suffix``).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import gymnasium as gym

if TYPE_CHECKING:
    from routing_gym.action_table import ActionTable

#: How the benchmark trains a router (``Router.training``).
TRAIN_ONCE, TRAIN_PER_REGIME, FIT_ON_EVAL = "once", "per-regime", "on-eval"
TRAINING_KINDS = (TRAIN_ONCE, TRAIN_PER_REGIME, FIT_ON_EVAL)

#: Name -> entry point of the routers this project ships (the ``agents`` package).
ROUTER_ENTRY_POINTS: dict[str, str] = {
    "hierrouter": "agents.hierrouter:HierRouter",
    "haps": "agents.haps:HAPSAgent",
    "random": "agents.random_router:RandomRouter",
    "fixed": "agents.fixed:FixedRouter",
    "oracle": "agents.oracle:OracleRouter",
    "routellm-mf": "agents.routellm_mf:MFRouter",
    "irt-router": "agents.irt_router:IRTRouter",
    "graphrouter": "agents.graph_router:GraphRouter",
    "knn": "agents.knn_router:KNNRouter",
    "mlp": "agents.mlp_router:MLPRouter",
}


@dataclass
class TrainingRun:
    """Everything a router may learn from, in one typed object (its one training entry).

    Each router takes what its algorithm needs: a one-shot router the outcomes of
    ``env`` (an outcome-table env) or ``action_table`` (a live env's exhaustive table), a
    reinforcement learner the env ID and config to build its own (vector) envs.
    """

    env_id: str
    #: Config of the training env (split, λ, ...), as given to ``gym.make(env_id, config=...)``.
    env_config: dict[str, Any] = field(default_factory=dict)
    #: The training env, when the caller has made it already (else ``make_env()`` makes one).
    env: gym.Env | None = None
    #: Per-question outcomes of every assignment of a live env (the exhaustive builder's table).
    action_table: ActionTable | None = None
    #: Environment steps for learners that step an env; None: the router's own config decides.
    timesteps: int | None = None
    #: An SB3 callback for learners that step an env (progress bars); others ignore it.
    callback: Any = None

    def make_env(self) -> gym.Env:
        """The training env: the one given, else a fresh ``gym.make(env_id, config=env_config)``."""
        if self.env is not None:
            return self.env
        return gym.make(self.env_id, config=dict(self.env_config))


@dataclass(frozen=True)
class RouterDescription:
    """What ``Router.describe()`` says about a (trained) router, as plain data."""

    name: str
    training: str
    checkpoint_suffix: str
    #: One line on what the trained router does (e.g. the model a fixed rule picked), or "".
    detail: str = ""
    config: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Router(Protocol):
    """What the benchmark needs of a router class (``agents.base.Agent`` implements it)."""

    #: Registry name, e.g. ``"knn"``.
    name: ClassVar[str]
    #: ``TRAIN_ONCE`` (fit once from outcomes, λ applied when routing), ``TRAIN_PER_REGIME``
    #: (trained at each λ) or ``FIT_ON_EVAL`` (reads the evaluation outcomes: an upper bound).
    training: ClassVar[str]
    #: What ``save`` writes: ``".pt"``, ``".zip"``, or ``""`` for a folder.
    checkpoint_suffix: ClassVar[str]

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The keyword config keys the constructor takes."""

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3's ``PolicyPredictor.predict``."""

    def learn(self, run: TrainingRun) -> Router:
        """Train from ``run``; returns the router."""

    def describe(self) -> RouterDescription:
        """Name, training kind, checkpoint format, a one-line detail and the config."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the trained router; returns the path written."""

    @classmethod
    def load(cls, path: str | os.PathLike) -> Router:
        """Read a router written by ``save``."""


def register_router(name: str, entry_point: str) -> None:
    """Make ``name`` resolve to ``entry_point`` (``"package.module:Class"``); re-registering replaces it."""
    _check_entry_point(entry_point)
    ROUTER_ENTRY_POINTS[name] = entry_point


def router_names() -> list[str]:
    """The registered router names, in registration order."""
    return list(ROUTER_ENTRY_POINTS)


def is_entry_point(name: str) -> bool:
    """Whether ``name`` is a ``"module:attribute"`` string rather than a registered name."""
    return ":" in name


def router_entry_point(name: str) -> str:
    """The entry point of a registered name, or ``name`` itself when it is an entry point."""
    if is_entry_point(name):
        _check_entry_point(name)
        return name
    if name not in ROUTER_ENTRY_POINTS:
        raise ValueError(
            f"Unknown agent {name!r}; registered: {router_names()} "
            "(or give an entry point, 'package.module:Class')."
        )
    return ROUTER_ENTRY_POINTS[name]


def load_router_class(name: str) -> type:
    """The router class of a registered name or an entry point, imported now."""
    cls = load_entry_point(router_entry_point(name))
    if not isinstance(cls, type):
        raise ValueError(f"Entry point {router_entry_point(name)!r} is not a class.")
    return cls


def load_entry_point(entry_point: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute (a clear error if missing)."""
    _check_entry_point(entry_point)
    module_name, _, attribute = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImportError(_missing_module_message(entry_point, module_name, exc)) from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ImportError(f"Entry point {entry_point!r}: {module_name} has no {attribute!r}.") from None


def _check_entry_point(entry_point: str) -> None:
    module_name, _, attribute = entry_point.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"Entry point {entry_point!r} must look like 'package.module:Class'.")


def _missing_module_message(entry_point: str, module_name: str, exc: ModuleNotFoundError) -> str:
    """Why an entry point's module did not import, naming a foreign top-level package if that is why."""
    top = module_name.split(".")[0]
    message = f"Entry point {entry_point!r}: cannot import {module_name} ({exc})."
    if exc.name != module_name and exc.name != top:
        return message  # the module exists but one of its own imports is missing
    try:
        package = importlib.import_module(top)
    except ImportError:
        return message
    # Another distribution (openai-agents, for one) also installs a top-level "agents".
    where = getattr(package, "__file__", None) or list(getattr(package, "__path__", []))
    return (
        f"{message} The {top!r} package imported from {where} is not the one that holds it: "
        f"another installed package also uses the name {top!r}. See the README, section "
        "'The agents package and its name'."
    )


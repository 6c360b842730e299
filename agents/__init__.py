"""Routing agents: HierRouter (PPO) and the routing baselines, behind one SB3-style interface.

Every agent has ``predict(observation, state, episode_start, deterministic)`` (so SB3's
``evaluate_policy`` scores it), one training entry ``learn(TrainingRun)`` (besides its own
``fit`` / ``fit_env``), ``describe()``, ``save(path)`` and ``load(path)``;
``agents.evaluation.evaluate_agent(agent, env)`` reports Perf, Cost, Reward and call shares.
``routing_gym`` finds these classes by entry point (``routing_gym.routers``), never by import.
"""

from agents.base import Agent, OneShotRouter, action_table_outcomes
from agents.fixed import FixedRouter
from agents.graph_router import GraphRouter
from agents.haps import HAPSAgent
from agents.hierrouter import HierRouter
from agents.irt_router import IRTRouter
from agents.knn_router import KNNRouter
from agents.mlp_router import MLPRouter
from agents.oracle import OracleRouter
from agents.random_router import RandomRouter
from agents.routellm_mf import MFRouter

#: Name -> agent class (``routing-gym list`` prints each first docstring line).
AGENTS: dict[str, type[Agent]] = {
    cls.name: cls
    for cls in (
        HierRouter,
        HAPSAgent,
        RandomRouter,
        FixedRouter,
        OracleRouter,
        MFRouter,
        IRTRouter,
        GraphRouter,
        KNNRouter,
        MLPRouter,
    )
}

#: The learned one-shot routers: each picks one arm from the query alone (fit on outcome rows).
ONE_SHOT_ROUTERS: tuple[str, ...] = tuple(
    cls.name for cls in (KNNRouter, MLPRouter, MFRouter, IRTRouter, GraphRouter)
)

__all__ = [
    "AGENTS",
    "ONE_SHOT_ROUTERS",
    "Agent",
    "OneShotRouter",
    "action_table_outcomes",
    "HierRouter",
    "HAPSAgent",
    "RandomRouter",
    "FixedRouter",
    "OracleRouter",
    "MFRouter",
    "IRTRouter",
    "GraphRouter",
    "KNNRouter",
    "MLPRouter",
]

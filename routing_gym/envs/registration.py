"""Every environment ID of the suite, registered idempotently.

Entry points are strings so that importing routing_gym stays light: an env's
module (and torch, transformers...) loads only when that env is made.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS: list[str] = []


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)
    if env_id not in ENV_IDS:
        ENV_IDS.append(env_id)


def register_envs() -> None:
    """Register all routing_gym IDs; calling it again is a no-op."""

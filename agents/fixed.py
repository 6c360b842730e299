"""Fixed routers: always the same model, or the same model per role.

Covers the single-model baselines: "all weak" (``model="smollm2-135m"``), "all strong",
mixed assignments (``assignment={"student": "smollm2-135m", "teacher": "gemma3-270m"}``), and
two data-driven picks: ``rule="best"``, the arm with the highest mean train reward at λ
(RouterBench's best single model), and ``rule="cheapest"``, the lowest mean cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import OneShotRouter
from routing_gym.outcomes import Outcomes

RULES = ("best", "cheapest")


@dataclass
class FixedRouterConfig:
    """Which arm to play: a named ``model``, an ``assignment`` per role, or a ``rule``."""

    model: str | None = None  # one model (for every role on a live env)
    assignment: dict[str, str] | None = None  # {"student": name, "teacher": name}
    rule: str = "best"  # used when neither is given: "best" (mean train reward at λ) or "cheapest"
    lam: float | str | None = None  # λ of the "best" rule; None = the env's


class FixedRouter(OneShotRouter):
    """Fixed: always one model (or one model per role); "best" and "cheapest" pick it from data."""

    name = "fixed"
    Config = FixedRouterConfig

    def _check_config(self) -> None:
        super()._check_config()
        cfg = self.config
        if cfg.model is not None and cfg.assignment is not None:
            raise ValueError("FixedRouterConfig: give 'model' or 'assignment', not both.")
        if cfg.assignment is not None and not (
            isinstance(cfg.assignment, dict) and all(isinstance(m, str) for m in cfg.assignment.values())
        ):
            raise ValueError(
                f"FixedRouterConfig key 'assignment' must map roles to model names, got {cfg.assignment!r}."
            )
        if cfg.rule not in RULES:
            raise ValueError(
                f"FixedRouterConfig key 'rule' must be one of {RULES}, got {cfg.rule!r}."
            )

    @property
    def needs_data(self) -> bool:  # type: ignore[override]
        return self.config.model is None and self.config.assignment is None

    def _fit(self, data: Outcomes | None) -> None:
        self._means = None if data is None else (data.scores.mean(axis=0), data.costs.mean(axis=0))
        self._named = self._named_arm()

    def _named_arm(self) -> int | None:
        cfg = self.config
        if cfg.model is None and cfg.assignment is None:
            return None
        if len(self.arms[0]) == 1 and cfg.assignment is not None:
            raise ValueError(
                "FixedRouterConfig key 'assignment' needs a live env; use 'model' on a table env."
            )
        if cfg.assignment is not None and not self.roles:
            raise ValueError(
                "FixedRouterConfig key 'assignment' needs a live env's roles: fit it with fit_env(env)."
            )
        if cfg.assignment is not None and set(cfg.assignment) != set(self.roles):
            raise ValueError(
                f"FixedRouterConfig key 'assignment' must map the env's roles {list(self.roles)} "
                f"to models, got {cfg.assignment!r}."
            )
        wanted = (
            [cfg.model] * len(self.arms[0])
            if cfg.model is not None
            else [cfg.assignment[r] for r in self.roles]
        )
        for name in wanted:
            if name not in self.models:
                raise ValueError(
                    f"FixedRouterConfig: unknown model {name!r}; the pool is {list(self.models)}."
                )
        arm = tuple(self.models.index(name) for name in wanted)
        if arm not in self.arms:
            raise ValueError(f"FixedRouterConfig: the data has no outcomes for {wanted}.")
        return self.arms.index(arm)

    @property
    def arm(self) -> int:
        """The arm played, at the current λ."""
        if self._named is not None:
            return self._named
        if self._means is None:
            raise ValueError(
                "FixedRouter with a rule needs outcome data: fit it on a table or ActionTable."
            )
        scores, costs = self._means
        if self.config.rule == "cheapest":
            return int(np.argmin(costs))
        return int(np.argmax(scores - self.lam * costs))

    def detail(self) -> str:
        """The arm played, as model names (e.g. ``gemma-2-9b-it`` or ``student/teacher``)."""
        if not self.fitted:
            return ""
        return "/".join(self.models[i] for i in self.arms[self.arm])

    def _select(self, x: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.full(len(x), self.arm, dtype=np.int64)

    def _get_state(self) -> dict[str, Any]:
        return {"means": self._means, "named": self._named}

    def _set_state(self, state: dict[str, Any]) -> None:
        self._means, self._named = state.get("means"), state.get("named")

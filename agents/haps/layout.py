"""What HAPS must know of a hybrid env: models and roles, LoRA shapes and scaling, task and λ."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym

#: The roles of a layout saved before layouts recorded them: every such folder was written for
#: a Teacher–Student env, whose roles these are (student first).
TEACHER_STUDENT_ROLES = ("student", "teacher")


@dataclass
class HybridLayout:
    """The env facts HAPS is built for; saved with the agent, checked when it binds another env."""

    models: list[str]
    lora_shapes: dict[str, dict[int, tuple[int, int]]]  # open models only, layers in order
    rank: int
    layers: int | str
    alpha: float
    scale: float
    task: str
    lam: float
    roles: list[str]  # who takes turns; an assignment names one model per role, in this order

    @classmethod
    def from_env(cls, env: gym.Env) -> "HybridLayout":
        """Read the layout of a hybrid env (raises ValueError for any other env)."""
        base = env.unwrapped
        config = getattr(base, "config", {})
        if config.get("action_type") != "hybrid":
            raise ValueError(
                "HAPS acts on hybrid envs (action_type='hybrid', LLMRouting-HotpotQA-HAPS-v0...); "
                f"{type(base).__name__} has action_type={config.get('action_type')!r}."
            )
        return cls(
            models=list(base.model_names),
            lora_shapes={
                m: {int(k): tuple(v) for k, v in s.items()} for m, s in base.lora_shapes.items()
            },
            rank=int(config["lora_rank"]),
            layers=config["lora_layers"],
            alpha=float(config["lora_alpha"]),
            scale=float(config["lora_scale"]),
            task=str(base.protocol_name),
            lam=float(base.lam),
            roles=list(base.roles),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``config.json`` of a saved agent)."""
        out = dataclasses.asdict(self)
        out["lora_shapes"] = {
            m: {str(k): list(v) for k, v in s.items()} for m, s in self.lora_shapes.items()
        }
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HybridLayout":
        """The layout ``to_dict`` wrote."""
        data = {"roles": list(TEACHER_STUDENT_ROLES), **data}
        data["lora_shapes"] = {
            m: {int(k): tuple(v) for k, v in s.items()} for m, s in data["lora_shapes"].items()
        }
        return cls(**data)

    def vector_size(self, model: str) -> int:
        """Length of ``model``'s flat LoRA vector in the env's action."""
        return sum(
            out * self.rank + self.rank * inp for out, inp in self.lora_shapes[model].values()
        )

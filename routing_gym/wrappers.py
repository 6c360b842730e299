"""Action wrappers for the hybrid (HAPS) envs, so that SB3 can drive them.

The raw HAPS action is ``Dict(assignment=MultiDiscrete([M, M]), lora=Dict(model=Box))``,
which SB3 does not accept. ``FlattenHybridAction`` turns it into one ``Box``;
``LatentLoRA`` shrinks each model's LoRA factors to a few latent dimensions;
``DiscreteOnly`` switches LoRA off and leaves the assignment.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces



def _hybrid_parts(space: gym.Space) -> tuple[spaces.MultiDiscrete, spaces.Dict]:
    if not (
        isinstance(space, spaces.Dict)
        and isinstance(space.spaces.get("assignment"), spaces.MultiDiscrete)
        and isinstance(space.spaces.get("lora"), spaces.Dict)
    ):
        raise ValueError(f"Expected a hybrid Dict(assignment=MultiDiscrete, lora=Dict) action space, got {space}.")
    return space["assignment"], space["lora"]


class FlattenHybridAction(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """One ``Box`` in [-1, 1]: M scores per role (argmax picks the model), then every LoRA vector.

    The discrete choice is read as the argmax of its block of scores, the usual way to
    let a Gaussian policy pick among options.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        assignment, lora = _hybrid_parts(env.action_space)
        self._choices = [int(n) for n in assignment.nvec]
        self._lora_sizes = {name: int(np.prod(box.shape)) for name, box in lora.spaces.items()}
        size = sum(self._choices) + sum(self._lora_sizes.values())
        self.action_space = spaces.Box(-1.0, 1.0, (size,), np.float32)

    def action(self, action: np.ndarray) -> dict:
        flat = np.asarray(action, dtype=np.float32).reshape(-1)
        if flat.shape != self.action_space.shape:
            raise ValueError(f"FlattenHybridAction expects shape {self.action_space.shape}, got {flat.shape}.")
        offset, assignment = 0, []
        for n in self._choices:
            assignment.append(int(np.argmax(flat[offset : offset + n])))
            offset += n
        lora = {}
        for name, size in self._lora_sizes.items():
            lora[name] = np.clip(flat[offset : offset + size], -1.0, 1.0)
            offset += size
        return {"assignment": np.array(assignment, dtype=np.int64), "lora": lora}


class LatentLoRA(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Each model's LoRA factors from a small latent vector through a fixed, seeded basis.

    ``factors = clip(basis @ z, -1, 1)`` with a Gaussian basis whose columns have unit
    RMS, so a latent in [-1, 1] maps to factors of the raw range. PPO then explores
    ``latent_dim`` numbers per model instead of thousands.
    """

    def __init__(self, env: gym.Env, latent_dim: int = 8, seed: int = 0):
        gym.utils.RecordConstructorArgs.__init__(self, latent_dim=latent_dim, seed=seed)
        gym.ActionWrapper.__init__(self, env)
        assignment, lora = _hybrid_parts(env.action_space)
        if latent_dim < 1:
            raise ValueError(f"LatentLoRA latent_dim must be >= 1, got {latent_dim}.")
        rng = np.random.default_rng(seed)
        self.bases = {
            name: (rng.standard_normal((int(np.prod(box.shape)), latent_dim)) / np.sqrt(latent_dim)).astype(np.float32)
            for name, box in lora.spaces.items()
        }
        self.action_space = spaces.Dict(
            {
                "assignment": assignment,
                "lora": spaces.Dict({name: spaces.Box(-1.0, 1.0, (latent_dim,), np.float32) for name in self.bases}),
            }
        )

    def action(self, action: dict) -> dict:
        lora = {}
        for name, basis in self.bases.items():
            latent = np.asarray(action["lora"][name], dtype=np.float32)
            if not np.all(np.isfinite(latent)):
                raise ValueError(f"LatentLoRA: latent for model {name!r} has NaN or inf values.")
            lora[name] = np.clip(basis @ latent, -1.0, 1.0).astype(np.float32)
        return {"assignment": np.asarray(action["assignment"], dtype=np.int64), "lora": lora}


class DiscreteOnly(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """The assignment alone (``MultiDiscrete``), with LoRA off: HAPS without its low level."""

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ActionWrapper.__init__(self, env)
        assignment, lora = _hybrid_parts(env.action_space)
        self._zeros = {name: np.zeros(box.shape, dtype=np.float32) for name, box in lora.spaces.items()}
        self.action_space = spaces.MultiDiscrete(assignment.nvec)

    def action(self, action) -> dict:
        assignment = np.asarray(action, dtype=np.int64).reshape(len(self.action_space.nvec))
        # All-zero factors are exactly no adapter (see LiveRoutingEnv.adapters_from_action).
        return {"assignment": assignment, "lora": {name: zeros.copy() for name, zeros in self._zeros.items()}}

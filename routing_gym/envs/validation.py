"""Input checks every routing env shares: a config update, the action of a step and the render mode.

Both envs families (outcome tables and live Teacher–Student envs) call these, so the same bad
input gets the same error everywhere.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces


def merge_config(owner: str, config: Mapping[str, Any], overrides: Any) -> dict[str, Any]:
    """``config`` updated with a deep copy of ``overrides``; a non-dict or an unknown key raises
    ValueError naming ``owner`` and the known keys."""
    if not isinstance(overrides, dict):
        raise ValueError(f"config must be a dict, got {type(overrides).__name__}.")
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"{owner}: unknown config keys {sorted(unknown)}; known: {sorted(config)}.")
    return {**config, **copy.deepcopy(overrides)}


#: Render modes accepted although the env cannot draw: SB3's ``make_vec_env`` asks for
#: "rgb_array" by default, and ``render()`` then returns None.
TOLERATED_RENDER_MODES = ("rgb_array",)
# exact types: bool (an int subclass) and np.bool_ are not model indices
_INTEGER_TYPES = frozenset(
    {int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64}
)


def require_action(space: spaces.Space, action: Any) -> None:
    """Raise ValueError naming the action and the space unless ``action`` is in ``space``.

    Stricter than ``space.contains`` in one place: a bool (``True``) is not a model index,
    although Python counts it as the int 1. Floats (``2.5``, ``np.float32(1.7)``, NaN), strings
    and None are never in a discrete space, so nothing is truncated or parsed into an index.
    """
    # fast path for the usual case, a plain or numpy integer in a Discrete space: a table env
    # steps ~50k times a second and Space.contains alone takes ~7 µs
    if (
        type(action) in _INTEGER_TYPES
        and type(space) is spaces.Discrete
        and space.start <= action < space.start + space.n
    ):
        return
    if not _in_space(space, action):
        raise ValueError(f"Action {action!r} is outside the action space {space}.")


def _in_space(space: spaces.Space, action: Any) -> bool:
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)) and _is_boolean(action):
        return False
    if isinstance(space, spaces.Dict):
        if not isinstance(action, Mapping) or set(action) != set(space.spaces):
            return False
        return all(_in_space(space.spaces[key], action[key]) for key in space.spaces)
    try:
        return bool(space.contains(action))
    except (TypeError, ValueError):  # e.g. a ragged list handed to a MultiDiscrete
        return False


def _is_boolean(action: Any) -> bool:
    if isinstance(action, (bool, np.bool_)):
        return True
    if isinstance(action, (list, tuple)):
        return any(_is_boolean(a) for a in action)
    return isinstance(action, np.ndarray) and action.dtype == np.bool_


def require_render_mode(env_cls: type, render_mode: str | None) -> None:
    """Raise ValueError at construction for a render mode the env cannot serve (e.g. "human")."""
    supported = tuple(getattr(env_cls, "metadata", {}).get("render_modes", ()))
    if render_mode is None or render_mode in supported or render_mode in TOLERATED_RENDER_MODES:
        return
    raise ValueError(
        f"{env_cls.__name__} does not support render_mode={render_mode!r}; "
        f"use one of {[None, *supported]} (routing envs render text)."
    )

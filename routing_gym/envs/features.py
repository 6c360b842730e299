"""Observation features of a query, beside its embedding: the env option ``features``.

The table, cascade and multi-hop envs take ``features``, a list of names from
``OBSERVATION_FEATURES``:

* ``"embedding"``: the query's sentence embedding (always observed; the name must be listed);
* ``"task"``: a one-hot over the env's task list (``Box(0, 1, (num_tasks,))``, key ``"task"``);
* ``"length"``: the query's prompt length, log-scaled into [0, 1] (``Box(0, 1, (1,))``, key
  ``"length"``); each env's docstring says where its length comes from.

Both are known when a query arrives (its benchmark, its text), so a router may use them. The
one-shot routers read every feature through ``flatten_observation``: the embedding, then the
task one-hot, then the length, so each router in a comparison sees the same inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from gymnasium import spaces

#: Every feature name the option takes, in the order ``flatten_observation`` concatenates them.
OBSERVATION_FEATURES: tuple[str, ...] = ("embedding", "task", "length")
#: Observation keys that hold the query (or context) embedding.
EMBEDDING_KEYS: tuple[str, ...] = ("embedding", "context")
#: The keys of the features beyond the embedding, in concatenation order.
EXTRA_FEATURE_KEYS: tuple[str, ...] = ("task", "length")


def check_features(value: object, key: str = "features") -> tuple[str, ...]:
    """The feature names of config key ``key`` as a tuple; a bad value raises ValueError
    naming the key."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"config key {key!r} must be a list of feature names from {OBSERVATION_FEATURES}, "
            f"got {value!r}."
        )
    names = tuple(value)
    for name in names:
        if name not in OBSERVATION_FEATURES:
            raise ValueError(
                f"config key {key!r}: unknown feature {name!r}; choose from {OBSERVATION_FEATURES}."
            )
    if len(set(names)) != len(names):
        raise ValueError(f"config key {key!r} names a feature twice: {list(names)}.")
    if "embedding" not in names:
        raise ValueError(
            f"config key {key!r} must include 'embedding' (the query is always observed), got "
            f"{list(names)}."
        )
    return names


def feature_spaces(features: Sequence[str], num_tasks: int) -> dict[str, spaces.Box]:
    """The observation entries of the features beyond the embedding, by key."""
    out: dict[str, spaces.Box] = {}
    if "task" in features:
        out["task"] = spaces.Box(0.0, 1.0, (num_tasks,), np.float32)
    if "length" in features:
        out["length"] = spaces.Box(0.0, 1.0, (1,), np.float32)
    return out


def task_one_hot(tasks: Sequence[str], task_list: Sequence[str]) -> np.ndarray:
    """``(n, len(task_list))`` float32: 1 in the column of each query's task (matched by name)."""
    position = {name: i for i, name in enumerate(task_list)}
    missing = sorted({t for t in tasks if t not in position})
    if missing:
        raise ValueError(f"task {missing[0]!r} is not in the env's task list {list(task_list)}.")
    out = np.zeros((len(tasks), len(task_list)), dtype=np.float32)
    out[np.arange(len(tasks)), [position[t] for t in tasks]] = 1.0
    return out


def scaled_log_length(length: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(n, 1)`` float32: ``log1p(length)`` min-max scaled by ``[low, high]`` (log1p units),
    clipped to [0, 1], so a query longer than any seen when the bounds were fixed reads 1."""
    span = max(high - low, 1e-12)
    scaled = (np.log1p(np.asarray(length, dtype=np.float64)) - low) / span
    return np.clip(scaled, 0.0, 1.0).astype(np.float32).reshape(-1, 1)


def flatten_observation(
    observation: np.ndarray | Mapping[str, np.ndarray],
) -> tuple[np.ndarray, bool]:
    """A one-shot router's inputs from an observation or a batch: ``(b, D)`` float32 and whether
    it was a batch. ``D`` = the embedding, then the ``task`` one-hot and the ``length`` where the
    observation has them; other entries (``lam``, ``depth``...) are not query features."""
    if isinstance(observation, Mapping):
        key = next((k for k in EMBEDDING_KEYS if k in observation), None)
        if key is None:
            raise ValueError(f"observation has none of the embedding keys {EMBEDDING_KEYS}.")
        extra = [observation[k] for k in EXTRA_FEATURE_KEYS if k in observation]
        parts = [observation[key], *extra]
    else:
        parts = [observation]
    arrays = [np.asarray(p, dtype=np.float32) for p in parts]
    batched = arrays[0].ndim == 2
    if arrays[0].ndim not in (1, 2):
        raise ValueError(
            f"expected an embedding of shape (d,) or (batch, d), got {arrays[0].shape}."
        )
    rows = [a.reshape(len(arrays[0]) if batched else 1, -1) for a in arrays]
    return np.hstack(rows) if len(rows) > 1 else rows[0], batched

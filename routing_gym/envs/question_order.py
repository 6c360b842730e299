"""Which question an episode asks: one rule for every env that walks a list of questions."""

from __future__ import annotations

import numpy as np


class QuestionOrder:
    """A seeded permutation of the questions (file order without shuffling), walked in a cycle.

    A seed given to ``reset`` rewinds it, so a seeded run replays the same questions; a new
    list of questions (``forget``) starts a fresh order on the next reset.
    """

    def __init__(self):
        self.order: np.ndarray | None = None
        self.cursor = 0

    def forget(self) -> None:
        """The question list changed: draw a new order on the next episode."""
        self.order = None

    def prepare(self, np_random: np.random.Generator, count: int, shuffle: bool, seed: int | None) -> None:
        """Draw the order when a seed is given or none is drawn yet (every reset calls this)."""
        if seed is not None or self.order is None or len(self.order) != count:
            self.order = np_random.permutation(count) if shuffle else np.arange(count)
            self.cursor = 0

    def take(self) -> int:
        """The index of the next question in the order."""
        index = int(self.order[self.cursor % len(self.order)])
        self.cursor += 1
        return index


RESET_OPTIONS = frozenset({"config", "index"})


def checked_reset_options(options) -> dict:
    """The reset options as a dict; anything but 'config' and 'index' is an error."""
    options = dict(options or {})
    unknown = set(options) - RESET_OPTIONS
    if unknown:
        raise ValueError(f"Unknown reset option {sorted(unknown)[0]!r}; use 'config' and/or 'index'.")
    return options


def checked_index(options: dict, count: int) -> int | None:
    """The ``index`` reset option, checked against ``count`` questions; None when absent."""
    if "index" not in options:
        return None
    index = options["index"]
    # int() would quietly turn 2.7 into 2 and True into 1: only a true integer is an index.
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)) or not 0 <= index < count:
        raise ValueError(f"reset option 'index' must be an int in [0, {count}), got {index!r}.")
    return int(index)


def question_for_reset(env, seed: int | None, options) -> int:
    """Apply the reset options ('config' first) and pick the episode's question index.

    ``env`` has ``configure``, ``examples``, ``config["shuffle"]``, ``np_random`` and a
    ``QuestionOrder`` as ``_questions`` (the live Teacher–Student and multi-hop envs).
    """
    options = checked_reset_options(options)
    if "config" in options:
        env.configure(options["config"])
    count = len(env.examples)
    env._questions.prepare(env.np_random, count, env.config["shuffle"], seed)
    index = checked_index(options, count)
    return env._questions.take() if index is None else index

"""Per-query outcomes of a model pool: what every arm scores and costs on every query.

``Outcomes`` is the one outcome matrix of the project. Rows are queries (``query_ids``),
columns are *arms*: an arm names one model per role (``arms[j]`` holds indices into
``models``), so a one-pick table has one arm per model and an action table one arm per
assignment. Models are matched by name (``select_models``, ``column``), never by position.

It is built from each source of outcomes:

* ``from_table_env``: the configured split of an ``LLMRouting-Table-*`` env;
* ``from_outcome_table``: rows of a loaded ``OutcomeTable`` (what a table env is built on);
* ``from_action_table``: an exhaustive ``ActionTable``, one arm per assignment;
* ``from_hop_tree``: a ``HopTree``, one arm per model sequence (path).

Costs are USD (``cost_unit="usd"``) or, after ``normalized(normalizer)``, in the env's
frozen [0, 1] scale (``cost_unit="normalized"``), where ``scores − λ·costs`` is the env's reward.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from routing_gym.errors import UnknownModelError

COST_UNITS = ("usd", "normalized")


@dataclasses.dataclass(frozen=True, eq=False)
class Outcomes:
    """Scores, costs, tokens and features of ``len(query_ids)`` queries × ``len(arms)`` arms."""

    models: tuple[str, ...]  # the pool, by name; arms index into it
    scores: np.ndarray  # (n, k) float64, performance in [0, 1]
    costs: np.ndarray  # (n, k) float64, USD or normalized (``cost_unit``)
    query_ids: tuple[str, ...]  # (n,) unique
    #: Each column's models, one index into ``models`` per role; () = one arm per model.
    arms: tuple[tuple[int, ...], ...] = ()
    features: np.ndarray | None = None  # (n, d) float32: query embeddings / observations
    tokens: np.ndarray | None = None  # (n, k) float64: prompt + completion tokens of the arm
    tasks: tuple[str, ...] | None = None  # (n,) task label of each query
    roles: tuple[str, ...] = ()  # the roles an arm's indices are for; () for one pick or a path
    cost_unit: str = "usd"

    def __post_init__(self):
        # Arrays are copied: an Outcomes never aliases (and so never freezes or mutates) the
        # arrays of the env or table it was read from.
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        put("models", tuple(str(m) for m in self.models))
        put("query_ids", tuple(str(q) for q in self.query_ids))
        put("scores", _matrix("scores", self.scores))
        put("costs", _matrix("costs", self.costs))
        n, k = self.scores.shape
        if not self.models:
            raise ValueError("Outcomes needs at least one model name.")
        duplicate = _first_duplicate(self.models)
        if duplicate is not None:
            raise ValueError(f"Outcomes: model name {duplicate!r} appears twice in {list(self.models)}.")
        arms = self.arms if len(self.arms) else tuple((i,) for i in range(len(self.models)))
        put("arms", tuple(tuple(int(i) for i in arm) for arm in arms))
        if len(self.arms) != k:
            raise ValueError(f"Outcomes: {len(self.arms)} arms for {k} score columns.")
        for arm in self.arms:
            if not arm or min(arm) < 0 or max(arm) >= len(self.models):
                raise ValueError(f"Outcomes: arm {arm} indexes outside the {len(self.models)} models.")
        duplicate = _first_duplicate(self.arms)
        if duplicate is not None:
            raise ValueError(f"Outcomes: arm {duplicate} appears twice.")
        if self.costs.shape != (n, k):
            raise ValueError(f"Outcomes: costs {self.costs.shape} and scores {(n, k)} differ in shape.")
        if len(self.query_ids) != n:
            raise ValueError(f"Outcomes: {len(self.query_ids)} query ids for {n} score rows.")
        duplicate = _first_duplicate(self.query_ids)
        if duplicate is not None:
            raise ValueError(f"Outcomes: query id {duplicate!r} appears twice.")
        if self.tokens is not None:
            put("tokens", _matrix("tokens", self.tokens))
            if self.tokens.shape != (n, k):
                raise ValueError(f"Outcomes: tokens {self.tokens.shape} and scores {(n, k)} differ in shape.")
        if self.features is not None:
            put("features", _matrix("features", self.features, np.float32))
            if self.features.shape[0] != n:
                raise ValueError(f"Outcomes: features {self.features.shape} must have n = {n} rows.")
        if self.tasks is not None:
            put("tasks", tuple(str(t) for t in self.tasks))
            if len(self.tasks) != n:
                raise ValueError(f"Outcomes: {len(self.tasks)} task labels for {n} score rows.")
        put("roles", tuple(self.roles))
        if self.roles and any(len(arm) != len(self.roles) for arm in self.arms):
            raise ValueError(f"Outcomes: every arm needs one model per role {list(self.roles)}.")
        if self.cost_unit not in COST_UNITS:
            raise ValueError(f"Outcomes: cost_unit must be one of {COST_UNITS}, got {self.cost_unit!r}.")
        for name in ("scores", "costs", "tokens", "features"):
            _require_finite(name, getattr(self, name), self.query_ids)

    # ------------------------------------------------------------------ shape and names

    def __len__(self) -> int:
        return len(self.query_ids)

    @property
    def num_arms(self) -> int:
        return len(self.arms)

    @property
    def arm_models(self) -> tuple[tuple[str, ...], ...]:
        """Each arm's model names (one per role or hop)."""
        return tuple(tuple(self.models[i] for i in arm) for arm in self.arms)

    def column(self, *names: str) -> int:
        """The column of the arm that picks these models (one name per role), by name."""
        self._require_models(names)
        key = tuple(self.models.index(m) for m in names)
        if key not in self.arms:
            raise ValueError(f"Outcomes has no arm {list(names)}; its arms are {list(self.arm_models)}.")
        return self.arms.index(key)

    def _require_models(self, names: Iterable[str]) -> None:
        unknown = [m for m in names if m not in self.models]
        if unknown:
            raise UnknownModelError(f"Unknown model {unknown[0]!r}; the outcomes have {list(self.models)}.")

    # ------------------------------------------------------------------ selections

    def select_models(self, names: Sequence[str]) -> "Outcomes":
        """The arms that only use ``names``, re-indexed into ``names`` (in that order)."""
        names = tuple(names)
        self._require_models(names)
        duplicate = _first_duplicate(names)
        if duplicate is not None:
            raise ValueError(f"select_models: model {duplicate!r} is named twice.")
        new_index = {self.models.index(m): i for i, m in enumerate(names)}
        keep = [j for j, arm in enumerate(self.arms) if all(i in new_index for i in arm)]
        if all(len(arm) == 1 for arm in self.arms):  # one pick: columns in the order of `names`
            where = {arm[0]: j for j, arm in enumerate(self.arms)}
            keep = [where[self.models.index(m)] for m in names if self.models.index(m) in where]
        return self._columns(keep, names, [tuple(new_index[i] for i in self.arms[j]) for j in keep])

    def _columns(self, keep: Sequence[int], models: Sequence[str], arms: Sequence[tuple[int, ...]]) -> "Outcomes":
        take = lambda a: None if a is None else a[:, keep]  # noqa: E731
        return dataclasses.replace(self, models=tuple(models), arms=tuple(arms), scores=self.scores[:, keep],
                                   costs=self.costs[:, keep], tokens=take(self.tokens))

    def subset(self, rows: np.ndarray | Sequence[int]) -> "Outcomes":
        """The given rows (indices or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise ValueError(f"subset: a mask of {rows.shape} rows for {len(self)} queries.")
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64).reshape(-1)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise ValueError(f"subset: row index out of range for {len(self)} queries.")
        pick = lambda values: None if values is None else tuple(values[i] for i in rows)  # noqa: E731
        return dataclasses.replace(
            self,
            scores=self.scores[rows],
            costs=self.costs[rows],
            query_ids=pick(self.query_ids),
            features=None if self.features is None else self.features[rows],
            tokens=None if self.tokens is None else self.tokens[rows],
            tasks=pick(self.tasks),
        )

    def select_queries(self, query_ids: Iterable[str]) -> "Outcomes":
        """The rows of these query ids, in that order; an unknown id raises ValueError."""
        where = {q: i for i, q in enumerate(self.query_ids)}
        rows = []
        for q in query_ids:
            if str(q) not in where:
                raise ValueError(f"Outcomes has no query {str(q)!r} ({len(self)} queries).")
            rows.append(where[str(q)])
        return self.subset(np.asarray(rows, dtype=np.int64))

    def normalized(self, normalizer: Callable[[np.ndarray], np.ndarray]) -> "Outcomes":
        """Costs mapped through a (frozen) ``CostNormalizer`` into the env's reward scale."""
        if self.cost_unit != "usd":
            raise ValueError("Outcomes costs are already normalized; normalize USD costs once.")
        costs = np.asarray(normalizer(self.costs), dtype=np.float64).reshape(self.costs.shape)
        return dataclasses.replace(self, costs=costs, cost_unit="normalized")

    # ------------------------------------------------------------------ per-query values

    def rewards(self, lam: float) -> np.ndarray:
        """``scores − λ·costs`` of every (query, arm): the env's reward when costs are normalized."""
        return self.scores - float(lam) * self.costs

    def picked(self, arms: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the score and cost of the arm chosen for it (``arms[i]`` a column)."""
        arms = np.asarray(arms, dtype=np.int64).reshape(-1)
        if arms.shape != (len(self),):
            raise ValueError(f"picked: {arms.shape[0]} choices for {len(self)} queries.")
        if arms.size and (arms.min() < 0 or arms.max() >= self.num_arms):
            raise ValueError(f"picked: arm index out of range for {self.num_arms} arms.")
        rows = np.arange(len(self))
        return self.scores[rows, arms], self.costs[rows, arms]

    def oracle_arms(self, lam: float = 0.0) -> np.ndarray:
        """Per query the arm with the best true reward at ``lam`` (ties go to the cheaper arm)."""
        return np.argmax(self.rewards(lam) - 1e-9 * self.costs, axis=1)

    def best_fixed_arm(self, lam: float = 0.0) -> int:
        """The one arm with the best mean reward at ``lam`` over these queries (ties: cheaper)."""
        mean = self.rewards(lam).mean(axis=0) - 1e-9 * self.costs.mean(axis=0)
        return int(np.argmax(mean))

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_outcome_table(
        cls,
        table: Any,
        rows: np.ndarray | None = None,
        costs: np.ndarray | None = None,
    ) -> "Outcomes":
        """Rows (mask or indices; default all) of a loaded ``OutcomeTable``, one arm per model.

        ``costs`` are the table's USD costs of every row (``table.costs(...)`` with the env's
        completion-length and price settings); by default the table's own.
        """
        costs = table.costs() if costs is None else np.asarray(costs)
        rows = np.arange(len(table)) if rows is None else np.asarray(rows)
        return cls(
            models=tuple(table.models),
            scores=table.scores[rows],
            costs=costs[rows],
            query_ids=tuple(table.ids[rows].tolist()),
            features=table.embeddings[rows],
            tasks=tuple(table.tasks[rows].tolist()),
        )

    @classmethod
    def from_table_env(cls, env: Any, cost_unit: str = "normalized") -> "Outcomes":
        """The configured split of an outcome-table env (``LLMRouting-Table-*``).

        ``cost_unit="normalized"`` (default) maps costs with the env's frozen normalizer, so
        ``rewards(λ)`` are the env's one-call rewards; ``"usd"`` keeps them in dollars.
        """
        base = getattr(env, "unwrapped", env)
        for attr in ("scores", "costs", "cost_normalizer", "model_names", "query_ids", "embeddings"):
            if not hasattr(base, attr):
                raise ValueError(
                    f"{type(base).__name__} is not an outcome-table env (no {attr!r}); "
                    "use Outcomes.from_action_table for a live env."
                )
        if cost_unit not in COST_UNITS:
            raise ValueError(f"cost_unit must be one of {COST_UNITS}, got {cost_unit!r}.")
        outcomes = cls(
            models=tuple(base.model_names),
            scores=base.scores,
            costs=base.costs,
            query_ids=tuple(base.query_ids),
            # what a one-shot router reads of each query: the embedding, with the task one-hot
            # and length where the env's ``features`` name them
            features=getattr(base, "observed_inputs", base.embeddings),
            tasks=tuple(base.query_tasks) if hasattr(base, "query_tasks") else None,
        )
        return outcomes.normalized(base.cost_normalizer) if cost_unit == "normalized" else outcomes

    @classmethod
    def from_action_table(
        cls,
        table: Any,
        models: Sequence[str],
        normalizer: Callable[[np.ndarray], np.ndarray] | None = None,
        question_ids: Iterable[str] | None = None,
        arms: Sequence[Sequence[int]] | None = None,
        features: Mapping[str, np.ndarray] | None = None,
    ) -> "Outcomes":
        """An exhaustive ``ActionTable``: one row per question, one arm per assignment of ``models``.

        ``arms`` (model indices per role, in the table's ``roles`` order) are the columns; by
        default every assignment the table has, in ``itertools.product`` order (student first).
        ``question_ids`` picks and orders the rows (default: the table's order); ids the table
        lacks are left out. ``normalizer`` maps costs to the env's scale. ``features`` gives each
        question's feature vector by id. Raises ``UnknownModelError`` for a row's model outside
        ``models`` and ValueError for a question without every arm (an unfinished build).
        """
        models = tuple(models)
        index = {m: i for i, m in enumerate(models)}
        roles = tuple(table.roles)
        cells: dict[str, dict[tuple[int, ...], tuple[float, float, float]]] = {}
        for row in table.rows:
            unknown = [m for m in row["assignment"].values() if m not in index]
            if unknown:
                raise UnknownModelError(
                    f"ActionTable row of question {row['question_id']!r} uses model {unknown[0]!r}, "
                    f"which is not among the models {list(models)}."
                )
            arm = tuple(index[row["assignment"][role]] for role in roles)
            tokens = float(row.get("prompt_tokens", 0)) + float(row.get("completion_tokens", 0))
            cells.setdefault(str(row["question_id"]), {})[arm] = (float(row["perf"]), float(row["cost"]), tokens)
        if arms is None:
            product = itertools.product(range(len(models)), repeat=len(roles))
            arms = [a for a in product if any(a in c for c in cells.values())]
        arms = [tuple(int(i) for i in a) for a in arms]
        keep = [str(q) for q in (question_ids if question_ids is not None else cells) if str(q) in cells]
        for q in keep:
            have = sum(a in cells[q] for a in arms)
            if have < len(arms):
                raise ValueError(
                    f"ActionTable question {q!r} has {have} of {len(arms)} assignments; "
                    "finish the exhaustive build (it resumes) first."
                )

        def matrix(part: int) -> np.ndarray:
            return np.array([[cells[q][a][part] for a in arms] for q in keep], dtype=np.float64).reshape(
                len(keep), len(arms)
            )

        outcomes = cls(models=models, scores=matrix(0), costs=matrix(1), tokens=matrix(2), query_ids=tuple(keep),
                       arms=tuple(arms), roles=roles, features=_feature_rows(features, keep, "ActionTable"))
        return outcomes if normalizer is None else outcomes.normalized(normalizer)

    @classmethod
    def from_hop_tree(
        cls,
        tree: Any,
        lengths: Iterable[int] | None = None,
        normalizer: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> "Outcomes":
        """A built ``HopTree``: one row per query, one arm per model sequence (path) of the given
        ``lengths`` (default 1..depth), scored as if the episode stopped after that path.

        Features are each query's root context (what the env shows before the first hop).
        """
        models = tuple(tree.models)
        lengths = list(range(1, tree.depth + 1)) if lengths is None else [int(n) for n in lengths]
        bad = [n for n in lengths if not 1 <= n <= tree.depth]
        if bad:
            raise ValueError(f"from_hop_tree: path length {bad[0]} outside 1..{tree.depth} (the tree's depth).")
        arms = [p for n in lengths for p in itertools.product(range(len(models)), repeat=n)]
        ids = list(tree.queries)
        scores, costs, tokens, features = [], [], [], []
        for q in ids:
            nodes = tree.queries[q]["nodes"]
            missing = [p for p in [(), *arms] if p not in nodes]
            if missing:
                raise ValueError(f"HopTree query {q!r} lacks the node of path {list(missing[0])}.")
            picked = [nodes[p] for p in arms]
            scores.append([float(node["score"]) for node in picked])
            costs.append([float(node["cost"]) for node in picked])
            tokens.append([node["prompt_tokens"] + node["completion_tokens"] for node in picked])
            features.append(_decode_vector(nodes[()]["context"]))
        shape = (len(ids), len(arms))
        outcomes = cls(
            models=models,
            scores=np.asarray(scores, dtype=np.float64).reshape(shape),
            costs=np.asarray(costs, dtype=np.float64).reshape(shape),
            tokens=np.asarray(tokens, dtype=np.float64).reshape(shape),
            query_ids=tuple(ids),
            arms=tuple(arms),
            features=np.stack(features) if features else None,
            tasks=tuple(str(tree.queries[q]["task"]) for q in ids),
        )
        return outcomes if normalizer is None else outcomes.normalized(normalizer)


# ---------------------------------------------------------------------------- helpers


def _matrix(name: str, values: Any, dtype=np.float64) -> np.ndarray:
    array = np.array(values, dtype=dtype, order="C")  # a copy (see __post_init__)
    if array.ndim != 2:
        raise ValueError(f"Outcomes: {name} must be a 2-D (queries, columns) array, got shape {array.shape}.")
    return array


def _require_finite(name: str, array: np.ndarray | None, query_ids: Sequence[str]) -> None:
    if array is None or array.size == 0:
        return
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"Outcomes: {name} has a NaN or infinite value at query {query_ids[row]!r}, column {col}.")


def _first_duplicate(values: Iterable[Any]) -> Any:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _feature_rows(features: Mapping[str, np.ndarray] | None, ids: Sequence[str], source: str) -> np.ndarray | None:
    if features is None:
        return None
    missing = [q for q in ids if q not in features]
    if missing:
        raise ValueError(f"{source} question {missing[0]!r} has no features (not in the given split).")
    return np.stack([np.asarray(features[q], dtype=np.float32) for q in ids]) if ids else None


def _decode_vector(text: str) -> np.ndarray:
    # hop_tree.encode_vector's format (float32 bytes, base64), read here without importing the
    # builder layer, which sits above this module
    return np.frombuffer(base64.b64decode(text), dtype=np.float32)

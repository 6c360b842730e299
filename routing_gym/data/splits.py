"""Deterministic train/valid/test assignment by a salted hash of each id.

An id's split depends only on the id, the salt and the fractions: never on the order of
the ids, on which other ids exist, or on the Python process (``hash()`` is salted per
process, so SHA-256 is used instead).
"""

from __future__ import annotations

import hashlib
import math
from types import MappingProxyType
from typing import Hashable, Iterable, Mapping

DEFAULT_FRACTIONS: Mapping[str, float] = MappingProxyType(
    {"train": 0.8, "valid": 0.1, "test": 0.1}
)
DEFAULT_SALT = "routing_gym"


def _check_fractions(fractions: Mapping[str, float]) -> list[tuple[str, float]]:
    if not fractions:
        raise ValueError("fractions must name at least one split")
    items = []
    for name, value in fractions.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"split names must be non-empty strings, got {name!r}")
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"fraction of split {name!r} must be a finite number >= 0, got {value!r}"
            )
        items.append((name, float(value)))
    total = math.fsum(v for _, v in items)
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must sum to 1, got {total} from {dict(fractions)}")
    return items


def unit_hash(id: Hashable, salt: str = DEFAULT_SALT) -> float:
    """A stable pseudo-uniform number in [0, 1) from ``salt`` and ``str(id)``."""
    digest = hashlib.sha256(f"{salt}\x00{id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def first_by_hash(examples: list, limit: int | None, salt: str = DEFAULT_SALT, skip: int = 0) -> list:
    """The ``limit`` examples whose ids hash lowest after the ``skip`` lowest, in their original
    order: a fixed sample spread over a file that is sorted by topic (MMLU comes subject by
    subject). Disjoint ``skip`` ranges give disjoint samples."""
    ranked = sorted(examples, key=lambda e: unit_hash(e.id, salt))
    chosen = {e.id for e in ranked[skip : None if limit is None else skip + limit]}
    return [e for e in examples if e.id in chosen]


def assign_split(
    id: Hashable,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    salt: str = DEFAULT_SALT,
) -> str:
    """The split ``id`` belongs to; ids are compared as ``str(id)`` (so 7 and "7" agree)."""
    return _assign(unit_hash(id, salt), _check_fractions(fractions))


def _assign(u: float, items: list[tuple[str, float]]) -> str:
    edge = 0.0
    for name, fraction in items:
        edge += fraction
        if u < edge:
            return name
    # rounding can leave the cumulative sum a hair under 1: the last non-empty split takes the rest
    return next(name for name, fraction in reversed(items) if fraction > 0)


def split_ids(
    ids: Iterable[Hashable],
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    salt: str = DEFAULT_SALT,
) -> dict[str, list]:
    """Group ``ids`` by ``assign_split``: one key per split in ``fractions``, ids in input order.

    Raises ValueError on a repeated id (compared as ``str``), which would otherwise be
    counted twice in one split.
    """
    items = _check_fractions(fractions)
    out: dict[str, list] = {name: [] for name, _ in items}
    seen: set[str] = set()
    for id in ids:
        key = str(id)
        if key in seen:
            raise ValueError(f"duplicate id {id!r} in split_ids")
        seen.add(key)
        out[_assign(unit_hash(id, salt), items)].append(id)
    return out


def select_split(
    items: Iterable,
    split: str | None,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    salt: str = DEFAULT_SALT,
) -> list:
    """The items whose ``.id`` hashes into ``split``, in input order; ``None`` or "all" keeps all.

    Raises ValueError naming the split when it is not a key of ``fractions``.
    """
    items = list(items)
    if split is None or split == "all":
        return items
    checked = _check_fractions(fractions)
    if split not in dict(checked):
        raise ValueError(f"unknown split {split!r}; choose one of {sorted(dict(checked))} or 'all'")
    return [item for item in items if _assign(unit_hash(item.id, salt), checked) == split]

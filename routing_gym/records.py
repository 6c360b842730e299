"""Resumable results on disk: content digests and JSON Lines record files.

Every resumable result (bench rows, curves, action tables, hop trees, HAPS runs) is keyed by
a digest of what it was computed from, and appended one JSON line at a time so that a killed
run loses at most its last, unfinished line:

* ``json_digest(value)``: sha256 hex of ``value`` as canonical JSON (sorted keys; anything JSON
  cannot write is written as its ``str``). Resume keys of results on disk are built from it,
  so its bytes must never change.
* ``content_digest(question)``: ``json_digest`` of a question's fields (a dataclass), else of
  its ``repr``.
* ``append_record(path, record)``, ``read_records(path)`` and ``drop_partial_last_line(path)``.

(Reading a data set's files record by record, with errors that say where, is
``routing_gym.data.records``.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def json_digest(value: Any) -> str:
    """sha256 hex digest of ``value`` as canonical JSON (sorted keys, ``str`` for the rest)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def content_digest(value: Any) -> str:
    """sha256 of a question's content (a dataclass's fields, else its repr)."""
    return json_digest(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else repr(value))


def drop_partial_last_line(path: Path) -> None:
    """Cut an unfinished last line (a run killed mid-write) so appending starts clean."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line and force it to disk (a kill leaves at most a partial last line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=_json_default) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON Lines file; an unfinished last line (a killed run) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # the partial write of an interrupted run
                break
            raise ValueError(f"{path}, line {number}: not valid JSON.") from None
    return records

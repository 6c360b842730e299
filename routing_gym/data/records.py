"""Reading JSON / JSON Lines data files record by record, with errors that say where."""

from __future__ import annotations

import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from routing_gym.errors import DataFormatError
from routing_gym.paths import data_dir as resolve_data_dir

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_PATH_SUFFIXES = (".json", ".jsonl", ".gz", ".csv")

_MISSING = object()


@dataclass(frozen=True)
class Record:
    """One JSON object read from a data file, with its position for error messages."""

    path: Path
    line: int | None  # 1-based line of a JSON Lines file; None for an element of a JSON list
    index: int  # 1-based position among the file's records
    data: dict

    def error(self, message: str, field: str | None = None) -> DataFormatError:
        """A DataFormatError that names this record's file, line (or record index) and field."""
        if self.line is None:
            message = f"record {self.index}: {message}"
        return DataFormatError(self.path, message, line=self.line, field=field)

    def require(self, field: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value of ``field``, checked to be of ``kind``; ``default`` when given and absent."""
        if field not in self.data:
            if default is not _MISSING:
                return default
            raise self.error(f"missing required field {field!r}", field=field)
        value = self.data[field]
        # bool is an int subclass; a JSON true where a number belongs is a data error
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            expected = " or ".join(k.__name__ for k in _as_tuple(kind))
            raise self.error(f"expected {expected}, got {type(value).__name__}", field=field)
        return value


    def require_text(self, field: str) -> str:
        """The value of ``field``: a string with more than white space (a blank question would
        be asked and scored as if it were one)."""
        value = self.require(field, str)
        if not value.strip():
            raise self.error(f"expected non-empty text, got {value!r}", field=field)
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _open_text(path: Path):
    # utf-8-sig drops the byte-order mark some editors (Excel, Notepad) put first
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return open(path, encoding="utf-8-sig")


class _RepeatedKey(ValueError):
    """A JSON object names the same key twice (json would keep only the last value)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        raise _RepeatedKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return data


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_unique_keys)


def _lone_surrogate(value: Any) -> tuple[str, str] | None:
    """``(key, text)`` of the first string in ``value`` holding a lone surrogate, else None.

    JSON can spell one (an unpaired ``\\ud800`` escape); it is not Unicode text, and encoding
    it later (hashing, tokenizing) fails far from the file.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                return key, item[max(0, exc.start - 10) : exc.end + 10]
        elif isinstance(item, dict):
            for k, v in item.items():
                stack.append((str(k), k))
                stack.append((str(k) if not key else key, v))
        elif isinstance(item, list):
            stack.extend((key, v) for v in item)
    return None


def iter_json_records(path: str | os.PathLike) -> Iterator[Record]:
    """Yield the objects of a JSON Lines file (``.jsonl``) or a JSON list file (``.json``).

    Either may be gzipped (``.gz``). Blank lines in JSON Lines are skipped.
    Raises FileNotFoundError when the file is missing and DataFormatError on a line
    that is not JSON or a record that is not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {path} does not exist.")
    name = path.name[: -len(".gz")] if path.suffix == ".gz" else path.name
    if name.endswith(".json"):
        yield from _iter_json_list(path)
    else:
        yield from _iter_json_lines(path)


def _iter_json_lines(path: Path) -> Iterator[Record]:
    index = 0
    line_no = 0
    with _open_text(path) as handle:
        lines = iter(handle)
        while True:
            try:
                text = next(lines)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    path, f"not valid UTF-8 ({exc.reason})", line=line_no + 1
                ) from exc
            line_no += 1
            if not text.strip():
                continue
            try:
                data = _loads(text)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, f"not valid JSON ({exc.msg})", line=line_no) from exc
            except _RepeatedKey as exc:
                key = exc.args[0]
                raise DataFormatError(path, f"key {key!r} appears twice", line=line_no, field=key)
            if "\\ud" in text.lower():  # only an escape can spell a lone surrogate: check then
                bad = _lone_surrogate(data)
                if bad is not None:
                    raise DataFormatError(
                        path,
                        f"lone surrogate in {bad[1]!r}: not valid Unicode text",
                        line=line_no,
                        field=bad[0] or None,
                    )
            index += 1
            if not isinstance(data, dict):
                raise DataFormatError(
                    path, f"expected a JSON object, got {type(data).__name__}", line=line_no
                )
            yield Record(path, line_no, index, data)


def _iter_json_list(path: Path) -> Iterator[Record]:
    try:
        with _open_text(path) as handle:
            data = _loads(handle.read())
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not valid UTF-8 ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from exc
    except _RepeatedKey as exc:
        key = exc.args[0]
        raise DataFormatError(path, f"key {key!r} appears twice", field=key) from None
    if not isinstance(data, list):
        raise DataFormatError(path, f"expected a JSON list of objects, got {type(data).__name__}")
    for index, item in enumerate(data, start=1):
        record = Record(path, None, index, item)
        if not isinstance(item, dict):
            raise record.error(f"expected a JSON object, got {type(item).__name__}")
        yield record


def looks_like_path(split: str | os.PathLike) -> bool:
    """Whether a ``split`` argument names a file rather than a split of the data directory."""
    if isinstance(split, os.PathLike):
        return True
    return "/" in split or os.sep in split or split.lower().endswith(_PATH_SUFFIXES)


def resolve_split_file(
    dataset: str,
    split: str | os.PathLike,
    data_dir: str | os.PathLike | None,
    suffixes: Sequence[str] = (".jsonl", ".json"),
) -> Path:
    """The file of ``split``: a path as given, else ``<data_dir>/<dataset>/<split><suffix>``.

    The first existing suffix wins. Raises FileNotFoundError naming every path tried.
    """
    if looks_like_path(split):
        path = Path(split).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{dataset} file {path} does not exist.")
        return path
    if not _SPLIT_NAME.fullmatch(split):
        raise ValueError(f"{dataset} split {split!r} is neither a split name nor a file path.")
    folder = resolve_data_dir(data_dir) / dataset
    candidates = [folder / f"{split}{suffix}" for suffix in suffixes]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"No {dataset} split {split!r}: none of {tried} exists.")

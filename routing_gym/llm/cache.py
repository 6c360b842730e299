"""Persistent, process-safe cache of LLM responses, for exact replay without loading models.

The pool asks the cache before it runs a model: a hit returns the stored completion, token
ids and counts exactly as they were first produced. The store is one SQLite file in WAL mode,
so many processes (``SubprocVecEnv`` workers) can read and write it at once, and a process
killed mid-write leaves every committed record intact and no half-written one.

Run ``python -m routing_gym.llm.cache [PATH]`` to print the per-model statistics of a cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import operator
import os
import sqlite3
import sys
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from routing_gym.errors import CacheError
from routing_gym.paths import cache_dir

SCHEMA_NAME = "routing_gym.response_cache"
SCHEMA_VERSION = 1
KEY_VERSION = 1  # bump when the key payload changes, so old entries can never be hit by mistake
MODES = ("rw", "ro", "off")
DEFAULT_FILENAME = "responses.sqlite"
FLUSH_SECONDS = 5.0

_SQLITE_HEADER = b"SQLite format 3\x00"
_HEX = frozenset("0123456789abcdef")
_SQL_CHUNK = 500  # stays under SQLite's limit on bound parameters in one statement

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS responses ("
    " key TEXT PRIMARY KEY, model TEXT NOT NULL, record TEXT NOT NULL, created_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS responses_by_model ON responses (model)",
    "CREATE TABLE IF NOT EXISTS stats ("
    " model TEXT PRIMARY KEY, hits INTEGER NOT NULL DEFAULT 0, misses INTEGER NOT NULL DEFAULT 0)",
)
_UPSERT_STATS = (
    "INSERT INTO stats (model, hits, misses) VALUES (?, ?, ?) ON CONFLICT (model) DO UPDATE"
    " SET hits = hits + excluded.hits, misses = misses + excluded.misses"
)

# Connections inherited through fork() are parked here, never used and never closed: SQLite
# forbids using a connection across fork, and closing it in the child could run its shutdown
# logic on a file the parent still has open.
_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []


def default_cache_path() -> Path:
    """The response cache shared unless another is given: ``<cache dir>/responses.sqlite``."""
    return cache_dir() / DEFAULT_FILENAME


class _ProcessState:
    """What one process holds: its connection, a lock and lookup counts not yet on disk."""

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.conn: sqlite3.Connection | None = None
        self.pending: dict[str, list[int]] = {}  # model -> [hits, misses]
        self.pending_lookups = 0
        self.last_flush = time.monotonic()


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # BEGIN IMMEDIATE takes the write lock up front, so a second writer waits in busy_timeout;
    # a deferred transaction that reads and then writes can fail at once with SQLITE_BUSY in WAL.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _write_pending(conn: sqlite3.Connection, state: _ProcessState) -> None:
    if state.pending:
        conn.executemany(_UPSERT_STATS, [(m, h, s) for m, (h, s) in state.pending.items()])


def _mark_flushed(state: _ProcessState) -> None:
    state.pending.clear()
    state.pending_lookups = 0
    state.last_flush = time.monotonic()


def _release(state: _ProcessState, writable: bool, raise_errors: bool) -> None:
    """Flush pending counts (writable caches) and close this process's connection."""
    if state.pid != os.getpid():
        return
    with state.lock:
        conn, state.conn = state.conn, None
        if conn is None:
            return
        try:
            if writable and state.pending:
                with _write_transaction(conn):
                    _write_pending(conn, state)
                _mark_flushed(state)
        except sqlite3.Error:
            if raise_errors:
                raise
        finally:
            conn.close()


def _canonical(value: Any, where: str) -> Any:
    """JSON-ready copy of ``value``; equal values are spelled alike (1 == 1.0, tuple == list)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} = {value!r}: a cache key cannot hold a non-finite float.")
        return int(value) if value.is_integer() else float(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):  # numpy scalar
        return _canonical(value.item(), where)
    if callable(getattr(value, "tolist", None)):  # numpy array
        return _canonical(value.tolist(), where)
    raise TypeError(
        f"{where}: {type(value).__name__} cannot be part of a cache key; use JSON types."
    )


def _check_key(key: Any) -> str:
    if not (isinstance(key, str) and len(key) == 64 and _HEX.issuperset(key)):
        raise ValueError(
            f"Cache key must be a 64-char lowercase sha256 hex digest (see make_key), got {key!r}."
        )
    return key


def _check_model(model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise ValueError(f"Cache model name must be a non-empty string, got {model!r}.")
    return model


def _dump_record(record: Any, key: str) -> str:
    if not isinstance(record, Mapping):
        raise TypeError(
            f"Cache record for key {key[:12]}... must be a dict, got {type(record).__name__}."
        )
    try:
        # allow_nan stays on: log-probabilities can be -inf and must round-trip.
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"Cache record for key {key[:12]}... is not JSON data: {exc}") from None


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` if it is a file (then no folder can be made)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _require_writable(path: Path) -> None:
    """Raise CacheError if a read-write cache at ``path`` could not be created or written."""
    folder = next((p for p in path.parents if p.exists()), None)
    if path.exists() and not os.access(path, os.W_OK):
        raise CacheError(
            f"Response cache {path} is not writable (permissions); "
            "make it writable or read it with cache_mode='ro'."
        )
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise CacheError(
            f"Response cache {path} cannot be written: the folder {folder} is not writable "
            "(SQLite creates the file and its -wal and -shm files there); give a writable path "
            "or read an existing cache with cache_mode='ro'."
        )


class ResponseCache:
    """Persistent LLM response store in one SQLite file, shared safely by many processes.

    ``mode``: ``"rw"`` reads and writes; ``"ro"`` reads only, and ``put``/``put_many`` store
    nothing but add to ``skipped_puts`` (a missing file reads as empty and is not created);
    ``"off"`` never touches disk and every lookup misses.

    Records are JSON data (dict, list, str, int, float, bool, None); tuples come back as lists.
    The first write of a key wins and later puts of that key are ignored, so a record never
    changes once any process may have read it. Every ``put``/``put_many`` is one transaction.
    Hits and misses are counted per model in memory and written to the file with the next put,
    every ``flush_every`` lookups or ``FLUSH_SECONDS``, on ``stats()`` and on ``close()``.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        mode: str = "rw",
        timeout: float = 60.0,
        flush_every: int = 256,
    ):
        if mode not in MODES:
            raise ValueError(f"ResponseCache mode must be one of {MODES}, got mode={mode!r}.")
        if not timeout > 0:
            raise ValueError(f"ResponseCache timeout must be > 0 seconds, got timeout={timeout!r}.")
        if flush_every < 1:
            raise ValueError(
                f"ResponseCache flush_every must be >= 1, got flush_every={flush_every!r}."
            )
        self.mode = mode
        if mode == "off":
            self.path = None if path is None else Path(path).expanduser()
        else:
            self.path = (
                Path(path).expanduser() if path is not None else default_cache_path()
            )
        self.timeout = float(timeout)
        self.flush_every = int(flush_every)
        self.skipped_puts = 0
        self._attach_state()
        if mode != "off":
            with self._state.lock:
                self._connection()  # a foreign or corrupt file fails here, not on first use

    # ----------------------------------------------------------------- keys
    @staticmethod
    def make_key(
        model_id: str,
        prompt_ids: Sequence[int],
        decoding: Mapping[str, Any],
        adapter_digest: str = "",
        kind: str = "generate",
    ) -> str:
        """sha256 hex digest of the canonical JSON of everything that determines a response."""
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"make_key: model_id must be a non-empty string, got {model_id!r}.")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"make_key: kind must be a non-empty string, got {kind!r}.")
        if not isinstance(adapter_digest, str):
            raise TypeError(
                f"make_key: adapter_digest must be a string, got {type(adapter_digest).__name__}."
            )
        if not isinstance(decoding, Mapping):
            raise TypeError(f"make_key: decoding must be a mapping, got {type(decoding).__name__}.")
        if isinstance(prompt_ids, (str, bytes)):
            raise TypeError("make_key: prompt_ids must be a sequence of token ids, got a string.")
        try:
            ids = [operator.index(t) for t in prompt_ids]
        except TypeError as exc:
            raise TypeError(f"make_key: prompt_ids must be integer token ids ({exc}).") from None
        payload = {
            "v": KEY_VERSION,
            "kind": kind,
            "model": model_id,
            "adapter": adapter_digest,
            "decoding": _canonical(dict(decoding), "decoding"),
            "prompt_ids": ids,
        }
        text = json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    # --------------------------------------------------------------- lookups
    def get(self, key: str, model: str | None = None) -> dict | None:
        """The stored record for ``key``, or None; counts a hit or miss for ``model``."""
        _check_key(key)
        state = self._process_state()
        with state.lock, self._sqlite_errors():
            conn = self._connection()
            row = None
            if conn is not None:
                row = conn.execute(
                    "SELECT model, record FROM responses WHERE key = ?", (key,)
                ).fetchone()
            if row is None:
                self._count(model, 0, 1)
                return None
            self._count(model if model is not None else row[0], 1, 0)
            return self._parse(key, row[1])

    def get_many(self, keys: Sequence[str], model: str | None = None) -> dict[str, dict]:
        """The stored records among ``keys`` as ``{key: record}``; absent keys are left out."""
        unique = list(dict.fromkeys(_check_key(k) for k in keys))
        found: dict[str, dict] = {}
        state = self._process_state()
        with state.lock, self._sqlite_errors():
            conn = self._connection()
            hit_models: list[str] = []
            if conn is not None:
                for start in range(0, len(unique), _SQL_CHUNK):
                    chunk = unique[start : start + _SQL_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, model, record FROM responses WHERE key IN ({marks})"
                    for key, stored_model, record in conn.execute(sql, chunk):
                        found[key] = self._parse(key, record)
                        hit_models.append(stored_model)
            if model is not None:
                self._count(model, len(found), len(unique) - len(found))
            else:
                for stored_model in hit_models:
                    self._count(stored_model, 1, 0)
        return found

    # ---------------------------------------------------------------- writes
    def put(self, key: str, model: str, record: dict) -> None:
        """Store ``record`` under ``key`` for ``model`` in one transaction (first write wins)."""
        self.put_many([(key, model, record)])

    def put_many(self, items: Sequence[tuple[str, str, dict]]) -> None:
        """Store many ``(key, model, record)`` items in ONE transaction: all of them or none."""
        items = list(items)
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 3):
                raise ValueError(
                    f"put_many items must be (key, model, record) tuples, got {item!r:.80}."
                )
            _check_key(item[0])
            _check_model(item[1])
        if self.mode != "rw":
            self.skipped_puts += len(items)
            return
        now = time.time()
        rows = [(key, model, _dump_record(record, key), now) for key, model, record in items]
        state = self._process_state()
        with state.lock, self._sqlite_errors():
            conn = self._connection()
            with _write_transaction(conn):
                conn.executemany(
                    "INSERT OR IGNORE INTO responses (key, model, record, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    rows,
                )
                _write_pending(conn, state)  # piggyback the lookup counts on this commit
            _mark_flushed(state)

    # ------------------------------------------------------------ statistics
    def stats(self) -> dict[str, dict[str, int]]:
        """``{model: {"entries", "hits", "misses"}}`` over every process that used this file."""
        out: dict[str, dict[str, int]] = {}

        def row(model: str) -> dict[str, int]:
            return out.setdefault(model, {"entries": 0, "hits": 0, "misses": 0})

        state = self._process_state()
        with state.lock, self._sqlite_errors():
            conn = self._connection()
            if conn is not None:
                if self.mode == "rw" and state.pending:
                    self._flush(state, conn)
                for model, n in conn.execute(
                    "SELECT model, COUNT(*) FROM responses GROUP BY model"
                ):
                    row(model)["entries"] = n
                for model, hits, misses in conn.execute("SELECT model, hits, misses FROM stats"):
                    row(model)["hits"] += hits
                    row(model)["misses"] += misses
            for model, (hits, misses) in state.pending.items():  # "ro"/"off": kept in memory only
                row(model)["hits"] += hits
                row(model)["misses"] += misses
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        state = self._process_state()
        with state.lock, self._sqlite_errors():
            conn = self._connection()
            return (
                0 if conn is None else conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            )

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Write pending counts and close this process's connection; safe to call twice.

        The cache stays usable: the next call reopens the file.
        """
        with self._sqlite_errors():
            _release(self._process_state(), self.mode == "rw", raise_errors=True)

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # The connection and the unflushed counts stay with this process; the copy reopens lazily.
        state = self.__dict__.copy()
        state.pop("_state", None)
        state.pop("_finalizer", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._attach_state()

    def __repr__(self) -> str:
        return f"ResponseCache(path={str(self.path)!r}, mode={self.mode!r})"

    # -------------------------------------------------------------- internals
    def _parse(self, key: str, text: Any) -> dict:
        """A stored record; one that is not a JSON object (a damaged or foreign row) raises
        CacheError naming the file and the key."""
        try:
            record = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise CacheError(
                f"Response cache {self.path}: the record of key {key} is not JSON ({exc}); "
                "the file is damaged: delete that row or move the file away."
            ) from None
        if not isinstance(record, dict):
            raise CacheError(
                f"Response cache {self.path}: the record of key {key} is a "
                f"{type(record).__name__}, not a JSON object; the file is damaged."
            )
        return record

    def _attach_state(self) -> None:
        self._state = _ProcessState()
        # Best effort for callers that never close(): flush counts at garbage collection or exit.
        self._finalizer = weakref.finalize(self, _release, self._state, self.mode == "rw", False)

    def _process_state(self) -> _ProcessState:
        """This process's state; after a fork the inherited connection is parked, not reused."""
        if self._state.pid != os.getpid():
            if self._state.conn is not None:
                _INHERITED_CONNECTIONS.append(self._state.conn)
            self._finalizer.detach()
            self._attach_state()  # the parent still owns and will flush its pending counts
        return self._state

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise CacheError(f"Response cache {self.path}: {exc}") from exc

    def _count(self, model: str | None, hits: int, misses: int) -> None:
        if model is None:  # a miss without a model name cannot be attributed to anyone
            return
        state = self._state
        counts = state.pending.setdefault(model, [0, 0])
        counts[0] += hits
        counts[1] += misses
        state.pending_lookups += hits + misses
        if self.mode == "rw" and (
            state.pending_lookups >= self.flush_every
            or time.monotonic() - state.last_flush >= FLUSH_SECONDS
        ):
            self._flush(state, self._connection())

    def _flush(self, state: _ProcessState, conn: sqlite3.Connection) -> None:
        with _write_transaction(conn):
            _write_pending(conn, state)
        _mark_flushed(state)

    def _connection(self) -> sqlite3.Connection | None:
        """This process's connection, opened on first use; None when there is nothing to read."""
        state = self._state
        if state.conn is None and self.mode != "off":
            state.conn = self._open()
        return state.conn

    def _open(self) -> sqlite3.Connection | None:
        path = self.path
        try:
            if path.is_dir():
                raise CacheError(f"Response cache path {path} is a directory; give a file path.")
            blocker = _file_above(path)
            if blocker is not None:
                raise CacheError(
                    f"Response cache path {path} is under {blocker}, which is a file, not a "
                    "folder; give a path inside a folder."
                )
            if self.mode == "rw":
                _require_writable(path)
            if path.exists() and path.stat().st_size > 0:
                with open(path, "rb") as fh:
                    header = fh.read(len(_SQLITE_HEADER))
                if header != _SQLITE_HEADER:
                    raise CacheError(
                        f"{path} is not a SQLite database, so it is not a routing_gym "
                        "response cache; move it away or pass another path."
                    )
            if self.mode == "ro":
                if not path.exists():
                    return None
                uri = path.resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(
                    uri,
                    uri=True,
                    timeout=self.timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                # A full PRAGMA quick_check reads the whole file and every worker process opens
                # it, so corruption is detected by the header check and sqlite3.DatabaseError.
                tables = self._tables(conn)
                if self.mode == "rw":
                    self._enable_wal(conn)
                    if not tables:
                        tables = self._create_schema(conn)
                self._check_schema(conn, tables)
            except BaseException:
                conn.close()
                raise
            return conn
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise CacheError(f"Response cache {path}: {exc}") from exc
            if self.mode == "ro":  # already read-only: the hint must be another one
                raise CacheError(
                    f"Response cache {path} cannot be read ({exc}): even read-only, SQLite needs "
                    f"to create its -shm file beside a WAL cache, and the folder {path.parent} is "
                    "not writable; copy the file to a writable folder and read it there."
                ) from exc
            raise CacheError(
                f"Response cache {path} cannot be opened for writing ({exc}): its folder "
                f"{path.parent} must be writable (SQLite adds -wal and -shm files beside it); "
                "or read it with cache_mode='ro'."
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"{path} cannot be opened as a routing_gym response cache ({exc}); "
                "it may be corrupt or belong to another application. "
                "Move it away or pass another path."
            ) from exc

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                journal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                # Switching a fresh file to WAL needs an exclusive lock and SQLite may report
                # "locked" at once, without its busy handler, while another process does the switch.
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if journal.lower() != "wal":
            raise CacheError(
                f"{self.path}: SQLite refused WAL journaling (got {journal!r}); "
                "the response cache needs a local file system that supports shared memory."
            )
        # With WAL, synchronous=NORMAL skips the fsync per commit but a commit is still in the WAL
        # (in the OS page cache) before COMMIT returns, so a killed process loses nothing; only an
        # OS crash or power cut can drop the latest commits, and even that never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")

    def _create_schema(self, conn: sqlite3.Connection) -> set[str]:
        with _write_transaction(conn):
            tables = self._tables(conn)  # another process may have created it meanwhile
            if not tables:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema", SCHEMA_NAME), ("version", str(SCHEMA_VERSION))],
                )
                tables = self._tables(conn)
        return tables

    @staticmethod
    def _tables(conn: sqlite3.Connection) -> set[str]:
        return {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }

    def _check_schema(self, conn: sqlite3.Connection, tables: set[str]) -> None:
        if not tables:  # an empty file opened read-only: nothing to read yet
            return
        foreign = CacheError(
            f"{self.path} is a SQLite database of another application (tables: "
            f"{', '.join(sorted(tables)[:6])}), not a routing_gym response cache; "
            "pass another path."
        )
        if "meta" not in tables:
            raise foreign
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta"))
        except sqlite3.OperationalError:
            raise foreign from None
        if meta.get("schema") != SCHEMA_NAME:
            raise foreign
        if meta.get("version") != str(SCHEMA_VERSION):
            raise CacheError(
                f"{self.path} holds response cache schema version {meta.get('version')!r}, but "
                f"this routing_gym reads version {SCHEMA_VERSION}; delete it or pass another path."
            )
        if not {"responses", "stats"} <= tables:
            raise CacheError(f"{self.path}: response cache is missing its responses/stats tables.")


def format_stats(stats: Mapping[str, Mapping[str, int]]) -> str:
    """Render ``ResponseCache.stats()`` as a plain-text table with a total row."""
    header = ("model", "entries", "hits", "misses", "hit rate")
    total = {"entries": 0, "hits": 0, "misses": 0}
    lines = []
    for model, row in stats.items():
        for name in total:
            total[name] += int(row.get(name, 0))
        lines.append((model, row.get("entries", 0), row.get("hits", 0), row.get("misses", 0)))
    lines.append(("total", total["entries"], total["hits"], total["misses"]))

    def rate(hits: int, misses: int) -> str:
        return f"{100.0 * hits / (hits + misses):.1f}%" if hits + misses else "-"

    cells = [header] + [(m, str(e), str(h), str(s), rate(h, s)) for m, e, h, s in lines]
    width = max(len(c[0]) for c in cells)
    nums = [max(len(c[i]) for c in cells) for i in range(1, 5)]
    out = []
    for i, c in enumerate(cells):
        out.append(c[0].ljust(width) + "".join("  " + v.rjust(w) for v, w in zip(c[1:], nums)))
        if i == 0 or i == len(cells) - 2:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the per-model statistics of a response cache file; a bad file prints one line
    naming it and exits nonzero (``--debug`` shows the traceback)."""
    parser = argparse.ArgumentParser(
        prog="python -m routing_gym.llm.cache",
        description="Show per-model entries, hits and misses of a response cache.",
    )
    parser.add_argument(
        "path",
        nargs="?",
        default=None,
        help=f"cache file (default: <cache dir>/{DEFAULT_FILENAME})",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    path = Path(args.path).expanduser() if args.path is not None else default_cache_path()
    try:
        if not path.is_file():
            # a read-only cache reads a missing file as empty: here that is a typo, not 0 entries
            problem = "is a folder" if path.is_dir() else "does not exist"
            raise CacheError(f"{path} {problem}; give the path of a response cache file.")
        with ResponseCache(path, mode="ro") as cache:
            stats = cache.stats()
    except CacheError as exc:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    print(format_stats(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())

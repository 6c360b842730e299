"""Shared fixtures: the default outcome table, and the data directory; loud data skips.

A test that needs the real data skips with a reason that starts with ``DATA_MISSING``, so
``pytest -ra`` lists it. When ``ROUTING_GYM_DATA`` is set, such a skip is a failure instead:
the data were promised, so a missing folder is a broken setup, not a reason to test less.
"""

import os
from pathlib import Path

import pytest

#: The start of every skip reason that means "the real data are not here".
DATA_MISSING = "data missing"

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
        pytest.skip(f"{DATA_MISSING}: ROUTING_GYM_DATA={root!r} is not the real data directory")
    return Path(root)


def _data_skip_reason(report) -> str | None:
    """The reason of a skip for missing data, or None for any other report."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    return reason if reason.startswith(DATA_MISSING) else None


def _fail_data_skip(report) -> None:
    # ROUTING_GYM_DATA promised the data: a test that cannot find them must not pass quietly
    root = os.environ.get("ROUTING_GYM_DATA")
    reason = _data_skip_reason(report)
    if root and reason is not None:
        report.outcome = "failed"
        report.longrepr = f"skipped for missing data although ROUTING_GYM_DATA={root} is set: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_data_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_data_skip(outcome.get_result())


@pytest.fixture(scope="session")
def run_example():
    """Run ``examples/<name>`` in a fresh interpreter as a user would; returns the finished process.

    Tests run the example scripts, never import them: a script is not API.
    """
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]

    def run(name: str, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        return subprocess.run([sys.executable, str(repo / "examples" / name), *argv], env=env,
                              capture_output=True, text=True, timeout=timeout)

    return run

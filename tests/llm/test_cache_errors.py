"""The response cache's command line and its errors: a typo, a corrupt file, a damaged record
and a read-only folder each give one clear line naming the file, never a wrong count."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from routing_gym.errors import CacheError
from routing_gym.llm.cache import ResponseCache, main

KEY = ResponseCache.make_key("m", [1, 2], {"max_new_tokens": 4})


def cache_with_one_record(path: Path) -> Path:
    with ResponseCache(path) as cache:
        cache.put(KEY, "m", {"text": "hi"})
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "routing_gym.llm.cache", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_prints_the_entries_of_a_cache(tmp_path):
    done = run_cli(str(cache_with_one_record(tmp_path / "r.sqlite")))
    assert done.returncode == 0 and done.stderr == ""
    total = [line for line in done.stdout.splitlines() if line.startswith("total")]
    assert total[0].split()[1] == "1"  # one entry


def test_cli_on_a_missing_file_is_an_error_not_zero_entries(tmp_path):
    typo = tmp_path / "typo.sqlite"
    done = run_cli(str(typo))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"python -m routing_gym.llm.cache: error: {typo} does not exist; give the path of a "
        "response cache file."
    ]
    assert not typo.exists()  # nothing was created


@pytest.mark.parametrize(
    "content", [b"not a database at all\n" * 40, b"SQLite format 3\x00" + b"\xff" * 2000]
)
def test_cli_on_a_corrupt_file_prints_one_line_and_with_debug_the_traceback(content, tmp_path):
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(content)
    done = run_cli(str(corrupt))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and str(corrupt) in lines[0]
    assert "Traceback" not in done.stderr
    debug = run_cli(str(corrupt), "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "CacheError" in debug.stderr


def test_a_record_that_is_not_json_names_the_file_and_the_key(tmp_path):
    path = cache_with_one_record(tmp_path / "r.sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE responses SET record = ?", ("{not json",))
    cache = ResponseCache(path, mode="ro")
    for read in (lambda: cache.get(KEY), lambda: cache.get_many([KEY])):
        with pytest.raises(CacheError, match=f"{path}: the record of key {KEY} is not JSON"):
            read()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE responses SET record = ?", ("[1, 2]",))
    with pytest.raises(CacheError, match=f"record of key {KEY} is a list, not a JSON object"):
        cache.get(KEY)
    cache.close()
    assert main([str(path)]) == 0  # counting entries reads no record


def read_as_nobody(path: Path) -> str:
    """Open ``path`` read-only as an unprivileged user (root reads and writes anywhere)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover  (the child reports through the pipe)
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            try:
                ResponseCache(path, mode="ro").get(KEY)
                message = "read"
            except Exception as exc:  # noqa: BLE001
                message = f"{type(exc).__name__}: {exc}"
            os.write(write, message.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as handle:
        message = handle.read()
    os.waitpid(pid, 0)
    return message


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to read as another user")
def test_a_read_only_cache_in_a_read_only_folder_does_not_suggest_the_mode_in_use():
    root = Path(tempfile.mkdtemp(prefix="routing_gym_ro_"))  # "nobody" must reach it
    folder = root / "shipped"
    folder.mkdir()
    path = cache_with_one_record(folder / "r.sqlite")
    for leftover in folder.glob("r.sqlite-*"):
        leftover.unlink()
    root.chmod(0o755)
    folder.chmod(0o555)
    try:
        message = read_as_nobody(path)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(root)
    assert message.startswith("CacheError") and str(path) in message
    assert "cache_mode='ro'" not in message
    assert f"the folder {folder} is not writable" in message and "copy the file" in message

"""Response cache paths that cannot work say what is wrong with them, not "may be corrupt"."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


from routing_gym.errors import CacheError
from routing_gym.llm.cache import ResponseCache


def open_error(path) -> str:
    """The CacheError message of opening a read-write cache at ``path`` ("" if it opens)."""
    try:
        ResponseCache(path).close()
    except CacheError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001  (reported, so the assertion shows it)
        return f"unexpected {type(exc).__name__}: {exc}"
    return ""


def open_error_without_privileges(path) -> str:
    """``open_error`` as an unprivileged user: root writes into read-only folders anyway."""
    if os.geteuid() != 0:
        return open_error(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops to "nobody" with everything already imported
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, open_error(path).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        message = handle.read().decode()
    os.waitpid(pid, 0)
    return message


def test_a_cache_path_under_a_regular_file_names_that_file(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    message = open_error(blocker / "cache" / "responses.sqlite")
    assert f"is under {blocker}, which is a file, not a folder" in message


def test_an_unwritable_cache_folder_says_it_is_not_writable():
    # under /tmp itself: pytest's tmp_path is private to its user, and the check runs as "nobody"
    root = Path(tempfile.mkdtemp(prefix="routing_gym_cache_"))
    folder = root / "locked"
    folder.mkdir()
    root.chmod(0o755)
    folder.chmod(0o555)
    try:
        for path in (folder / "responses.sqlite", folder / "sub" / "responses.sqlite"):
            message = open_error_without_privileges(path)
            assert f"the folder {folder} is not writable" in message, message
            assert "corrupt" not in message
    finally:
        folder.chmod(0o755)
        shutil.rmtree(root)


def test_a_read_only_cache_in_an_unwritable_folder_still_reads(tmp_path):
    path = tmp_path / "responses.sqlite"
    key = ResponseCache.make_key("m", [1, 2], {"max_new_tokens": 1})
    with ResponseCache(path) as cache:
        cache.put(key, "m", {"text": "hi"})
    assert ResponseCache(path, mode="ro").get(key) == {"text": "hi"}

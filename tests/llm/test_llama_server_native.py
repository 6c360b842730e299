"""llama.cpp's native ``llama-server`` (parallel slots, continuous batching) behind the OpenAI backend.

The real-server test needs the binary that ``scripts/build_llama_server.py`` builds; it skips,
naming that command, only where the binary is absent.
"""

from __future__ import annotations

import json
import re
import stat
import urllib.request
from pathlib import Path

import pytest

from routing_gym.errors import BackendError
from routing_gym.llm import BUILTIN_SPECS, GenerationRequest, LLMPool
from routing_gym.llm.llama_cpp_server import NATIVE_SERVER_ENV_VAR, native_server_path, serve_gguf
from routing_gym.llm.model_store import gguf_path

SERVED = "smollm2"
TOPICS = ["the sea", "a forest", "winter", "bread"]


def smollm2_gguf() -> Path:
    return gguf_path(BUILTIN_SPECS["smollm2-135m"])


def fake_binary(folder: Path, script: str) -> Path:
    path = folder / "llama-server"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_missing_native_binary_is_one_line_naming_the_path_and_the_build_command(tmp_path):
    missing = tmp_path / "no-such-llama-server"
    with pytest.raises(BackendError) as raised, serve_gguf(smollm2_gguf(), SERVED, native=missing):
        pass
    message = str(raised.value)
    assert "\n" not in message and str(missing) in message
    assert "scripts/build_llama_server.py" in message


def test_the_native_binary_is_found_through_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(NATIVE_SERVER_ENV_VAR, str(tmp_path / "elsewhere"))
    assert native_server_path() == tmp_path / "elsewhere"
    with (
        pytest.raises(BackendError, match=f"\\${NATIVE_SERVER_ENV_VAR}"),
        serve_gguf(smollm2_gguf(), SERVED, native=True),
    ):
        pass


def test_a_native_server_that_exits_at_start_is_one_line_with_its_code_and_error(tmp_path):
    binary = fake_binary(
        tmp_path, 'echo "loading"; echo "error: unknown argument: --bogus" >&2; exit 3'
    )
    with (
        pytest.raises(BackendError) as raised,
        serve_gguf(smollm2_gguf(), SERVED, native=binary, start_timeout=30),
    ):
        pass
    message = str(raised.value)
    assert "\n" not in message
    assert "code 3" in message and "unknown argument: --bogus" in message


def test_parallel_slots_need_the_native_server():
    with (
        pytest.raises(ValueError, match="native=True"),
        serve_gguf(smollm2_gguf(), SERVED, parallel=2),
    ):
        pass


def metrics(root_url: str) -> dict[str, float]:
    """The server's Prometheus gauges and counters, by name."""
    with urllib.request.urlopen(f"{root_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(llamacpp:\w+)\s+(\S+)", line.strip())
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


@pytest.mark.slow
def test_native_server_answers_concurrent_requests_on_two_slots_at_once(tmp_path):
    binary = native_server_path()
    if not binary.is_file():
        pytest.skip(
            f"the native llama-server is not built at {binary}: run "
            f"python scripts/build_llama_server.py (or set ${NATIVE_SERVER_ENV_VAR})"
        )
    with serve_gguf(
        smollm2_gguf(), SERVED, threads=1, native=True, parallel=2, context_tokens=1024
    ) as server:
        assert server.parallel == 2 and server.revision.startswith("llama-server ")
        spec = {
            "name": "smol-native",
            "location": f"server:{SERVED}",
            "backend": "openai",
            "options": {
                "base_url": server.base_url,
                "revision": server.revision,
                "concurrency": 2,
                "timeout": 120,
                "max_retries": 0,
            },
        }
        pool = LLMPool([spec], cache=tmp_path / "responses.sqlite")
        # The build is part of the model id, hence of every cache key.
        assert server.revision in pool.backend("smol-native").model_id
        requests = [
            GenerationRequest(
                model="smol-native",
                prompt=f"Write one sentence about {topic}:",
                max_new_tokens=24,
            )
            for topic in TOPICS
        ]
        replies = pool.generate(requests)
        assert all(r.text.strip() and 0 < r.completion_tokens <= 24 for r in replies)
        assert all(r.prompt_tokens > 0 and not r.cached for r in replies)

        with urllib.request.urlopen(f"{server.root_url}/slots", timeout=10) as response:
            slots = json.loads(response.read())
        assert sorted(slot["id"] for slot in slots) == [0, 1]
        # Each slot finished a task (id_task is -1 on a slot that never ran one).
        assert all(slot["id_task"] >= 0 for slot in slots), slots
        counters = metrics(server.root_url)
        assert counters["llamacpp:tokens_predicted_total"] == sum(
            r.completion_tokens for r in replies
        )
        # More than one slot busy per decode on average: the requests were batched together.
        assert counters["llamacpp:n_busy_slots_per_decode"] > 1.0, counters
        again = pool.generate(requests)
        assert [r.text for r in again] == [r.text for r in replies] and all(r.cached for r in again)
        pool.close()

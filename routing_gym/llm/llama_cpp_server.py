"""Serve a GGUF file with llama.cpp's OpenAI-compatible server (``llama-cpp-python[server]``) on loopback.

Used by the server-backend tests and benchmark, and handy for trying a server pool locally::

    with serve_gguf(path, served_name="smollm2") as server:
        pool = LLMPool([{"name": "smol", "backend": "openai", "location": "server:smollm2",
                         "options": {"base_url": server.base_url}}])
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from routing_gym.errors import BackendError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    """A running ``llama_cpp.server`` process and the OpenAI API root it answers on."""

    base_url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output (for error messages)."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

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
        return False


@contextlib.contextmanager
def serve_gguf(
    gguf: str | os.PathLike,
    served_name: str,
    port: int | None = None,
    threads: int | None = None,
    context_tokens: int = 4096,
    extra_args: Sequence[str] = (),
    start_timeout: float = 180.0,
) -> Iterator[LlamaServer]:
    """Start llama.cpp's server on ``127.0.0.1``, wait until ``/v1/models`` answers, stop it on exit."""
    gguf = Path(gguf)
    if not gguf.is_file():
        raise BackendError(f"GGUF file {gguf} not found.")
    port = port or free_port()
    command = [
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
        str(threads or os.cpu_count() or 1),
        *extra_args,
    ]
    with tempfile.TemporaryDirectory(prefix="llama-server-") as folder:
        log_path = Path(folder) / "server.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        server = LlamaServer(f"http://{LOOPBACK}:{port}/v1", process, log_path)
        try:
            deadline = time.monotonic() + start_timeout
            while not _answers(f"{server.base_url}/models"):
                if process.poll() is not None:
                    raise BackendError(
                        f"llama.cpp server for {gguf.name} exited with code {process.returncode}:\n{server.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise BackendError(
                        f"llama.cpp server did not answer on {server.base_url} within {start_timeout} s."
                    )
                time.sleep(0.25)
            yield server
        finally:
            server.stop()

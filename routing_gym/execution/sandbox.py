"""Run model-written Python in a confined child process, one fresh directory per run.

Each run gets:
- a new temporary working directory (removed afterwards) and a scrubbed environment;
- new user, network and PID namespaces where the OS allows them (util-linux ``unshare``):
  no network at all, and every process the program starts dies with it;
- resource limits: CPU seconds, address space, file size, number of processes;
- inside the child (``runner.py``): a Landlock ruleset (file changes only beneath the working
  directory, no TCP) and a seccomp filter (no new processes; no sockets when there is no
  network namespace), each where the kernel has it;
- a wall-clock timeout, after which the whole process group is killed.

A program that loops, allocates too much, floods its output or attacks its host ends as a
failed ``ExecutionResult``; ``Sandbox.run`` never raises for what the program does.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from routing_gym.execution.runner import LAYERS_TAG, SETUP_FAILED

RUNNER = Path(__file__).with_name("runner.py")
STATUSES = ("passed", "failed", "timeout", "memory", "output_limit", "killed", "sandbox_error")
_NAMESPACE_FLAGS = ("--net", "--pid", "--fork", "--kill-child")
_SIGNAL_STATUS = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "output_limit", signal.SIGKILL: "killed"}


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run; all are enforced by the kernel except ``timeout_s`` (the parent)."""

    timeout_s: float = 10.0  # wall clock, the whole process group is killed after it
    cpu_seconds: int = 5  # RLIMIT_CPU: SIGXCPU, then SIGKILL a second later
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    file_size_bytes: int = 16 << 20  # RLIMIT_FSIZE: also caps stdout and stderr
    max_processes: int = 16  # RLIMIT_NPROC (the kernel ignores it for root; seccomp then denies forks)
    output_bytes: int = 64 << 10  # how much of stdout / stderr comes back

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive number, got {value!r}.")


@dataclass(frozen=True)
class ExecutionResult:
    """What became of one program: ``status`` is one of ``STATUSES``; ``passed`` iff "passed"."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    layers: tuple[str, ...] = ()  # the isolation layers that held in the child
    duration_s: float = field(default=0.0, compare=False)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.lru_cache(maxsize=None)
def namespace_command() -> tuple[str, ...] | None:
    """The ``unshare`` prefix that gives a run new user, network and PID namespaces, or None
    when this OS does not allow them (no util-linux, user namespaces disabled, a container)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    command = (unshare, "--user", "--map-current-user", *_NAMESPACE_FLAGS)
    try:
        probe = subprocess.run([*command, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return command if probe.returncode == 0 else None


class Sandbox:
    """Runs Python programs confined, one child process each (see the module docstring).

    Args:
        limits: a ``SandboxLimits``; keyword ``overrides`` replace single fields.
        namespaces: use new user/network/PID namespaces when the OS allows them (default);
            ``False`` forces the fallback that blocks sockets with seccomp instead.
        temp_root: where the per-run temporary directories go (default: the system's).
        python: the interpreter (default: this one), run without site-packages.
    """

    def __init__(self, limits: SandboxLimits | None = None, namespaces: bool = True,
                 temp_root: str | os.PathLike | None = None, python: str | None = None, **overrides):
        self.limits = replace(limits or SandboxLimits(), **overrides)
        self.namespaces = namespace_command() if namespaces else None
        self.temp_root = None if temp_root is None else str(temp_root)
        self.python = python or sys.executable

    @property
    def network_isolation(self) -> str:
        """"namespace" when runs get an empty network namespace, else "seccomp"."""
        return "namespace" if self.namespaces else "seccomp"

    def run(self, program: str) -> ExecutionResult:
        """Execute ``program`` (Python source) as ``__main__`` in a fresh directory."""
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="routing_gym_sandbox_", dir=self.temp_root,
                                         ignore_cleanup_errors=True) as root:
            workdir = Path(root, "work")
            workdir.mkdir()
            (workdir / "program.py").write_text(program, encoding="utf-8")
            stdout_path, stderr_path = Path(root, "stdout"), Path(root, "stderr")
            with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
                returncode, timed_out = self._execute(workdir, stdout, stderr)
            out = _read_head(stdout_path, self.limits.output_bytes)
            err = _read_head(stderr_path, self.limits.output_bytes)
            _make_removable(Path(root))
        layers: tuple[str, ...] = ()
        first, _, rest = err.partition("\n")
        if first.startswith(LAYERS_TAG):
            layers = tuple(filter(None, first[len(LAYERS_TAG):].split(",")))
            err = rest
        if self.namespaces:
            layers = ("namespaces",) + layers
        status = _status(returncode, timed_out, err)
        return ExecutionResult(status, returncode, out, err, layers, time.monotonic() - started)

    def _execute(self, workdir: Path, stdout, stderr) -> tuple[int | None, bool]:
        config = {
            "cpu_seconds": int(max(1, round(self.limits.cpu_seconds))),
            "memory_bytes": int(self.limits.memory_bytes),
            "file_size_bytes": int(self.limits.file_size_bytes),
            "max_processes": int(self.limits.max_processes),
            "use_landlock": True,
            "use_seccomp": True,
            "block_sockets": self.namespaces is None,
        }
        home = str(workdir)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        command = [*(self.namespaces or ()), self.python, "-S", "-s", "-B", str(RUNNER), json.dumps(config)]
        try:
            process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                       stderr=stderr, start_new_session=True, close_fds=True)
        except OSError as exc:
            stderr.write(f"routing_gym.sandbox could not start the child: {exc}\n".encode())
            return None, False
        timed_out = False
        deadline = time.monotonic() + self.limits.timeout_s
        try:
            # wait4 rather than Popen.wait: its resource usage includes the descendants the child
            # reaped, so a CPU-limit kill is recognised even when ``unshare`` stands in between
            # and cannot pass the signal on (it then exits 1).
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    process.returncode = os.waitstatus_to_exitcode(status)
                    if process.returncode > 0 and usage.ru_utime + usage.ru_stime >= self.limits.cpu_seconds:
                        process.returncode = -signal.SIGXCPU
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
                time.sleep(0.005)
        finally:
            _kill_group(process.pid)  # stragglers too, whether it ended or not
            if process.returncode is None:
                process.wait()
        return process.returncode, timed_out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _status(returncode: int | None, timed_out: bool, stderr: str) -> str:
    if timed_out:
        return "timeout"
    if returncode is None or returncode == SETUP_FAILED and "routing_gym.sandbox" in stderr:
        return "sandbox_error"
    if returncode == 0:
        return "passed"
    if returncode < 0:
        return _SIGNAL_STATUS.get(-returncode, "killed")
    if returncode - 128 in _SIGNAL_STATUS:
        # Under ``unshare --fork`` the runner is a grandchild: unshare reports its death by
        # signal N as exit status 128 + N, the shell convention.
        return _SIGNAL_STATUS[returncode - 128]
    lines = stderr.strip().splitlines()
    if lines and lines[-1].startswith("MemoryError"):
        return "memory"
    return "failed"


def _read_head(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")


def _make_removable(root: Path) -> None:
    """A program may leave directories it made unwritable; give them back before removal."""
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            try:
                os.chmod(os.path.join(folder, name), 0o700)
            except OSError:
                pass


@functools.lru_cache(maxsize=None)
def default_sandbox() -> Sandbox:
    """One shared sandbox with the default limits."""
    return Sandbox()

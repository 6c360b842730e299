"""Run model-written Python in a confined child process, one fresh directory per run.

A run has two stages in one child process (docs/sandbox.md states what each mode guarantees):
- ``confine.py`` confines it: new user, network, PID and mount namespaces where the OS allows
  them (util-linux ``unshare``) with a size-limited tmpfs as the run's folder; in both modes a
  Landlock ruleset (reads only of the interpreter's own files, writes only beneath the run's
  folder, no TCP, no signals outside), a seccomp filter (no sockets of any family, no new
  processes or programs, no mounts or tracing) and resource limits;
- ``harness.py`` then runs the solution and its tests, and reports a pass by writing a
  per-run nonce to a pipe that only this parent reads. The exit status is never the verdict.

A program that loops, allocates too much, floods its output, exits early or attacks its host
ends as a failed ``ExecutionResult``; ``Sandbox.run`` never raises for what the program does.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from routing_gym.execution.confine import LAYERS_TAG, SETUP_FAILED

CONFINE = Path(__file__).with_name("confine.py")
HARNESS = Path(__file__).with_name("harness.py")
STATUSES = ("passed", "failed", "timeout", "memory", "output_limit", "killed", "sandbox_error")
_NAMESPACE_FLAGS = ("--net", "--pid", "--mount", "--fork", "--kill-child")
_SIGNAL_STATUS = {signal.SIGXCPU: "timeout", signal.SIGXFSZ: "output_limit", signal.SIGKILL: "killed"}
# stdlib parts a test never needs and whose contents are not the interpreter's own
_SKIPPED_STDLIB = frozenset({"site-packages", "dist-packages", "lib-dynload"})
# extension modules that give raw memory access or start a sub-interpreter: unreadable in the sandbox
_HIDDEN_EXTENSIONS = re.compile(r"^(_ctypes|_test|_xx|xxlimited|xxsubtype)")
MAX_FOLDERS = 64


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run; all are enforced by the kernel except ``timeout_s`` (the parent)
    and, in fallback mode, ``disk_bytes`` (the harness counts the files it may fill).

    There is no process limit: seccomp denies new processes outright, and threads are bounded
    by ``memory_bytes`` (each reserves its stack). RLIMIT_NPROC would count every process of
    the user, and so fail the harness's own thread for a user with many processes.
    """

    timeout_s: float = 10.0  # wall clock, the whole process group is killed after it
    cpu_seconds: int = 5  # RLIMIT_CPU: SIGXCPU, then SIGKILL a second later
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    file_size_bytes: int = 16 << 20  # RLIMIT_FSIZE: also caps stdout and stderr
    disk_bytes: int = 64 << 20  # the run's folder: a tmpfs this size, or this // file_size_bytes files
    output_bytes: int = 64 << 10  # how much of stdout / stderr comes back

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive number, got {value!r}.")


@dataclass(frozen=True)
class TestProgram:
    """A solution and the tests that check it, run as HumanEval runs them, with two guards.

    ``solution`` runs first, as ``__main__``. ``setup`` (trusted: imports, a prompt's helper
    functions, test fixtures) and then ``tests`` run in a separate namespace that holds the
    solution's names, except that the setup's definitions and a saved copy of the builtins
    and of the modules the tests import win over anything the solution defined or patched;
    the names in ``keep`` (those the tests call) always come from the solution.
    """

    __test__ = False  # not a pytest class

    solution: str
    tests: str
    setup: str = ""
    keep: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("solution", "tests", "setup"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"TestProgram.{name} must be a string, got {type(getattr(self, name)).__name__}.")
        if not self.tests.strip():
            raise ValueError("TestProgram.tests is empty or blank: any solution would pass it.")
        for name in ("setup", "tests"):
            try:
                compile(getattr(self, name), f"<{name}>", "exec", dont_inherit=True)
            except SyntaxError as exc:
                raise ValueError(f"TestProgram.{name} is not valid Python: {exc}") from None


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


def imported_modules(*sources: str) -> list[str]:
    """The modules that ``import`` statements in ``sources`` name, parents first (the harness
    copies them before the solution runs)."""
    names = []
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                dotted = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                dotted = [node.module]
            else:
                continue
            for name in dotted:
                parts = name.split(".")
                names += [".".join(parts[: i + 1]) for i in range(len(parts))]
    return list(dict.fromkeys(names))


def _preload(solution: str) -> list[str]:
    """The modules the solution imports, which the harness loads from the standard library's
    bytecode before any model code runs (after that, imports compile from source)."""
    try:
        return imported_modules(solution)
    except Exception:  # noqa: BLE001 - a solution that does not parse fails in the sandbox, not here
        return []


@functools.lru_cache(maxsize=None)
def namespace_command() -> tuple[str, ...] | None:
    """The ``unshare`` prefix that gives a run new user, network, PID and mount namespaces, or
    None when this OS does not allow them (no util-linux, user namespaces disabled, a container)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    command = (unshare, "--user", "--map-current-user", *_NAMESPACE_FLAGS)
    try:
        probe = subprocess.run([*command, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return command if probe.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def interpreter_files(python: str) -> dict:
    """What the confined interpreter may read: its binary and dynamic loader (also executable),
    its standard library but ``site-packages``, its extension modules but ctypes and CPython's
    test modules, and the shared libraries these link (found by ``ldd``, once per interpreter)."""
    probe = ("import json, os, sys; print(json.dumps([os.path.realpath(getattr(sys, '_base_executable', None) "
             "or sys.executable), os.path.dirname(os.__file__), [p for p in sys.path if os.path.isdir(p)]]))")
    out = subprocess.run([python, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True, timeout=30)
    binary, stdlib, path = json.loads(out.stdout)
    read_dirs, read_files, listed = [], [str(HARNESS), "/etc/ld.so.cache"], []
    for folder in dict.fromkeys([stdlib, *path]):
        listed.append(folder)  # READ_DIR on the folder itself, so imports can list it
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name in _SKIPPED_STDLIB or _HIDDEN_EXTENSIONS.match(entry.name):
                continue
            (read_dirs if entry.is_dir() else read_files).append(entry.path)
    extensions = [f for f in read_files if f.endswith(".so")]
    libraries, loaders = set(), set()
    ldd = shutil.which("ldd")
    if ldd is not None:
        linked = subprocess.run([ldd, binary, *extensions], capture_output=True, text=True, timeout=60).stdout
        for line in linked.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match:
                target = os.path.realpath(match.group(1))
                (loaders if "=>" not in line else libraries).add(target)
    else:  # no ldd: the folders of the libraries this process mapped (less exact; said in the docs)
        with open("/proc/self/maps") as maps:
            folders = {os.path.dirname(line.split()[-1]) for line in maps if ".so" in line.split()[-1]}
        read_dirs += sorted(f for f in folders if not any(s in f for s in ("python", "site-packages")))
    return {"read_dirs": read_dirs, "read_files": read_files + sorted(libraries), "list_dirs": listed,
            "exec_files": [binary, *sorted(loaders)], "binary": binary}


class Sandbox:
    """Runs Python programs confined, one child process each (see the module docstring).

    Args:
        limits: a ``SandboxLimits``; keyword ``overrides`` replace single fields.
        namespaces: use new user/network/PID/mount namespaces when the OS allows them
            (default); ``False`` forces the fallback (same Landlock and seccomp layers, the
            disk budget counted by the harness instead of a tmpfs).
        temp_root: where the per-run temporary directories go (default: the system's).
        python: the interpreter (default: this one), run without site-packages.
        strict: refuse to run (status "sandbox_error") when the kernel lacks Landlock or
            seccomp, rather than run with fewer guarantees (default).
    """

    def __init__(self, limits: SandboxLimits | None = None, namespaces: bool = True,
                 temp_root: str | os.PathLike | None = None, python: str | None = None,
                 strict: bool = True, **overrides):
        self.limits = replace(limits or SandboxLimits(), **overrides)
        self.namespaces = namespace_command() if namespaces else None
        self.temp_root = None if temp_root is None else str(temp_root)
        self.python = python or sys.executable
        self.strict = strict

    @property
    def network_isolation(self) -> str:
        """"namespace" when runs get an empty network namespace, else "seccomp"."""
        return "namespace" if self.namespaces else "seccomp"

    def run(self, program: str | TestProgram) -> ExecutionResult:
        """Execute ``program``: Python source (passes when it runs to its end) or a
        ``TestProgram`` (passes when its tests run to their end)."""
        started = time.monotonic()
        if isinstance(program, TestProgram):
            payload = {"solution": program.solution, "tests": program.tests, "setup": program.setup,
                       "keep": list(program.keep), "imports": imported_modules(program.setup, program.tests),
                       "preload": _preload(program.solution)}
        elif isinstance(program, str):
            payload = {"solution": program, "tests": None, "setup": "", "keep": [], "imports": [],
                       "preload": _preload(program)}
        else:
            raise ValueError(f"Sandbox.run takes source or a TestProgram, got {type(program).__name__}.")
        nonce = secrets.token_hex(16)
        payload["nonce"] = nonce
        with tempfile.TemporaryDirectory(prefix="routing_gym_sandbox_", dir=self.temp_root,
                                         ignore_cleanup_errors=True) as root:
            workdir = Path(root, "work")
            workdir.mkdir()
            payload_path = Path(root, "payload.json")
            payload_path.write_text(json.dumps(payload), encoding="utf-8")
            stdout_path, stderr_path = Path(root, "stdout"), Path(root, "stderr")
            with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr, \
                    open(payload_path, "rb") as stdin:
                returncode, timed_out, verdict = self._execute(workdir, stdin, stdout, stderr)
            out = _read_head(stdout_path, self.limits.output_bytes)
            err = _read_head(stderr_path, self.limits.output_bytes)
            _make_removable(Path(root))
        layers: tuple[str, ...] = ()
        first, _, rest = err.partition("\n")
        confined = first.startswith(LAYERS_TAG)  # written before any model code runs
        if confined:
            layers = tuple(filter(None, first[len(LAYERS_TAG):].split(",")))
            err = rest
        if self.namespaces:
            layers = ("namespaces",) + layers
        passed = secrets.compare_digest(verdict, nonce.encode())
        status = "passed" if passed else _status(returncode, timed_out, err, confined)
        return ExecutionResult(status, returncode, out, err, layers, time.monotonic() - started)

    def _config(self, workdir: Path, verdict_fd: int) -> dict:
        files = interpreter_files(self.python)
        limits = self.limits
        require = ["landlock-fs", "seccomp"] if self.strict else []
        return {
            "cpu_seconds": int(max(1, round(limits.cpu_seconds))),
            "memory_bytes": int(limits.memory_bytes),
            "file_size_bytes": int(limits.file_size_bytes),
            "tmpfs_bytes": int(limits.disk_bytes) if self.namespaces else 0,
            "max_inodes": 4 * MAX_FOLDERS,
            "max_write_opens": int(limits.disk_bytes // limits.file_size_bytes),
            "max_dirs": MAX_FOLDERS,
            "use_landlock": True,
            "use_seccomp": True,
            "require": require + (["tmpfs"] if self.namespaces else []),
            "python": files["binary"],
            "harness": str(HARNESS),
            "read_dirs": files["read_dirs"],
            "read_files": files["read_files"],
            "list_dirs": files["list_dirs"],
            "exec_files": files["exec_files"],
            "verdict_fd": verdict_fd,
        }

    def _execute(self, workdir: Path, stdin, stdout, stderr) -> tuple[int | None, bool, bytes]:
        home = str(workdir)
        env = {"PATH": "/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        # The verdict pipe: the child gets the write end, only this process reads. A pass is the
        # run's nonce arriving here, which the harness writes after the tests ran to their end.
        verdict_read, verdict_write = os.pipe()
        try:
            try:
                config = self._config(workdir, verdict_write)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                stderr.write(f"routing_gym.sandbox could not inspect the interpreter {self.python}: {exc}\n".encode())
                return None, False, b""
            command = [*(self.namespaces or ()), self.python, "-I", "-S", "-B", str(CONFINE), json.dumps(config)]
            try:
                process = subprocess.Popen(command, cwd=workdir, env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                                           start_new_session=True, close_fds=True, pass_fds=(verdict_write,))
            except OSError as exc:
                stderr.write(f"routing_gym.sandbox could not start the child: {exc}\n".encode())
                return None, False, b""
            finally:
                os.close(verdict_write)
            returncode, timed_out = self._wait(process)
            return returncode, timed_out, _read_verdict(verdict_read)
        finally:
            os.close(verdict_read)

    def _wait(self, process: subprocess.Popen) -> tuple[int | None, bool]:
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


def _read_verdict(fd: int, limit: int = 4096) -> bytes:
    """What the child wrote to the verdict pipe (nothing blocks: every writer is gone or killed)."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size <= limit:
        try:
            chunk = os.read(fd, limit + 1 - size)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _status(returncode: int | None, timed_out: bool, stderr: str, confined: bool) -> str:
    """Why a run did not pass (a pass is only ever the verdict)."""
    if timed_out:
        return "timeout"
    if returncode is None or returncode == SETUP_FAILED and not confined:
        return "sandbox_error"
    if returncode < 0:
        return _SIGNAL_STATUS.get(-returncode, "killed")
    if returncode - 128 in _SIGNAL_STATUS:
        # Under ``unshare --fork`` the runner is a grandchild: unshare reports its death by
        # signal N as exit status 128 + N, the shell convention.
        return _SIGNAL_STATUS[returncode - 128]
    if "raised MemoryError" in stderr or stderr.rstrip().endswith("MemoryError"):
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

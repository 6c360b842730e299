"""The sandbox's host boundary, with namespaces on and off: no socket of any family reaches out,
reads reach only the interpreter's own files, the parent's environment is out of reach, and a
run cannot fill more than its disk budget. Each point is probed by real hostile code."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest

import routing_gym
from routing_gym.execution import Sandbox, namespace_command

MODES = ["namespaces", "fallback"]
LIMITS = dict(timeout_s=8, cpu_seconds=4, file_size_bytes=4 << 20, disk_bytes=16 << 20)


def make_sandbox(mode: str, runs: Path, **overrides) -> Sandbox:
    if mode == "namespaces" and namespace_command() is None:
        pytest.skip("this OS does not allow user+network+PID+mount namespaces")
    return Sandbox(namespaces=mode == "namespaces", temp_root=runs, **{**LIMITS, **overrides})


def attempts_program(attempts: dict[str, str]) -> str:
    """A program that tries each ``name: expression`` and prints the names that worked."""
    lines = ["import os, socket", "reached = []"]
    for name, expression in attempts.items():
        lines += ["try:", f"    {expression}", f"    reached.append({name!r})", "except OSError:", "    pass"]
    return "\n".join(lines + ["print('reached:', reached)"]) + "\n"


@pytest.mark.parametrize("mode", MODES)
def test_no_unix_socket_reaches_a_listener_on_the_host(mode, tmp_path):
    path = tmp_path / "host.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    listener.settimeout(0.5)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(b"\0routing_gym_test_" + os.urandom(4).hex().encode())
    abstract.listen(4)
    abstract.settimeout(0.5)
    program = attempts_program({
        "pathname": f"socket.socket(socket.AF_UNIX).connect({str(path)!r})",
        "abstract": f"socket.socket(socket.AF_UNIX).connect({abstract.getsockname()!r})",
        "datagram": f"socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'x', {str(path)!r})",
        "socketpair": "socket.socketpair()",
        "tcp": "socket.create_connection(('127.0.0.1', 9), timeout=1)",
        "netlink": "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)",
    })
    runs = tmp_path / "runs"
    runs.mkdir()
    try:
        result = make_sandbox(mode, runs).run(program)
        for server in (listener, abstract):
            with pytest.raises(socket.timeout):
                server.accept()
    finally:
        listener.close()
        abstract.close()
    assert result.passed and "reached: []" in result.stdout, result


@pytest.mark.parametrize("mode", MODES)
def test_reads_reach_only_the_interpreters_own_files(mode, tmp_path):
    secret = tmp_path / "home" / "secret.txt"  # stands for the home folder, the project, the cache
    secret.parent.mkdir()
    secret.write_text("api key")
    package = Path(routing_gym.__file__)
    program = attempts_program({
        "/etc/passwd": "open('/etc/passwd').read()",
        "a file of the user": f"open({str(secret)!r}).read()",
        "the user's folder": f"os.listdir({str(secret.parent)!r})",
        "the project's source": f"open({str(package)!r}).read()",
        "site-packages": f"open({str(Path(pytest.__file__))!r}).read()",
        "/proc/self": "os.listdir('/proc/self')",
        "/sys": "os.listdir('/sys/class')",
        "the run's own file, read back": "open('mine.txt', 'w').write('x') and open('mine.txt').read()",
    }) + "print('stdlib:', len(open(os.__file__).read()) > 0)\n"
    runs = tmp_path / "runs"
    runs.mkdir()
    result = make_sandbox(mode, runs).run(program)
    assert result.passed and "reached: []" in result.stdout, result
    assert "stdlib: True" in result.stdout  # the standard library stays readable (docs/sandbox.md)


@pytest.mark.parametrize("mode", MODES)
def test_the_parents_environment_is_out_of_reach(mode, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTING_GYM_TEST_API_KEY", "sk-hunter2")
    program = attempts_program({
        "/proc/<ppid>/environ": "open(f'/proc/{os.getppid()}/environ', 'rb').read()",
        "/proc/self/environ": "open('/proc/self/environ', 'rb').read()",
        "/proc/1/environ": "open('/proc/1/environ', 'rb').read()",
        f"/proc/{os.getpid()}/environ": f"open('/proc/{os.getpid()}/environ', 'rb').read()",
    }) + "print('environ:', sorted(os.environ))\n"
    result = make_sandbox(mode, tmp_path).run(program)
    assert result.passed and "reached: []" in result.stdout, result
    assert "ROUTING_GYM_TEST_API_KEY" not in result.stdout and "hunter2" not in result.stdout


@pytest.mark.parametrize("mode", MODES)
def test_a_run_cannot_fill_more_than_its_disk_budget(mode, tmp_path):
    budget = LIMITS["disk_bytes"]
    program = """
import os
written, files = 0, 0
try:
    for i in range(50):  # 50 files of up to 4 MB (the file-size limit) against a 16 MB budget
        with open(f"f{i}.bin", "wb") as handle:
            files += 1
            for _ in range(4):
                handle.write(b"x" * (1 << 20))
                handle.flush()
                written += 1 << 20
except OSError as exc:
    print("stopped:", type(exc).__name__)
try:
    for i in range(1000):
        os.mkdir(f"d{i}")
except OSError as exc:
    print("folders stopped:", type(exc).__name__)
print("written:", written, "files:", files)
"""
    result = make_sandbox(mode, tmp_path).run(program)
    assert result.passed and "stopped:" in result.stdout and "folders stopped:" in result.stdout, result
    written = int(result.stdout.split("written:")[1].split()[0])
    assert 0 < written <= budget
    assert list(tmp_path.iterdir()) == []  # and the run's folder is gone


@pytest.mark.parametrize("mode", MODES)
def test_signals_programs_and_namespaces_stay_inside(mode, tmp_path):
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda *args: received.append(args))
    program = attempts_program({
        "signal the parent": "os.kill(os.getppid(), 10)",
        f"signal pid {os.getpid()}": f"os.kill({os.getpid()}, 10)",
        "signal every process": "os.kill(-1, 10)",
        "exec": "os.execv('/bin/true', ['/bin/true'])",
        "fork": "os.fork() or os._exit(0)",
        "mount": "os.listdir('.') if os.system('mount -t tmpfs none .') == 0 else os.open('/nonexistent', 0)",
        "memfd": "os.memfd_create('x')",
    })
    try:
        result = make_sandbox(mode, tmp_path).run(program)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result.passed and "reached: []" in result.stdout, result
    assert received == []


def test_strict_mode_refuses_to_run_without_a_layer(tmp_path, monkeypatch):
    sandbox = make_sandbox("fallback", tmp_path)
    config = sandbox._config
    monkeypatch.setattr(sandbox, "_config", lambda *args: {**config(*args), "use_landlock": False})
    result = sandbox.run("print('ran')\n")
    assert result.status == "sandbox_error" and "ran" not in result.stdout
    assert "lacks the required layers ['landlock-fs']" in result.stderr
    lenient = Sandbox(namespaces=False, temp_root=tmp_path, strict=False, **LIMITS)
    monkeypatch.setattr(lenient, "_config", lambda *args: {**config(*args), "use_landlock": False, "require": []})
    assert lenient.run("print('ran')\n").stdout == "ran\n"


def test_runs_in_threads_do_not_see_each_others_verdict_pipes(tmp_path):
    sandbox = make_sandbox("fallback", tmp_path)
    outcomes = {}

    def run(index):
        outcomes[index] = sandbox.run(f"assert {index} % 2 == 0\n").passed

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == {i: i % 2 == 0 for i in range(6)}

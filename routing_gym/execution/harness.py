"""Second stage of a sandbox run: execute the solution, then its tests, and report a pass.

Started by ``confine.py`` (already confined) as ``python -P -s -S -B harness.py CONFIG_JSON``;
the solution, tests and a per-run nonce arrive on stdin. It imports only the standard library
and never ctypes.

Why a pass cannot be faked by ordinary means (docs/sandbox.md has the whole argument):
- The verdict is the nonce, written to an inherited pipe (``verdict_fd``) after the tests ran
  to their end; the exit status means nothing. Exits, atexit, threads, hooks and signals
  can only end the run early, which writes no nonce; blind writes to descriptors lack it.
- The nonce lives only in the locals of this module's functions. An audit hook, which
  cannot be removed, denies every way Python code has to reach another function's frame
  (``sys._getframe``, ``tb_frame``, ``gi_frame``/``cr_frame``/``ag_frame``,
  ``sys._current_frames``), the garbage collector's object lists, tracing and profiling,
  making code objects and unmarshalling (the routes to crafted bytecode), and importing
  ctypes or the CPython test modules. Model code runs in a worker thread, so it cannot set
  signal handlers (which receive the interrupted frame) either.
- The tests run in their own namespace against references saved before the solution ran:
  a copy of the builtins, copies of the modules they import, the prompt's helpers defined
  afresh; only the names the tests call come from the solution.
- Files opened for writing and folders made are counted against the run's disk budget.
"""

import builtins
import json
import os
import sys
import _thread

FAILED = 1
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_DENIED_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace", "sys.setprofile",
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__", "marshal.load", "marshal.loads",
    "sys.addaudithook",
})
# ctypes and the CPython test modules give raw memory; sub-interpreters start without this hook
_DENIED_MODULES = ("ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
                   "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz", "_ctypes_test")
# modules that print or act when imported: the solution imports them itself, in its own order
_LOUD_MODULES = ("this", "antigravity", "__hello__", "__phello__")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxDenied(ValueError):
    """Raised by the audit hook. A ValueError because the standard library already treats one from
    ``sys._getframe`` as "no frames here" (namedtuple, enum, typing, logging)."""


def make_audit_hook(max_write_opens: int, max_dirs: int):
    """The hook that guards the harness (see the module docstring) and counts disk use."""
    counts = {"open": 0, "os.mkdir": 0}
    limits = {"open": max_write_opens, "os.mkdir": max_dirs}
    is_str, is_int = str.__instancecheck__, int.__instancecheck__

    def hook(event, args):
        if event in _DENIED_EVENTS or event.startswith("ctypes."):
            raise SandboxDenied(f"routing_gym.sandbox denies {event}")
        if event == "object.__getattr__" and args[1] in _FRAME_ATTRIBUTES:
            raise SandboxDenied(f"routing_gym.sandbox denies frame access ({args[1]})")
        if event == "import" and args[0].partition(".")[0] in _DENIED_MODULES:
            raise ImportError(f"routing_gym.sandbox denies importing {args[0]}")
        if event == "open":
            path, mode, flags = args
            if is_int(path) or path == "/dev/null":
                return
            writes = (flags or 0) & _WRITE_FLAGS or (is_str(mode) and any(c in mode for c in "wax+"))
            if not writes:
                return
        elif event != "os.mkdir":
            return
        counts[event] += 1
        if counts[event] > limits[event]:
            raise PermissionError(f"routing_gym.sandbox disk budget: at most {limits[event]} "
                                  f"{'files opened for writing' if event == 'open' else 'folders'} per run")

    return hook


def module_copies(names: list, real_import) -> dict:
    """Copies of the modules ``names`` (those that import), made before any model code runs:
    the tests see these, so patching ``math.fabs`` in the solution does not reach them."""
    copies = {}
    module_type = type(sys)
    for name in names:
        if name.partition(".")[0] in _DENIED_MODULES:
            continue
        try:
            real_import(name)
        except Exception:  # noqa: BLE001 - a test that needs it fails later with the real error
            continue
        module = sys.modules[name]
        copy = module_type(name)
        copy.__dict__.update(module.__dict__)
        copies[name] = copy
    for name, copy in copies.items():  # packages hand out their copied submodules
        for child, child_copy in copies.items():
            if child.rpartition(".")[0] == name:
                copy.__dict__[child.rpartition(".")[2]] = child_copy
    return copies


def guarded_import(real_import, copies: dict):
    """An ``__import__`` for the tests that answers from ``copies`` (never from sys.modules,
    which the solution may have rewritten) and falls back to the real import."""

    def __import__(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name in copies:
            return copies[name] if fromlist else copies[name.partition(".")[0]]
        return real_import(name, globals, locals, fromlist, level)

    return __import__


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, and the line it came from, without running its code twice."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = type(exc).__name__
    tb, line = exc.__traceback__, None
    while tb is not None:  # tb_lineno and tb_next need no frame
        line, tb = tb.tb_lineno, tb.tb_next
    return text if line is None else f"{text} (line {line})"


def run(payload: dict, tools: dict) -> None:
    """The worker thread: solution, then tests, then the verdict; it always ends the process."""
    exit_, write, stderr = tools["exit"], tools["write"], tools["stderr"]
    stage = "solution"
    try:
        solution = {"__name__": "__main__", "__builtins__": builtins}
        tools["exec"](tools["compile"](payload["solution"], "solution.py", "exec", dont_inherit=True), solution)
        if payload["tests"] is not None:
            stage = "tests"
            tests = {"__name__": "__main__", "__builtins__": tools["builtins"]}
            keep = set(payload["keep"])
            for name, value in list(solution.items()):
                if not tools["is_str"](name) or name.startswith("__"):
                    continue
                if name not in tools["builtins"] or name in keep:  # never a builtin's stand-in
                    tests[name] = value
            tools["exec"](tools["compile"](payload["setup"], "setup.py", "exec", dont_inherit=True), tests)
            for name in keep:  # the names the tests call are the solution's, not the prompt's stubs
                if name in solution:
                    tests[name] = solution[name]
            tools["exec"](tools["compile"](payload["tests"], "tests.py", "exec", dont_inherit=True), tests)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt fail the run too
        try:
            _flush(tools["stdout"])
            stderr.write(f"routing_gym.sandbox: the {stage} raised {describe(exc)}\n")
        finally:
            _flush(stderr)
            exit_(FAILED)
    try:
        write(tools["verdict_fd"], tools["nonce"])  # every statement of the tests ran to its end
    finally:
        _flush(tools["stdout"])
        _flush(stderr)
        exit_(0)


def _flush(stream) -> None:
    """Flush one of the streams saved before the solution ran (it may have closed them)."""
    try:
        stream.flush()
    except BaseException:  # noqa: BLE001
        pass


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.argv = ["solution.py"]
    exit_ = os._exit
    try:
        payload = json.loads(sys.stdin.buffer.read())
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        real_import = builtins.__import__
        saved = dict(builtins.__dict__)
        for name in payload["preload"]:  # standard-library modules only: nothing else is readable
            if name.partition(".")[0] not in _DENIED_MODULES + _LOUD_MODULES:
                try:
                    real_import(name)
                except BaseException:  # noqa: BLE001 - the solution meets the same error itself
                    pass
        copies = {}
        if payload["tests"] is not None:
            copies = module_copies(payload["imports"], real_import)
            saved["__import__"] = guarded_import(real_import, copies)
        tools = {"exit": exit_, "write": os.write, "exec": exec, "compile": compile, "is_str": str.__instancecheck__,
                 "builtins": saved, "stdout": sys.stdout, "stderr": sys.stderr,
                 "verdict_fd": config["verdict_fd"], "nonce": payload["nonce"].encode()}
        sys.pycache_prefix = "/nonexistent/routing_gym"  # later imports compile from source: unmarshalling is denied
        sys.addaudithook(make_audit_hook(config["max_write_opens"], config["max_dirs"]))
        done = _thread.allocate_lock()
        done.acquire()
        _thread.stack_size(64 << 20)  # room for deep recursion, as the main thread would have
        _thread.start_new_thread(run, (payload, tools))
        _thread.stack_size(0)
        del payload, tools
        done.acquire()  # never released: the worker ends the process
    finally:
        exit_(FAILED)  # never fall through to interpreter shutdown, where atexit and finalizers run


if __name__ == "__main__":
    main()

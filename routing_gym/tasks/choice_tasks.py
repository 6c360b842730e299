"""ARC-Challenge and MMLU: multiple choice, scored by the answer letter."""

from __future__ import annotations

import string

from routing_gym.data.arc_challenge import load_arc_challenge
from routing_gym.data.mmlu import load_mmlu
from routing_gym.data.splits import first_by_hash
from routing_gym.metrics.choice import choice_score, extract_choice_letter
from routing_gym.tasks.base import HopTask, LoadOptions, Score

_MMLU_SPLITS = {"train": "dev", "valid": "val", "test": "test"}


class ChoiceTask(HopTask):
    """Shared prompt and letter scoring; the letter is read by regex from the final answer."""

    # Letter first: small models asked to explain first run out of tokens before committing,
    # which read as wrong answers (below chance on MMLU with 96 tokens).
    instruction = (
        "Answer the multiple-choice question. Write 'Answer: <letter>' on the first line, "
        "then at most one short sentence of reason."
    )
    max_new_tokens = 32

    def question(self, example) -> str:
        letters = string.ascii_uppercase
        options = "\n".join(f"{letters[i]}. {choice}" for i, choice in enumerate(example.choices))
        return f"Question: {example.question}\n{options}"

    def score(self, text: str, example, sandbox=None) -> Score:
        n = len(example.choices)
        return Score(choice_score(text, example.answer, n), extract_choice_letter(text, n))


class ARCTask(ChoiceTask):
    """ARC-Challenge: the one file, split by id hash; 3 to 5 choices shown as A, B, C..."""

    name = "arc_challenge"

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        return load_arc_challenge(options.split, data_dir=options.data_dir, fractions=options.fractions,
                                  limit=options.limit)


class MMLUTask(ChoiceTask):
    """MMLU: "train" is the dev folder, "valid" the val folder, "test" the test folder."""

    name = "mmlu"

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        examples = load_mmlu(_MMLU_SPLITS[options.split], subjects=options.extra.get("mmlu_subjects"),
                             data_dir=options.data_dir)
        if options.limit is None:
            return examples
        # The files come subject by subject, so a prefix would be one or two subjects.
        return first_by_hash(examples, options.limit)

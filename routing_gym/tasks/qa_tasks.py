"""HotpotQA with its gold paragraphs in the prompt: reading comprehension, scored by token F1.

Not one of the multi-hop env's six tasks; ``benchmarks/pool_quality.py`` uses it to measure
whether a model can answer HotpotQA at all when retrieval is taken out of the way.
"""

from __future__ import annotations

from routing_gym.data.hotpotqa import load_hotpotqa
from routing_gym.data.splits import select_split
from routing_gym.metrics.qa import f1_score
from routing_gym.tasks.base import HopTask, LoadOptions, Score

_HOTPOTQA_FILES = {"train": "train", "valid": "valid"}


class HotpotQAGoldTask(HopTask):
    """HotpotQA: "train" and "valid" are the files; "test" is a hash split of the valid file."""

    name = "hotpotqa_gold"
    instruction = "Answer the question from the paragraphs, in a few words and with no explanation."
    max_new_tokens = 24

    def load(self, options: LoadOptions) -> list:
        self.check_split(options.split, self.name)
        if options.split in _HOTPOTQA_FILES:
            examples = load_hotpotqa(_HOTPOTQA_FILES[options.split], data_dir=options.data_dir)
        else:
            examples = select_split(load_hotpotqa("valid", data_dir=options.data_dir), "test", options.fractions)
        return examples if options.limit is None else examples[: options.limit]

    def question(self, example) -> str:
        gold = {title for title, _ in example.supporting_facts}
        paragraphs = [
            f"{title}: {' '.join(s.strip() for s in sentences)}" for title, sentences in example.context if title in gold
        ]
        return "\n\n".join(paragraphs) + f"\n\nQuestion: {example.question}"

    def score(self, text: str, example, sandbox=None) -> Score:
        lines = text.strip().splitlines()
        answer = lines[0].removeprefix("Answer:").strip() if lines else ""
        return Score(f1_score(answer, example.answer), answer)

"""Loaders for the benchmark data sets and deterministic id-based splits.

Every loader reads from ``routing_gym.paths.data_dir()`` (``$ROUTING_GYM_DATA``) or an
explicit path, returns frozen dataclasses, and raises ``DataFormatError`` naming the file,
line and field of any malformed row.
"""

from routing_gym.data.gsm8k import GSM8KExample, load_gsm8k
from routing_gym.data.hotpotqa import HotpotQAExample, load_hotpotqa
from routing_gym.data.humaneval import HumanEvalProblem, load_humaneval
from routing_gym.data.mmlu import MMLUExample, load_mmlu, load_mmlu_file, mmlu_subjects
from routing_gym.data.splits import DEFAULT_FRACTIONS, assign_split, split_ids

__all__ = [
    "DEFAULT_FRACTIONS",
    "GSM8KExample",
    "HotpotQAExample",
    "HumanEvalProblem",
    "MMLUExample",
    "assign_split",
    "load_gsm8k",
    "load_hotpotqa",
    "load_humaneval",
    "load_mmlu",
    "load_mmlu_file",
    "mmlu_subjects",
    "split_ids",
]

"""Loaders for the benchmark data sets and deterministic id-based splits.

Every loader reads from ``routing_gym.paths.data_dir()`` (``$ROUTING_GYM_DATA``) or an
explicit path, returns frozen dataclasses, and raises ``DataFormatError`` naming the file,
line and field of any malformed row.
"""

from routing_gym.data.arc_challenge import ARCExample, load_arc_challenge
from routing_gym.data.gsm8k import GSM8KExample, load_gsm8k
from routing_gym.data.hotpotqa import HotpotQAExample, load_hotpotqa
from routing_gym.data.humaneval import HumanEvalProblem, load_humaneval
from routing_gym.data.math import MATHExample, last_boxed, load_math
from routing_gym.data.mbpp import MBPP_SPLITS, MBPPExample, load_mbpp
from routing_gym.data.mmlu import MMLUExample, load_mmlu, load_mmlu_file, mmlu_subjects
from routing_gym.data.splits import DEFAULT_FRACTIONS, assign_split, select_split, split_ids

__all__ = [
    "ARCExample",
    "DEFAULT_FRACTIONS",
    "GSM8KExample",
    "HotpotQAExample",
    "HumanEvalProblem",
    "MATHExample",
    "MBPPExample",
    "MBPP_SPLITS",
    "MMLUExample",
    "assign_split",
    "last_boxed",
    "load_arc_challenge",
    "load_gsm8k",
    "load_hotpotqa",
    "load_humaneval",
    "load_math",
    "load_mbpp",
    "load_mmlu",
    "load_mmlu_file",
    "mmlu_subjects",
    "select_split",
    "split_ids",
]

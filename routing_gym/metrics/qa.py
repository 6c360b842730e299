"""HotpotQA answer metrics, as in the official ``hotpot_evaluate_v1.py``.

Re-implemented (a dozen lines) rather than imported: the official script is not a
package, and the ``evaluate`` library's SQuAD metric lacks HotpotQA's yes/no rule and
pulls in ``datasets``. Scores here equal the official script's for the same strings.
"""

from __future__ import annotations

import re
import string
from collections import Counter

# answers that are labels, not spans: partial token overlap with them earns nothing
SPECIAL_ANSWERS = frozenset({"yes", "no", "noanswer"})

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lowercase, drop ASCII punctuation and the articles a/an/the, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def precision_recall_f1(prediction: str, gold: str) -> tuple[float, float, float]:
    """Token-overlap (precision, recall, F1) after normalization, with the yes/no/noanswer rule."""
    pred_norm = normalize_answer(prediction)
    gold_norm = normalize_answer(gold)
    if (pred_norm in SPECIAL_ANSWERS or gold_norm in SPECIAL_ANSWERS) and pred_norm != gold_norm:
        return 0.0, 0.0, 0.0
    pred_tokens = pred_norm.split()
    gold_tokens = gold_norm.split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:  # also the case when both sides normalize to nothing, as officially
        return 0.0, 0.0, 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return precision, recall, 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, gold: str) -> float:
    """HotpotQA answer F1 in [0, 1]."""
    return precision_recall_f1(prediction, gold)[2]


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when both answers normalize to the same string, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))

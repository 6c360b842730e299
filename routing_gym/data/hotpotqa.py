"""HotpotQA (distractor setting) in its official JSON schema."""

from __future__ import annotations

import os
from dataclasses import dataclass

from routing_gym.data.records import Record, iter_json_records, resolve_split_file

Paragraph = tuple[str, tuple[str, ...]]  # (title, sentences)


@dataclass(frozen=True)
class HotpotQAExample:
    """One HotpotQA question with its context paragraphs (gold and distractors)."""

    id: str
    question: str
    answer: str
    type: str  # "bridge" or "comparison"; "" when the file omits it
    level: str  # "easy", "medium" or "hard"; "" when the file omits it
    context: tuple[Paragraph, ...]
    supporting_facts: tuple[tuple[str, int], ...]  # (title, sentence index)

    @property
    def titles(self) -> tuple[str, ...]:
        """Titles of the context paragraphs, in file order."""
        return tuple(title for title, _ in self.context)

    def paragraph_texts(self) -> list[str]:
        """Each context paragraph as one string (HotpotQA sentences carry their own spaces)."""
        return ["".join(sentences) for _, sentences in self.context]

    def supporting_sentences(self) -> list[str]:
        """The gold supporting sentences; facts that point past a paragraph are skipped."""
        by_title = dict(self.context)
        out = []
        for title, idx in self.supporting_facts:
            sentences = by_title.get(title, ())
            if 0 <= idx < len(sentences):
                out.append(sentences[idx])
        return out


def load_hotpotqa(
    split: str | os.PathLike = "valid",
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[HotpotQAExample]:
    """Load HotpotQA examples from ``<data_dir>/hotpotqa/<split>.jsonl`` (or ``.json``) or a path.

    ``split`` is a split name ("train", "valid") or a path to a JSON Lines file or an
    official JSON list file, optionally gzipped. ``data_dir`` defaults to
    ``$ROUTING_GYM_DATA``. ``limit`` keeps the first ``limit`` examples; rows past it are
    not read, so not checked either.

    Raises FileNotFoundError (naming the paths tried) when the file is missing, and
    DataFormatError naming the file, line and field on any malformed row or repeated ``_id``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    path = resolve_split_file("hotpotqa", split, data_dir)
    examples: list[HotpotQAExample] = []
    seen: set[str] = set()
    for record in iter_json_records(path):
        if limit is not None and len(examples) >= limit:
            break
        example = _parse_example(record)
        if example.id in seen:
            raise record.error(f"duplicate id {example.id!r}", field="_id")
        seen.add(example.id)
        examples.append(example)
    return examples


def _parse_example(record: Record) -> HotpotQAExample:
    return HotpotQAExample(
        id=record.require("_id", str),
        question=record.require_text("question"),
        answer=record.require("answer", str),
        type=record.require("type", str, default=""),
        level=record.require("level", str, default=""),
        context=_parse_context(record),
        supporting_facts=_parse_supporting_facts(record),
    )


def _parse_context(record: Record) -> tuple[Paragraph, ...]:
    context = record.require("context", list)
    paragraphs = []
    for i, item in enumerate(context):
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], list)
            and all(isinstance(s, str) for s in item[1])
        )
        if not ok:
            raise record.error(
                f"item {i} is not a [title, [sentences...]] pair of strings: {_preview(item)}",
                field="context",
            )
        paragraphs.append((item[0], tuple(item[1])))
    return tuple(paragraphs)


def _parse_supporting_facts(record: Record) -> tuple[tuple[str, int], ...]:
    facts = record.require("supporting_facts", list, default=[])
    out = []
    for i, item in enumerate(facts):
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and item[1] >= 0
        )
        if not ok:
            raise record.error(
                f"item {i} is not a [title, sentence_index] pair: {_preview(item)}",
                field="supporting_facts",
            )
        out.append((item[0], item[1]))
    return tuple(out)


def _preview(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."

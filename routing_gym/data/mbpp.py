"""MBPP (Mostly Basic Python Problems): JSON Lines with a task, a reference solution and asserts."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from routing_gym.data.records import Record, iter_json_records, looks_like_path
from routing_gym.paths import data_dir as resolve_data_dir

#: The standard split of the original release, by ``task_id`` (inclusive ranges).
MBPP_SPLITS: dict[str, tuple[int, int]] = {
    "prompt": (1, 10),
    "test": (11, 510),
    "validation": (511, 600),
    "train": (601, 974),
}
_SPLIT_ALIASES = {"valid": "validation", "val": "validation"}
MBPP_FILES = {"full": "mbpp.jsonl", "sanitized": "sanitized-mbpp.jsonl"}
_DEFINITION = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class MBPPExample:
    """One MBPP task: a one-sentence description, its reference code and its assert tests."""

    id: str  # "mbpp/<task_id>"
    task_id: int
    text: str
    code: str
    tests: tuple[str, ...]
    setup_code: str = ""
    test_imports: tuple[str, ...] = ()

    @property
    def entry_point(self) -> str:
        """The function of the reference code that the first test calls ("" when none is)."""
        for name in _DEFINITION.findall(self.code):
            if re.search(rf"\b{re.escape(name)}\s*\(", self.tests[0]):
                return name
        return ""


def mbpp_split_of(task_id: int) -> str | None:
    """The standard split a ``task_id`` belongs to, or None when it lies outside all of them."""
    for name, (low, high) in MBPP_SPLITS.items():
        if low <= task_id <= high:
            return name
    return None


def load_mbpp(
    split: str = "test",
    data_dir: str | os.PathLike | None = None,
    variant: str = "full",
    path: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[MBPPExample]:
    """Load MBPP tasks of the standard ``split`` ("prompt", "train", "validation"/"valid", "test"
    or "all") from ``<data_dir>/mbpp/mbpp.jsonl`` (``variant="sanitized"``: the hand-verified
    subset) or from ``path``, in file order.

    Raises FileNotFoundError when the file is missing and DataFormatError naming the file,
    line and field on a malformed row or a repeated ``task_id``.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    split = _SPLIT_ALIASES.get(split, split)
    if split != "all" and split not in MBPP_SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; choose one of {sorted(MBPP_SPLITS)} or 'all'")
    if variant not in MBPP_FILES:
        raise ValueError(f"unknown MBPP variant {variant!r}; choose one of {sorted(MBPP_FILES)}")
    if path is None:
        file = resolve_data_dir(data_dir) / "mbpp" / MBPP_FILES[variant]
    else:
        if not looks_like_path(path):
            raise ValueError(f"MBPP path {path!r} does not look like a file path")
        file = Path(path).expanduser()
    examples: list[MBPPExample] = []
    seen: set[int] = set()
    for record in iter_json_records(file):
        if limit is not None and len(examples) >= limit:
            break
        example = _parse(record)
        if example.task_id in seen:
            raise record.error(f"duplicate task_id {example.task_id}", field="task_id")
        seen.add(example.task_id)
        if split == "all" or mbpp_split_of(example.task_id) == split:
            examples.append(example)
    return examples


def _parse(record: Record) -> MBPPExample:
    task_id = record.require("task_id", int)
    # the original file calls the description "text", the sanitized one "prompt"
    text_field = "text" if "text" in record.data else "prompt"
    text = record.require_text(text_field)
    code = record.require("code", str)
    tests = tuple(_string_list(record, "test_list"))
    if not tests:
        raise record.error("needs at least one test", field="test_list")
    blank = [position for position, test in enumerate(tests) if not test.strip()]
    if blank:  # a blank test checks nothing: any answer would pass it
        raise record.error(f"test {blank[0]} is blank", field="test_list")
    setup = record.require("test_setup_code", str, default="")
    imports = tuple(_string_list(record, "test_imports", required=False))
    return MBPPExample(
        id=f"mbpp/{task_id}",
        task_id=task_id,
        text=text,
        code=code.replace("\r\n", "\n"),
        tests=tests,
        setup_code=setup.replace("\r\n", "\n"),
        test_imports=imports,
    )


def _string_list(record: Record, field: str, required: bool = True) -> list[str]:
    values = record.require(field, list) if required else record.require(field, list, default=[])
    for position, value in enumerate(values):
        if not isinstance(value, str):
            raise record.error(f"item {position} is {type(value).__name__}, expected str", field=field)
    return values

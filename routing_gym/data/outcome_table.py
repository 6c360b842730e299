"""Outcome tables: the measured score of every model on every query, and what each call costs.

A table holds numbers only (ids, tasks, embeddings, scores, token counts), never query text.
Two sources:

* the default table (9 LLMs x 14 tasks from LLMRouter), shipped in the package as
  ``assets/llmrouter_outcomes.npz`` (numbers only, with LLMRouter's MIT notice) and rebuilt
  from ``$ROUTING_GYM_DATA/llmrouter`` by ``routing_gym.data.build_outcome_table`` (see
  docs/outcome_table.md for attribution and the cost assumptions), loaded with
  ``load_outcome_table()``;
* a table of your own in the wide CSV / JSON Lines format below, ``load_outcome_table(path)``.

Wide format (one row per query; CSV with a header, or one JSON object per line):

==============================  ===========================================================
column                          meaning
==============================  ===========================================================
``question`` and/or ``id``      the query text (embedded with MiniLM, cached) and/or its id
``<model>`` (one per model)     score of that model on the query, a number in [0, 1]
``task``                        optional task name (default ``"default"``)
``split``                       optional ``train`` / ``valid`` / ``test`` (default: hash of id)
``embedding``                   optional precomputed vector (JSON list; needed without question)
``prompt_tokens``               optional prompt length shared by every model
``completion_tokens``           optional completion length shared by every model
``<model>|prompt_tokens``       optional per-model prompt length
``<model>|completion_tokens``   optional per-model completion length
``<model>|cost``                optional USD cost of that call (wins over token counts)
==============================  ===========================================================

Costs come from ``<model>|cost`` when given, else ``prompt_tokens * input_price +
completion_tokens * output_price`` with prices from a price file (``load_prices``). Without a
prompt length, the question's tokens are counted with a proxy tokenizer (SmolLM2's); without a
completion length, an assumed per-task length is used (``DEFAULT_COMPLETION_TOKENS``).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from routing_gym.cost import MAX_CALL_TOKENS, Price
from routing_gym.data.outcome_schema import (  # noqa: F401  (the format's names, re-exported)
    DEFAULT_TABLE_NAME,
    PROXY_TOKENIZER_GGUF,
    PROXY_TOKENIZER_PACKAGE,
    TABLE_FORMAT_VERSION,
    count_prompt_tokens,
    default_table_path,
    load_prices,
    proxy_tokenizer,
    query_id,
)
from routing_gym.data.splits import DEFAULT_FRACTIONS, DEFAULT_SALT, assign_split
from routing_gym.errors import DataFormatError
from routing_gym.paths import exclusive_lock


#: Assumed completion length (tokens) per task: the source table records no output lengths.
#: Rough typical answer lengths: a letter or short span for QA, a worked solution for math,
#: a function for code. ``"default"`` serves any task not listed.
DEFAULT_COMPLETION_TOKENS: dict[str, int] = {
    "mmlu": 32,
    "arc_challenge": 32,
    "openbook_qa": 32,
    "commonsense_qa": 32,
    "gpqa": 32,
    "natural_qa": 32,
    "trivia_qa": 32,
    "commongen": 64,
    "mbpp": 192,
    "human_eval": 192,
    "gsm8k": 256,
    "agentverse-mgsm": 256,
    "agentverse-logicgrid": 256,
    "math": 384,
    "default": 128,
}

#: The default table as shipped inside the package (numbers only; MIT notice beside it).
SHIPPED_TABLE = Path(__file__).resolve().parent / "assets" / DEFAULT_TABLE_NAME

SPLITS = ("train", "valid", "test")
DEFAULT_SPLIT_FRACTIONS: Mapping[str, float] = DEFAULT_FRACTIONS
DEFAULT_SPLIT_SALT = DEFAULT_SALT

_RESERVED = ("id", "question", "task", "split", "embedding", "prompt_tokens", "completion_tokens")
_PER_MODEL = ("cost", "prompt_tokens", "completion_tokens")
TOKEN_COUNT = f"a token count in [0, {MAX_CALL_TOKENS}]"


def hash_split(
    ids: Sequence[str], fractions: Mapping[str, float] | None = None, salt: str = DEFAULT_SPLIT_SALT
) -> np.ndarray:
    """Assign each id to a split by a stable hash, so a query keeps its split across runs."""
    fractions = DEFAULT_SPLIT_FRACTIONS if fractions is None else fractions
    return np.array([assign_split(i, fractions=fractions, salt=salt) for i in ids])


def resolve_completion_tokens(
    assumption: int | float | str | Mapping[str, float] | None, tasks: Iterable[str]
) -> dict[str, float]:
    """Turn the completion-length assumption into ``{task: tokens}`` for ``tasks``.

    ``None`` or ``"default"`` uses ``DEFAULT_COMPLETION_TOKENS``; a number applies to every task;
    a mapping gives per-task numbers, with an optional ``"default"`` entry for the rest.
    """
    if assumption is None or (isinstance(assumption, str) and assumption == "default"):
        table: Mapping[str, float] = DEFAULT_COMPLETION_TOKENS
    elif isinstance(assumption, Mapping):
        table = assumption
    elif isinstance(assumption, (int, float)) and not isinstance(assumption, bool):
        table = {"default": assumption}
    else:
        raise ValueError(
            "completion_tokens must be 'default', a number or a {task: tokens} mapping, "
            f"got {assumption!r}."
        )
    out = {}
    for task in tasks:
        value = table.get(task, table.get("default"))
        if value is None:
            raise ValueError(f"completion_tokens has no entry for task {task!r} and no 'default'.")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not 0 <= value <= MAX_CALL_TOKENS
        ):
            raise ValueError(
                f"completion_tokens[{task!r}] must be a number in [0, {MAX_CALL_TOKENS}], "
                f"got {value!r}."
            )
        out[task] = float(value)
    return out


@dataclass(frozen=True, eq=False)
class OutcomeTable:
    """Scores and cost inputs of ``m`` models on ``n`` queries, all as numpy arrays."""

    ids: np.ndarray  # (n,) str
    tasks: np.ndarray  # (n,) str
    embeddings: np.ndarray  # (n, d) float32 unit vectors
    scores: np.ndarray  # (n, m) float32 in [0, 1]
    prompt_tokens: np.ndarray  # (n, m) float64; NaN where the cost is given directly
    completion_tokens: np.ndarray  # (n, m) float64; NaN = use the per-task assumption
    fixed_costs: np.ndarray  # (n, m) float64 USD; NaN = compute from tokens x price
    models: tuple[str, ...]
    prices: Mapping[str, Price] | None = None
    splits: np.ndarray | None = None  # (n,) str from the file's ``split`` column, if any
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def task_names(self) -> list[str]:
        """The distinct tasks, sorted."""
        return sorted(set(self.tasks.tolist()))

    def costs(
        self, completion_tokens: Any = "default", prices: Mapping[str, Price] | None = None
    ) -> np.ndarray:
        """USD cost of calling each model on each query, ``(n, m)`` float64.

        ``completion_tokens`` is the assumption used where the table has no completion length
        (see ``resolve_completion_tokens``); ``prices`` overrides the table's own prices.
        """
        prices = self.prices if prices is None else prices
        computed = np.isnan(self.fixed_costs)
        if computed.any() and prices is None:
            raise ValueError(
                f"Outcome table {self.source} needs prices=... to turn tokens into costs."
            )
        per_task = resolve_completion_tokens(completion_tokens, self.task_names)
        assumed = np.array([per_task[t] for t in self.tasks], dtype=np.float64)[:, None]
        completion = np.where(np.isnan(self.completion_tokens), assumed, self.completion_tokens)
        out = self.fixed_costs.copy()
        for j, model in enumerate(self.models):
            if not computed[:, j].any():
                continue
            if model not in prices:
                raise ValueError(
                    f"No price for model {model!r}; the prices cover {sorted(prices)}."
                )
            price = prices[model]
            rows = computed[:, j]
            out[rows, j] = price.cost(self.prompt_tokens[rows, j], completion[rows, j])
        return out

    def split_labels(
        self, fractions: Mapping[str, float] | None = None, salt: str = DEFAULT_SPLIT_SALT
    ) -> np.ndarray:
        """Split name of every row: the file's ``split`` column, else a stable hash of the id."""
        if self.splits is not None:
            return self.splits
        # insertion order matters: the hash falls into the fractions' cumulative intervals
        return _cached_hash_split(
            tuple(self.ids.tolist()), tuple((fractions or DEFAULT_SPLIT_FRACTIONS).items()), salt
        )

    def subset(self, rows: np.ndarray) -> "OutcomeTable":
        """The rows selected by a boolean mask or an index array, as a new table."""
        take = lambda a: None if a is None else a[rows]  # noqa: E731
        return replace(
            self,
            ids=take(self.ids),
            tasks=take(self.tasks),
            embeddings=take(self.embeddings),
            scores=take(self.scores),
            prompt_tokens=take(self.prompt_tokens),
            completion_tokens=take(self.completion_tokens),
            fixed_costs=take(self.fixed_costs),
            splits=take(self.splits),
        )


@functools.lru_cache(maxsize=8)
def _cached_hash_split(
    ids: tuple[str, ...], fractions: tuple[tuple[str, float], ...], salt: str
) -> np.ndarray:
    labels = hash_split(ids, dict(fractions), salt)
    labels.setflags(write=False)
    return labels


_default_table: Path | None = None  # resolved once per process, like a loaded model


def ensure_default_table(data_root: str | os.PathLike | None = None) -> Path:
    """The default table's path: the copy shipped in the package, else one built into the cache.

    The shipped copy needs no data folder. Without it (a stripped install) the table is built
    from ``$ROUTING_GYM_DATA/llmrouter``; a lock makes parallel workers build it once, and the
    build renames a finished file into place.
    """
    global _default_table
    if _default_table is not None and _default_table.is_file():
        return _default_table
    if SHIPPED_TABLE.is_file():
        _default_table = SHIPPED_TABLE
        return SHIPPED_TABLE
    path = default_table_path()
    if not path.is_file():
        with exclusive_lock(path.with_suffix(".lock")):
            if not path.is_file():
                from routing_gym.data.build_outcome_table import build_outcome_table

                try:
                    build_outcome_table(data_root, path)
                except FileNotFoundError as exc:
                    raise FileNotFoundError(
                        f"The default outcome table is not cached at {path} and cannot be "
                        f"built: {exc}"
                    ) from None
    _default_table = path
    return path


def load_outcome_table(path: str | os.PathLike | None = None, encoder=None) -> OutcomeTable:
    """Load the default table (``path=None``), a ``.npz`` of the builder, or a wide CSV/JSONL.

    The default table is built from ``$ROUTING_GYM_DATA/llmrouter`` on first use and cached.
    Loaded tables are cached per process (keyed by path and modification time) and their arrays
    are read-only, so many environments can share one copy.
    """
    resolved = ensure_default_table() if path is None else Path(path).expanduser().resolve()
    if resolved.is_dir():
        raise IsADirectoryError(
            f"Outcome table {resolved} is a folder; give the table file (.npz, .csv or .jsonl)."
        )
    if not resolved.is_file():
        raise FileNotFoundError(f"Outcome table {resolved} does not exist.")
    if encoder is not None:  # a custom encoder bypasses the cache: its vectors may differ
        return _load_uncached(resolved, encoder)
    return _load_cached(str(resolved), resolved.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> OutcomeTable:
    return _load_uncached(Path(path), None)


def _load_uncached(path: Path, encoder) -> OutcomeTable:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        table = _read_npz(path)
    elif suffix in (".csv", ".jsonl"):
        table = read_wide_table(path, encoder=encoder)
    else:
        raise DataFormatError(path, "unknown table format; use .npz, .csv or .jsonl")
    for name in (
        "ids",
        "tasks",
        "embeddings",
        "scores",
        "prompt_tokens",
        "completion_tokens",
        "fixed_costs",
        "splits",
    ):
        array = getattr(table, name)
        if array is not None:
            array.setflags(write=False)
    return table


def _read_npz(path: Path) -> OutcomeTable:
    with np.load(path, allow_pickle=False) as data:
        try:
            meta = json.loads(str(data["meta"]))
            if meta.get("format_version") != TABLE_FORMAT_VERSION:
                raise DataFormatError(
                    path,
                    f"format_version {meta.get('format_version')!r} is not "
                    f"{TABLE_FORMAT_VERSION}; rebuild the table",
                )
            models = tuple(str(m) for m in data["models"])
            scores = data["scores"].astype(np.float32)
            n, m = scores.shape
            prompt = np.broadcast_to(
                data["prompt_tokens"].astype(np.float64)[:, None], (n, m)
            ).copy()
            prices = {
                model: Price(float(i), float(o))
                for model, i, o in zip(models, data["input_price"], data["output_price"])
            }
            return OutcomeTable(
                ids=data["ids"].astype(str),
                tasks=data["tasks"].astype(str),
                embeddings=data["embeddings"].astype(np.float32),
                scores=scores,
                prompt_tokens=prompt,
                completion_tokens=np.full((n, m), np.nan),
                fixed_costs=np.full((n, m), np.nan),
                models=models,
                prices=prices,
                source=str(path),
                meta=meta,
            )
        except KeyError as exc:
            raise DataFormatError(path, f"missing array {exc.args[0]!r}") from exc


# --------------------------------------------------------------------------- wide CSV / JSONL


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Columns and (line, row) pairs of a CSV (with header) or JSON Lines file."""
    if path.suffix.lower() == ".csv":
        # utf-8-sig: Excel starts a UTF-8 CSV with a byte-order mark, which would else be read
        # as part of the first column's name
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = []
            try:
                columns = list(reader.fieldnames or [])
                _require_unique_columns(path, columns)
                for row in reader:
                    if None in row:
                        raise DataFormatError(
                            path, "more cells than header columns", line=reader.line_num
                        )
                    rows.append((reader.line_num, row))
            except csv.Error as exc:  # e.g. a cell over csv's field size limit
                # DictReader.line_num lags by the failing line; its csv reader's does not
                raise DataFormatError(
                    path, f"not readable as CSV ({exc})", line=reader.reader.line_num
                ) from None
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    path, f"not valid UTF-8 ({exc.reason})", line=_first_undecodable_line(path)
                ) from None
        if not columns:
            raise DataFormatError(path, "empty CSV: expected a header row", line=1)
        return columns, rows
    from routing_gym.data.records import iter_json_records

    records = list(iter_json_records(path))
    if not records:
        raise DataFormatError(path, "no rows")
    columns = list(records[0].data)
    rows = []
    for record in records:
        extra = [k for k in record.data if k not in columns]
        if extra:
            raise DataFormatError(
                path, f"column not in the first row: {extra[0]!r}", line=record.line, field=extra[0]
            )
        rows.append((record.line, record.data))
    return columns, rows


def _require_unique_columns(path: Path, columns: list[str]) -> None:
    """A repeated header name would silently keep only one of its columns: refuse it."""
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise DataFormatError(path, "column name appears twice", line=1, field=column)
        seen.add(column)


def _first_undecodable_line(path: Path) -> int | None:
    """The 1-based line holding the first bytes that are not UTF-8 (text reads decode in blocks,
    so the decoder's error does not say which line)."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _number(
    path: Path,
    line: int,
    column: str,
    value: Any,
    low: float = 0.0,
    high: float = math.inf,
    what: str = "a number",
) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataFormatError(path, "missing value", line=line, field=column)
    if isinstance(value, bool):
        raise DataFormatError(path, f"expected {what}, got {value!r}", line=line, field=column)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataFormatError(
            path, f"expected {what}, got {value!r}", line=line, field=column
        ) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise DataFormatError(path, f"expected {what}, got {value!r}", line=line, field=column)
    return number


def read_wide_table(path: str | os.PathLike, encoder=None) -> OutcomeTable:
    """Parse a wide CSV / JSON Lines outcome table (see the module docstring for the columns).

    Raises DataFormatError naming the file, line and column of the first problem.
    """
    path = Path(path)
    columns, rows = _read_rows(path)
    if "question" not in columns and "id" not in columns:
        raise DataFormatError(
            path, "missing column: need 'question' or 'id'", line=1, field="question"
        )
    models = [c for c in columns if c not in _RESERVED and "|" not in c]
    if not models:
        raise DataFormatError(path, "no model score columns", line=1)
    per_model: dict[tuple[str, str], str] = {}
    for column in columns:
        if "|" in column:
            model, _, kind = column.rpartition("|")
            if model not in models or kind not in _PER_MODEL:
                raise DataFormatError(
                    path,
                    f"unknown column; per-model columns are <model>|{{{','.join(_PER_MODEL)}}} "
                    f"for a model with a score column",
                    line=1,
                    field=column,
                )
            per_model[(model, kind)] = column
    has_text = "question" in columns
    if not has_text and "embedding" not in columns:
        raise DataFormatError(
            path,
            "an 'id'-only table needs an 'embedding' column (or add 'question')",
            line=1,
            field="embedding",
        )

    n, m = len(rows), len(models)
    if n == 0:
        raise DataFormatError(path, "no rows")
    scores = np.zeros((n, m), dtype=np.float32)
    prompt = np.full((n, m), np.nan)
    completion = np.full((n, m), np.nan)
    fixed = np.full((n, m), np.nan)
    ids, tasks, questions, splits, vectors = [], [], [], [], []
    seen: dict[str, int] = {}
    for r, (line, row) in enumerate(rows):
        for column in columns:
            if column not in row:
                raise DataFormatError(path, "missing column", line=line, field=column)
        if has_text:
            question = row["question"]
            if not isinstance(question, str) or not question.strip():
                raise DataFormatError(
                    path, "expected non-empty question text", line=line, field="question"
                )
            questions.append(question)
        if "id" in columns and (
            isinstance(row["id"], bool) or not isinstance(row["id"], (str, int))
        ):  # str(None) would be the id "None"
            raise DataFormatError(
                path,
                f"expected an id (text or an integer), got {row['id']!r}",
                line=line,
                field="id",
            )
        item_id = str(row["id"]).strip() if "id" in columns else query_id(question)
        if not item_id:
            raise DataFormatError(path, "empty id", line=line, field="id")
        if item_id in seen:
            raise DataFormatError(
                path,
                f"duplicate id {item_id!r} (first on line {seen[item_id]})",
                line=line,
                field="id" if "id" in columns else "question",
            )
        seen[item_id] = line
        ids.append(item_id)
        tasks.append((str(row["task"]).strip() or "default") if "task" in columns else "default")
        if "split" in columns:
            split = str(row["split"]).strip()
            if split not in SPLITS:
                raise DataFormatError(
                    path, f"split must be one of {SPLITS}, got {split!r}", line=line, field="split"
                )
            splits.append(split)
        if "embedding" in columns:
            vectors.append(_embedding(path, line, row["embedding"]))
        shared_prompt = (
            _number(
                path, line, "prompt_tokens", row["prompt_tokens"], 0.0, MAX_CALL_TOKENS, TOKEN_COUNT
            )
            if "prompt_tokens" in columns
            else np.nan
        )
        shared_completion = (
            _number(
                path,
                line,
                "completion_tokens",
                row["completion_tokens"],
                0.0,
                MAX_CALL_TOKENS,
                TOKEN_COUNT,
            )
            if "completion_tokens" in columns
            else np.nan
        )
        for j, model in enumerate(models):
            scores[r, j] = _number(path, line, model, row[model], 0.0, 1.0, "a score in [0, 1]")
            prompt[r, j] = shared_prompt
            completion[r, j] = shared_completion
            for kind, target in (
                ("cost", fixed),
                ("prompt_tokens", prompt),
                ("completion_tokens", completion),
            ):
                column = per_model.get((model, kind))
                if column is not None:
                    high, what = (
                        (math.inf, "a cost >= 0")
                        if kind == "cost"
                        else (MAX_CALL_TOKENS, TOKEN_COUNT)
                    )
                    target[r, j] = _number(path, line, column, row[column], 0.0, high, what)

    if vectors:
        dims = {len(v) for v in vectors}
        if len(dims) != 1:
            raise DataFormatError(
                path, f"embeddings of different lengths {sorted(dims)}", field="embedding"
            )
        embeddings = np.stack(vectors).astype(np.float32)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        # unit vectors keep the observation inside the Box(-1, 1) the envs declare
        embeddings = embeddings / np.where(norms > 0, norms, 1.0)
    else:
        from routing_gym.retrieval.encoder import default_encoder

        embeddings = (encoder or default_encoder()).encode(questions).astype(np.float32)

    uncosted = np.isnan(fixed) & np.isnan(prompt)
    if uncosted.any():
        if not has_text:
            j = int(np.argwhere(uncosted)[0][1])
            raise DataFormatError(
                path,
                f"no cost for model {models[j]!r}: add '{models[j]}|cost', 'prompt_tokens' or "
                "'question' (whose tokens are then counted)",
                line=1,
                field=f"{models[j]}|cost",
            )
        counts = count_prompt_tokens(questions).astype(np.float64)
        prompt = np.where(uncosted, counts[:, None], prompt)

    return OutcomeTable(
        ids=np.array(ids),
        tasks=np.array(tasks),
        embeddings=np.clip(embeddings, -1.0, 1.0),
        scores=scores,
        prompt_tokens=prompt,
        completion_tokens=completion,
        fixed_costs=fixed,
        models=tuple(models),
        prices=None,
        splits=np.array(splits) if splits else None,
        source=str(path),
        meta={"format": "wide", "rows": n},
    )


def _embedding(path: Path, line: int, value: Any) -> np.ndarray:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataFormatError(
                path, "expected a JSON list of numbers", line=line, field="embedding"
            ) from None
    if not isinstance(value, list) or not value:
        raise DataFormatError(
            path, "expected a non-empty list of numbers", line=line, field="embedding"
        )
    try:
        vector = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(
            path, "expected a list of numbers", line=line, field="embedding"
        ) from None
    if vector.ndim != 1 or not np.all(np.isfinite(vector)):
        raise DataFormatError(
            path, "expected a flat list of finite numbers", line=line, field="embedding"
        )
    return vector

"""The exhaustive builder: every role assignment on every question, and the table it writes.

The action-level table has one JSON line per (question, assignment) with the episode's
performance, token counts and raw cost. HAPS's SFT warm-up learns from its per-question
argmax; the Oracle baseline reads its per-question maximum.

Episodes run in lockstep across questions and assignments through the env's episode
engine, so each model sees large batches. The builder is resumable twice over: rows already in the output file are
skipped, and every model call goes through the response cache.

Resuming is keyed by content, not by the file's name. The first line is a header with the
setting (protocol and its config, each model's weights id and price, the seed) and its
digest; each row carries its question's content digest. A run whose setting differs from
the header's, or whose question of the same id has other content, is refused rather than
mixed into the file. Questions the run does not hold stay, so a larger ``limit`` extends a
table. Files without a header (older builds) are read but never resumed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from routing_gym.cost import CostNormalizer, routing_reward
from routing_gym.errors import DataFormatError
from routing_gym.records import content_digest, drop_partial_last_line, json_digest

TABLE_FORMAT = "routing_gym.action_table/1"
ROW_FIELDS = ("question_id", "index", "assignment", "perf", "cost", "prompt_tokens", "completion_tokens", "turns")
#: Scoring-pass counts of a row (answer letters, verdicts); rows of older tables lack them.
SCORING_FIELDS = ("scoring_calls", "scoring_prompt_tokens", "scoring_completion_tokens")


def build_action_table(
    env_id: str,
    out_path: str | os.PathLike,
    config: dict[str, Any] | None = None,
    questions_per_batch: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Run every assignment (one model per role) on every question of the env's split.

    ``config`` is the env config (models, split, limit, protocol settings, cache...).
    Rows already in ``out_path`` are kept and skipped, so an interrupted run resumes.
    """
    env = gym.make(env_id, config=dict(config or {})).unwrapped
    try:
        engine = env.engine
        examples = engine.examples
        names, roles = env.model_names, env.roles
        out_path = Path(out_path)
        question_digests = [content_digest(example) for example in examples]
        done = _resume(out_path, table_header(env, env_id, seed),
                       dict(zip((str(e.id) for e in examples), question_digests)), roles)
        jobs = [
            (index, example, combo)
            for index, example in enumerate(examples)
            for combo in itertools.product(names, repeat=len(roles))
            if (str(example.id), combo) not in done
        ]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        batch = max(1, questions_per_batch) * len(names) ** len(roles)
        with open(out_path, "a", encoding="utf-8") as handle, tqdm(
            total=len(jobs), desc=f"exhaustive {env_id}", unit="episode", disable=not progress
        ) as bar:
            for start in range(0, len(jobs), batch):
                chunk = jobs[start : start + batch]
                states = [engine.start(index) for index, _, _ in chunk]
                assignments = [dict(zip(roles, combo)) for _, _, combo in chunk]
                seeds = [seed * 1_000_003 + index * 1_009 for index, _, _ in chunk]
                costs = engine.play_episodes(states, assignments, seeds, on_round=_show_turns(bar, len(chunk)))
                lines = []
                for (index, example, _), state, assignment, cost in zip(chunk, states, assignments, costs):
                    lines.append(
                        json.dumps(
                            {
                                "question_id": str(example.id),
                                "question_digest": question_digests[index],
                                "index": index,
                                "assignment": assignment,
                                "perf": engine.performance(state),
                                "cost": cost,
                                "prompt_tokens": sum(t.prompt_tokens for t in state.turns),
                                "completion_tokens": sum(t.completion_tokens for t in state.turns),
                                **{f: sum(getattr(t, f) for t in state.turns) for f in SCORING_FIELDS},
                                "turns": len(state.turns),
                                "answer": state.answer,
                            }
                        )
                    )
                # One write of whole lines per chunk: a kill leaves at most a partial last line,
                # which reading ignores and the next run redoes.
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                bar.set_postfix_str("", refresh=False)
                bar.update(len(chunk))
    finally:
        env.close()
    return out_path


def _show_turns(bar: tqdm, size: int):
    """A chunk takes minutes with real models: show its lockstep turns on the bar as they go."""
    return lambda turn, playing: bar.set_postfix_str(f"turn {turn + 1} of the chunk: {playing}/{size} episodes playing")


def table_header(env, env_id: str, seed: int) -> dict[str, Any]:
    """What decides a row besides its question: protocol, models (weights id and price), seed."""
    pool = env.pool
    setting = {
        "protocol": {"name": env.protocol.name, "config": env.protocol.config},
        "models": {
            name: {"model_id": pool.backend(name).model_id, "price": dataclasses.asdict(pool.specs[name].price)}
            for name in env.model_names
        },
        "seed": int(seed),
    }
    text = json.dumps(setting, sort_keys=True, default=str)
    return {"format": TABLE_FORMAT, "env_id": env_id, "setting": json.loads(text),
            "setting_digest": json_digest(setting)}


def _resume(path: Path, header: dict[str, Any], digests: dict[str, str],
            roles: Sequence[str]) -> set[tuple[str, tuple[str, ...]]]:
    """The (question, assignment) pairs already in ``path``, after checking they were built from
    the same setting and questions; a new or empty file gets the header."""
    if path.exists():
        drop_partial_last_line(path)
    found, rows = _read(path) if path.exists() else (None, [])
    if found is None and not rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header) + "\n", encoding="utf-8")
        return set()
    if found is None:
        raise ValueError(f"{path} has rows but no header line (an older build), so what they were built "
                         "from cannot be checked; build into a new file.")
    if found["setting_digest"] != header["setting_digest"]:
        differ = sorted(k for k in header["setting"] if found["setting"].get(k) != header["setting"][k])
        raise ValueError(f"{path} holds rows of another setting (its {', '.join(differ) or 'format'} "
                         "differ from this run's); build into a new file.")
    for row in rows:
        question = str(row["question_id"])
        if question in digests and row.get("question_digest") != digests[question]:
            raise ValueError(f"{path}: question {question!r} has other content in this run's data than "
                             "when its rows were built; build into a new file.")
    return {(str(row["question_id"]), tuple(row["assignment"][r] for r in roles)) for row in rows}


def _read(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(header or None, rows) of an action-table file."""
    if not path.exists():
        return None, []
    header, rows = None, []
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # an interrupted final write, without its newline
                break
            raise DataFormatError(path, f"not valid JSON ({exc.msg})", line=number) from None
        if not isinstance(row, dict):
            raise DataFormatError(path, "expected a JSON object", line=number)
        if "format" in row:
            if header is not None or rows:
                raise DataFormatError(path, "a header line after the first record", line=number, field="format")
            if row["format"] != TABLE_FORMAT or "setting_digest" not in row:
                raise DataFormatError(path, f"unknown table format {row['format']!r}", line=number, field="format")
            header = row
            continue
        missing = [f for f in ROW_FIELDS if f not in row]
        if missing:
            raise DataFormatError(path, "missing field", line=number, field=missing[0])
        roles = tuple(rows[0]["assignment"]) if rows else tuple(row["assignment"])
        if not roles or set(row["assignment"]) != set(roles):  # every row names the first row's roles
            raise DataFormatError(path, f"assignment must map {list(roles)} to models", line=number, field="assignment")
        rows.append(row)
    return header, rows


@dataclass
class ActionTable:
    """Per-question, per-assignment outcomes read from an exhaustive-builder file."""

    rows: list[dict[str, Any]]
    #: What the rows were built from (protocol, models, seed); None for a file of an older build.
    header: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ActionTable":
        header, rows = _read(Path(path))
        if not rows:
            raise DataFormatError(path, "the action-level table is empty or missing")
        return cls(rows, header)

    def check_built_for(self, env, models: Sequence[str] | None = None) -> None:
        """Raise ValueError when the rows came from another protocol setting, other weights or
        prices of ``models`` (default: the env's), or other content of a question than ``env``
        holds. The sampling temperature may differ: the table's episodes are the reference a
        sampling env is trained against. A table of an older build (no header) is not checked."""
        if self.header is None:
            return
        base = env.unwrapped
        here = table_header(base, "", self.header["setting"]["seed"])["setting"]
        built = self.header["setting"]

        def protocol(setting):
            config = {k: v for k, v in setting["protocol"]["config"].items() if k != "temperature"}
            return setting["protocol"]["name"], config

        if protocol(built) != protocol(here):
            raise ValueError(f"ActionTable built with protocol {protocol(built)}, but the env plays {protocol(here)}.")
        for name in models if models is not None else base.model_names:
            if name in built["models"] and built["models"][name] != here["models"].get(name, built["models"][name]):
                raise ValueError(f"ActionTable built with model {name!r} as {built['models'][name]}, "
                                 f"but the env has {here['models'][name]}.")
        digests = {str(e.id): content_digest(e) for e in base.examples}
        for row in self.rows:
            question = str(row["question_id"])
            if question in digests and row.get("question_digest", digests[question]) != digests[question]:
                raise ValueError(f"ActionTable question {question!r} has other content in the env's data "
                                 "than when the table was built.")

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles each row's assignment names a model for, in the order the rows list them."""
        return tuple(self.rows[0]["assignment"]) if self.rows else ()

    @property
    def models(self) -> list[str]:
        return sorted({m for row in self.rows for m in row["assignment"].values()})

    @property
    def question_ids(self) -> list[str]:
        return list(dict.fromkeys(row["question_id"] for row in self.rows))

    def fit_cost_normalizer(self, question_ids: Iterable[str] | None = None) -> CostNormalizer:
        """Min-max cost bounds fitted on (a split of) the table, to be frozen."""
        keep = None if question_ids is None else set(question_ids)
        return CostNormalizer.fit(r["cost"] for r in self.rows if keep is None or r["question_id"] in keep)

    def rewards(self, lam: float, normalizer: CostNormalizer) -> dict[str, dict[tuple[str, ...], float]]:
        """question id -> assignment (models in ``roles`` order) -> Perf − λ·normalized cost."""
        table: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        for row in self.rows:
            key = tuple(row["assignment"][r] for r in self.roles)
            table[row["question_id"]][key] = routing_reward(row["perf"], normalizer(row["cost"]), lam)
        return dict(table)

    def mean_by_assignment(self) -> dict[tuple[str, ...], dict[str, float]]:
        """Mean perf, cost and tokens of each assignment over all questions."""
        groups: dict[tuple[str, ...], list[dict]] = defaultdict(list)
        for row in self.rows:
            groups[tuple(row["assignment"][r] for r in self.roles)].append(row)
        return {
            key: {
                "perf": float(np.mean([r["perf"] for r in rows])),
                "cost": float(np.mean([r["cost"] for r in rows])),
                "tokens": float(np.mean([r["prompt_tokens"] + r["completion_tokens"] for r in rows])),
                "episodes": len(rows),
            }
            for key, rows in sorted(groups.items())
        }

    def best_rows(self) -> list[dict[str, Any]]:
        """Per question, the row of the best perf, the cheapest among ties (the quality Oracle)."""
        best: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            kept = best.get(row["question_id"])
            if kept is None or (row["perf"], -row["cost"]) > (kept["perf"], -kept["cost"]):
                best[row["question_id"]] = row
        return list(best.values())

    def oracle(self, lam: float = 0.0, normalizer: CostNormalizer | None = None) -> dict[str, float]:
        """Hindsight upper bound: mean over questions of the best assignment's perf and reward."""
        normalizer = normalizer or self.fit_cost_normalizer()
        rewards = self.rewards(lam, normalizer)
        perf = {(r["question_id"], tuple(r["assignment"][x] for x in self.roles)): r["perf"] for r in self.rows}
        best = {q: max(options, key=lambda k: (options[k], k)) for q, options in rewards.items()}
        return {
            "perf": float(np.mean([perf[(q, k)] for q, k in best.items()])),
            "reward": float(np.mean([rewards[q][k] for q, k in best.items()])),
            "questions": len(best),
        }

"""The exhaustive hop tree of the multi-hop env: every model sequence up to depth 2, per query.

For each query the tree holds the root (the question alone), the M first hops and the M²
second hops. Each node stores what the env would show and pay there: the context embedding,
the accumulated cost and tokens, and the task score of its answer if the episode stopped
there. ``MultiHopTableEnv`` replays it exactly.

Nodes are built level by level across a chunk of queries through the live env's own episode
engine and protocol (every hop of a level in one batch, so each model sees large batches) and
its own context encoder, so the tree cannot drift from the env.
The builder is resumable twice over: queries already in the file are skipped, and every
model call goes through the response cache.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import itertools
import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from routing_gym.records import content_digest, drop_partial_last_line, json_digest
from routing_gym.errors import DataFormatError

TREE_FORMAT = "routing_gym.hop_tree/1"
#: Env config keys that decide the tree's content; the header records them.
CONTENT_KEYS = ("models", "tasks", "split", "splits", "fractions", "limit", "temperature", "max_new_tokens",
                "response_chars", "math_source", "mmlu_subjects", "mbpp_variant", "sandbox")


def encode_vector(vector: np.ndarray) -> str:
    """A float32 vector as base64 text (exact, compact)."""
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """The float32 vector of ``encode_vector``."""
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()


def tree_header(env, depth: int) -> dict[str, Any]:
    """What identifies a tree: the content config, each model's weights id and price, the depth
    and the frozen cost bounds (each row adds its query's content digest)."""
    content = {key: env.config[key] for key in CONTENT_KEYS}
    pool = env.pool
    content["model_ids"] = {name: pool.backend(name).model_id for name in env.model_names}
    content["prices"] = {name: dataclasses.asdict(pool.specs[name].price) for name in env.model_names}
    digest = json_digest(content)
    return {"format": TREE_FORMAT, "depth": depth, "config": content, "config_digest": digest,
            "cost_bounds": env.cost_normalizer.to_dict()}


def build_hop_tree(
    out_path: str | os.PathLike,
    config: dict[str, Any] | None = None,
    env_id: str = "LLMRouting-MultiHop-v0",
    depth: int = 2,
    queries_per_batch: int = 8,
    progress: bool = True,
) -> Path:
    """Write every hop sequence of length 1..``depth`` for every query of the env's split.

    ``config`` is the env config (models, tasks, split, limit, cache...); decoding must be
    greedy so that one tree stands for every seed. A file written for another config is
    refused; queries already in it are skipped, so an interrupted run resumes.
    """
    import gymnasium as gym

    import routing_gym  # noqa: F401  (registers the IDs)

    if depth not in (1, 2):
        raise ValueError(f"depth must be 1 or 2, got {depth!r}.")
    env = gym.make(env_id, config={**dict(config or {}), "horizon": depth}).unwrapped
    if env.config["temperature"] != 0:
        raise ValueError("build_hop_tree needs greedy decoding (temperature 0): a sampled tree holds one seed only.")
    out_path = Path(out_path)
    header = tree_header(env, depth)
    try:
        examples = env.examples
        done = _resume(out_path, header, {str(example.id): content_digest(example) for _, example in examples})
        todo = [i for i, (_, example) in enumerate(examples) if str(example.id) not in done]
        bar = tqdm(total=len(todo), desc="hop tree", disable=not progress)
        for start in range(0, len(todo), queries_per_batch):
            rows = _build_chunk(env, todo[start : start + queries_per_batch], depth)
            with open(out_path, "a", encoding="utf-8") as handle:
                # whole lines per chunk: a kill leaves at most a partial last line, dropped on resume
                handle.write("".join(json.dumps(row) + "\n" for row in rows))
            bar.update(len(rows))
        bar.close()
    finally:
        env.close()
    return out_path


def _resume(path: Path, header: dict[str, Any], digests: dict[str, str]) -> set[str]:
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header) + "\n", encoding="utf-8")
        return set()
    drop_partial_last_line(path)
    found = HopTree.load(path)
    if found.header["config_digest"] != header["config_digest"] or found.depth != header["depth"]:
        raise ValueError(f"{path} holds a tree of another config or depth; choose a new file.")
    for question, row in found.queries.items():
        if question in digests and row.get("question_digest") != digests[question]:
            raise ValueError(f"{path}: query {question!r} has other content in this run's data than when "
                             "its row was built; choose a new file.")
    return set(found.queries)


def _node(path: tuple[int, ...], context: np.ndarray, state, score: dict[str, Any]) -> dict[str, Any]:
    """What the env shows and pays at ``state`` (reached by ``path``), and its stop score."""
    return {
        "path": list(path),
        "context": encode_vector(context),
        "cost": float(sum(turn.cost for turn in state.turns)),
        "prompt_tokens": int(sum(turn.prompt_tokens for turn in state.turns)),
        "completion_tokens": int(sum(turn.completion_tokens for turn in state.turns)),
        "score": score["value"],
        "answer": score["answer"],
        "details": score["details"],
    }


def _fork(state):
    """An independent copy of an episode state that shares its (read-only) question."""
    return copy.deepcopy(state, memo={id(state.example): state.example})


def _build_chunk(env, indices: list[int], depth: int) -> list[dict[str, Any]]:
    """The tree rows of the queries ``indices``, level by level: every level's hops of every
    query run through the env's episode engine as one batch, and their contexts encode as one."""
    engine, protocol = env.engine, env.protocol
    roots = [engine.start(index) for index in indices]
    rows: dict[int, dict[str, Any]] = {}
    for index, state, context in zip(indices, roots, env.encode_contexts(roots)):
        task, example = env.examples[index]
        rows[index] = {"question_id": str(example.id), "question_digest": content_digest(example), "task": task,
                       "index": index, "question_chars": env.question_chars(index),  # the 'length' feature
                       "nodes": [_node((), context, state, protocol.stop_score(state))]}
    frontier = [(index, (), state) for index, state in zip(indices, roots)]
    for _level in range(depth):
        children = [(index, path + (action,), _fork(state))
                    for index, path, state in frontier for action in range(len(env.model_names))]
        # greedy decoding (checked by build_hop_tree): the seed changes no reply
        engine.play_turns([engine.job(child, env.model_names[path[-1]], seed=0) for _, path, child in children])
        for (index, path, child), context in zip(children, env.encode_contexts([c for _, _, c in children])):
            score = child.extra["score"] if child.done else protocol.stop_score(child)
            rows[index]["nodes"].append(_node(path, context, child, score))
        frontier = children
    return [rows[index] for index in indices]


class HopTree:
    """A built hop tree: per query, its nodes keyed by the path of model indices."""

    def __init__(self, header: dict[str, Any], rows: list[dict[str, Any]], path: Path | None = None):
        self.header = header
        self.path = path
        self.queries: dict[str, dict[str, Any]] = {}
        for row in rows:
            nodes = {tuple(node["path"]): node for node in row["nodes"]}
            self.queries[row["question_id"]] = {**row, "nodes": nodes}

    @property
    def depth(self) -> int:
        return int(self.header["depth"])

    @property
    def models(self) -> list[str]:
        return list(self.header["config"]["models"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HopTree":
        """Read a tree file; a malformed line raises DataFormatError naming it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Hop tree {path} does not exist; build it with build_hop_tree.")
        header, rows = None, []
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(path, f"not valid JSON ({exc.msg})", line=line_no) from exc
                if header is None:
                    if data.get("format") != TREE_FORMAT:
                        raise DataFormatError(path, f"not a hop tree (format {data.get('format')!r})", line=line_no,
                                              field="format")
                    header = data
                    continue
                for field in ("question_id", "task", "index", "nodes"):
                    if field not in data:
                        raise DataFormatError(path, f"missing required field {field!r}", line=line_no, field=field)
                rows.append(data)
        if header is None:
            raise DataFormatError(path, "empty file: no header line")
        return cls(header, rows, path)

    def node(self, question_id: str, path: Iterable[int]) -> dict[str, Any]:
        """The node of ``path`` (model indices) under a query."""
        return self.queries[question_id]["nodes"][tuple(path)]

    def leaves(self) -> Iterable[tuple[str, tuple[int, ...]]]:
        """Every (query, path) of length 1..depth: the episodes the tree can replay."""
        n = len(self.models)
        for question_id in self.queries:
            for length in range(1, self.depth + 1):
                for path in itertools.product(range(n), repeat=length):
                    yield question_id, path

    def oracle(self, lam: float, normalizer) -> dict[str, float]:
        """Mean over queries of the best reward over all stopping paths, with its score and cost."""
        from routing_gym.cost import routing_reward

        best: dict[str, tuple[float, float, float]] = {}
        for question_id, path in self.leaves():
            node = self.node(question_id, path)
            reward = routing_reward(node["score"], normalizer(node["cost"]), lam)
            if question_id not in best or reward > best[question_id][0]:
                best[question_id] = (reward, node["score"], node["cost"])
        values = np.array(list(best.values()))
        return {"reward": float(values[:, 0].mean()), "perf": float(values[:, 1].mean()),
                "cost": float(values[:, 2].mean())}

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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

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
    def load(cls, path: str | os.PathLike, torn_tail_ok: bool = False) -> "HopTree":
        """Read a tree file; a malformed line raises DataFormatError naming it.

        ``torn_tail_ok`` skips an unfinished last line (no newline yet): a tree that a builder
        is still appending to reads as the queries it has finished.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Hop tree {path} does not exist; build it with build_hop_tree.")
        header, rows = None, []
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if torn_tail_ok and not line.endswith("\n"):
                    break  # only the last line can lack its newline
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

    def rows(self) -> list[dict[str, Any]]:
        """The tree's rows as a file holds them (nodes as a list)."""
        return [{**row, "nodes": list(row["nodes"].values())} for row in self.queries.values()]

    def write(self, path: str | os.PathLike) -> Path:
        """Write the tree as a file ``HopTree.load`` (and ``MultiHopTableEnv``) reads; written
        whole, then renamed, so a stopped run never leaves half a tree."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(self.header) + "\n")
            handle.writelines(json.dumps(row) + "\n" for row in self.rows())
        partial.replace(path)
        self.path = path
        return path

    @classmethod
    def merge(cls, trees: Sequence[HopTree]) -> HopTree:
        """One tree of the queries of ``trees``: trees of other tasks, splits or limits of the same
        models, depth, cost bounds and remaining config (``merge_mismatch`` names what differs).

        The merged header lists the tasks in order of first appearance, the split (or splits)
        and limit (or limits) of its parts, each part's file, digest and size (``merged_from``),
        and the digest of all that."""
        trees = list(trees)
        if not trees:
            raise ValueError("HopTree.merge needs at least one tree.")
        first = trees[0]
        for other in trees[1:]:
            problem = merge_mismatch(first, other)
            if problem:
                raise ValueError(f"cannot merge hop trees {_name(first)} and {_name(other)}: {problem}.")
        seen: dict[str, HopTree] = {}
        for tree in trees:
            for question in tree.queries:
                if question in seen:
                    raise ValueError(f"cannot merge hop trees {_name(seen[question])} and {_name(tree)}: "
                                     f"both hold query {question!r}.")
                seen[question] = tree
        config = {key: value for key, value in first.header["config"].items() if key not in MERGE_FREE_KEYS}
        config["tasks"] = list(dict.fromkeys(task for tree in trees for task in tree.header["config"]["tasks"]))
        for key in ("split", "limit"):
            values = list(dict.fromkeys(json.dumps(tree.header["config"].get(key)) for tree in trees))
            config[key] = json.loads(values[0]) if len(values) == 1 else [json.loads(v) for v in values]
        config["merged_from"] = [{"file": _name(tree), "config_digest": tree.header.get("config_digest"),
                                  "tasks": tree.header["config"]["tasks"], "split": tree.header["config"].get("split"),
                                  "queries": len(tree.queries)} for tree in trees]
        header = {"format": TREE_FORMAT, "depth": first.depth, "config": config, "config_digest": json_digest(config),
                  "cost_bounds": first.header["cost_bounds"]}
        return cls(header, [row for tree in trees for row in tree.rows()])


#: The task options a tree header records (the env's other task option, humaneval_path, is not).
TASK_OPTION_KEYS = ("math_source", "mmlu_subjects", "mbpp_variant")
#: Config keys in which trees may differ and still be merged (and scored on one cost scale).
MERGE_FREE_KEYS = ("tasks", "split", "splits", "limit")


def _name(tree: HopTree) -> str:
    return str(tree.path) if tree.path is not None else "(a tree in memory)"


def merge_mismatch(a: HopTree, b: HopTree) -> str | None:
    """What keeps two trees apart (models, depth, cost bounds, another config key), or None."""
    if a.models != b.models:
        same = sorted(a.models) == sorted(b.models)
        return (f"the models are in another order ({a.models} against {b.models}): a path indexes them by position"
                if same else f"different models ({a.models} against {b.models})")
    if a.depth != b.depth:
        return f"different depths ({a.depth} against {b.depth})"
    if a.header.get("cost_bounds") != b.header.get("cost_bounds"):
        return (f"different cost bounds ({a.header.get('cost_bounds')} against {b.header.get('cost_bounds')}): "
                "their costs are on other scales")
    config_a, config_b = a.header["config"], b.header["config"]
    for key in sorted((set(config_a) | set(config_b)) - set(MERGE_FREE_KEYS)):
        if config_a.get(key) != config_b.get(key):
            return f"different config {key!r} ({config_a.get(key)!r} against {config_b.get(key)!r})"
    return None


def expected_question_ids(config: dict[str, Any], task: str, data_dir: str | None = None) -> dict[str, str]:
    """The queries a tree of ``config`` holds for ``task`` once complete, with their content
    digests: the task's split loaded with the tree's fractions, limit and task options."""
    from routing_gym.tasks import LoadOptions, get_task

    extra = {key: config[key] for key in TASK_OPTION_KEYS if key in config}
    options = LoadOptions(split=(config.get("splits") or {}).get(task, config["split"]), data_dir=data_dir,
                          fractions=config["fractions"], limit=config["limit"], extra=extra)
    return {str(example.id): content_digest(example) for example in get_task(task).load(options)}


@dataclasses.dataclass
class TreeFolder:
    """The complete tasks of a folder of per-(task, split) trees, merged split by split."""

    trees: dict[str, HopTree]  # split -> the merged tree of the complete tasks
    tasks: list[str]  # tasks whose every split is complete
    skipped: dict[str, str]  # task -> why it is left out
    files: dict[tuple[str, str], Path]  # (task, split) -> the file read


def load_tree_folder(folder: str | os.PathLike, splits: Sequence[str] = ("train", "test"),
                     data_dir: str | None = None, pattern: str = "tree-*.jsonl") -> TreeFolder:
    """Read every tree file of ``folder`` (one task and split per file, as
    ``scripts/build_hop_trees.py`` writes them) and merge the complete tasks split by split.

    A task is complete when each of ``splits`` has its tree and every query that tree's config
    asks for (``expected_question_ids``) is present with the same content; tasks that are not
    are named in ``skipped``. Files that cannot be merged (other models, depth, cost bounds or
    config apart from tasks, split and limit), two files for one task and split, or a row whose
    question changed since it was built raise ValueError naming the files. Trees still being
    built are read up to their last finished line.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"tree folder {folder} does not exist.")
    by_key: dict[tuple[str, str], HopTree] = {}
    for path in sorted(folder.glob(pattern)):
        tree = HopTree.load(path, torn_tail_ok=True)
        tasks = tree.header["config"].get("tasks", [])
        if len(tasks) != 1:
            raise ValueError(f"{path} holds tasks {tasks}: a tree folder holds one task per file.")
        key = (tasks[0], tree.header["config"].get("split"))  # the side it was built for
        if key in by_key:
            raise ValueError(f"{by_key[key].path} and {path} are both trees of {key[0]} / {key[1]}; keep one.")
        if by_key:
            reference = next(iter(by_key.values()))
            problem = merge_mismatch(reference, tree)
            if problem:
                raise ValueError(f"cannot merge hop trees {reference.path} and {path}: {problem}.")
        by_key[key] = tree
    if not by_key:
        raise ValueError(f"{folder} has no hop tree files ({pattern}).")
    tasks = list(dict.fromkeys(task for task, _ in by_key))
    complete, skipped = [], {}
    for task in tasks:
        reasons = []
        for split in splits:
            tree = by_key.get((task, split))
            if tree is None:
                reasons.append(f"no {split} tree")
                continue
            expected = expected_question_ids(tree.header["config"], task, data_dir)
            for question, digest in expected.items():
                row = tree.queries.get(question)
                if row is not None and row.get("question_digest", digest) != digest:
                    raise ValueError(f"{tree.path}: query {question!r} has other content in the data than when "
                                     "its row was built; rebuild that tree.")
            done = sum(question in tree.queries for question in expected)
            if not expected or done < len(expected):
                reasons.append(f"{split} {done}/{len(expected)} queries")
        if reasons:
            skipped[task] = ", ".join(reasons)
        else:
            complete.append(task)
    merged = {split: HopTree.merge([by_key[(task, split)] for task in complete]) for split in splits} if complete else {}
    return TreeFolder(merged, complete, skipped, {key: tree.path for key, tree in by_key.items()})

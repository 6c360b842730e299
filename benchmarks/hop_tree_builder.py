"""The hop-tree builder through the episode engine against the builder it replaced, in one run.

The replaced builder drove the multi-hop env by hand (its ``begin_step``/``complete_step`` and
a write of the env's private episode per node); the new one plays every level of hops through
the env's ``EpisodeEngine`` and encodes each level's contexts in one batch. The old builder
stays selectable here only, as a checkout of the last commit that had it:

    git worktree add /tmp/old_routing_gym 4e47890
    python benchmarks/hop_tree_builder.py --baseline /tmp/old_routing_gym [--real] [--repeats 3]

Each build runs in its own process with ``PYTHONPATH`` set to one tree, so each imports its
own ``routing_gym``; old and new alternate on the same queries. A build is timed twice:
"cold" (fresh response, embedding and verdict caches: generation included) and "warm" (the
same build again on the caches the cold one filled: only the builder's own work, scoring and
cache reads). The trees the two builders write are compared node for node.

Setups: "tiny" (the two tiny random models on the test fixtures, 8 new tokens) and, with
``--real``, SmolLM2-135M on the real GSM8K and ARC questions (32 new tokens). The code tasks are
left out: their sandbox runs are the same work in both builders and would only add noise.
The cold figures also carry any change made to the model backends since the baseline commit;
the warm ones do not call a model.

The last line of the output is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
# t quantiles (two-sided 95%) for the mean of n paired log-ratios, n = 2..10
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def setup_config(name: str, cache: Path) -> dict:
    """The env config of a setup, with its response cache in ``cache``."""
    common = {"cache_path": str(cache / "responses.sqlite"), "temperature": 0.0, "horizon": 2}
    if name == "tiny":
        return {**common, "models": ["tiny-llama", "tiny-qwen2"], "data_dir": str(FIXTURES),
                "fractions": {"test": 1.0}, "splits": {"mmlu": "train"},
                "tasks": ["gsm8k", "math", "arc_challenge", "mmlu"], "max_new_tokens": 8}
    return {**common, "models": ["smollm2-135m"], "tasks": ["gsm8k", "arc_challenge"], "limit": 4,
            "max_new_tokens": 32}


def worker(setup: str, workdir: Path) -> dict:
    """Build the setup's tree cold, then warm, with whichever routing_gym is on the path."""
    os.environ["ROUTING_GYM_CACHE"] = str(workdir / "cache")  # fresh embeddings for the cold build
    from routing_gym.hop_tree import build_hop_tree

    config = setup_config(setup, workdir)
    times = {}
    for phase in ("cold", "warm"):
        start = time.perf_counter()
        build_hop_tree(workdir / f"{phase}.jsonl", config, env_id="LLMRouting-MultiHop-v0", depth=2,
                       queries_per_batch=8, progress=False)
        times[phase] = time.perf_counter() - start
    return times


def run_worker(tree: Path, setup: str, workdir: Path) -> dict:
    """One build pair in a fresh process importing routing_gym from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"from hop_tree_builder import worker; from pathlib import Path; "
            f"print(json.dumps(worker({setup!r}, Path({str(workdir)!r}))))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tree)
    if done.returncode != 0:
        raise RuntimeError(f"the {tree} build failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tree_nodes(path: Path) -> dict:
    """(question id, path) -> node of a tree file."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {(row["question_id"], tuple(node["path"])): node for row in map(json.loads, lines) for node in row["nodes"]}


def compare_trees(old: Path, new: Path) -> dict:
    """How many nodes agree in score, answer, tokens and cost, and the largest context gap."""
    a, b = tree_nodes(old), tree_nodes(new)
    same = 0
    gap = 0.0
    for key in a.keys() & b.keys():
        x, y = a[key], b[key]
        if all(x[f] == y[f] for f in ("score", "answer", "prompt_tokens", "completion_tokens")) and math.isclose(
                x["cost"], y["cost"], rel_tol=1e-12, abs_tol=1e-15):
            same += 1
        cx, cy = (np.frombuffer(base64.b64decode(n["context"]), dtype=np.float32) for n in (x, y))
        gap = max(gap, float(np.abs(cx - cy).max()))
    return {"nodes_old": len(a), "nodes_new": len(b), "nodes_equal": same, "max_context_gap": gap}


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean of old/new time ratios and its 95% t-interval (NaN bounds for n = 1)."""
    logs = np.log(ratios)
    mean = float(logs.mean())
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = T95[len(logs) - 1] * float(logs.std(ddof=1)) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def main(argv: list[str] | None = None) -> dict:
    """Measure, print a table, and print the JSON headline last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the old builder (commit 4e47890)")
    parser.add_argument("--repeats", type=int, default=3, help="old/new build pairs per setup")
    parser.add_argument("--real", action="store_true", help="also SmolLM2-135M on real questions")
    parser.add_argument("--real-repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if not (args.baseline / "routing_gym" / "hop_tree.py").is_file():
        parser.error(f"--baseline {args.baseline} is not a routing_gym checkout")
    setups = [("tiny", args.repeats)] + ([("real", args.real_repeats)] if args.real else [])
    headline: dict = {}
    print("| setup | phase | n | old s (mean) | new s (mean) | old/new (95% CI) |\n|---|---|---:|---:|---:|---|")
    for setup, repeats in setups:
        times = {"old": [], "new": []}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(repeats):
                for name, tree in (("old", args.baseline), ("new", ROOT)) if r % 2 == 0 else (("new", ROOT), ("old", args.baseline)):
                    workdir = Path(tmp) / f"{name}{r}"
                    workdir.mkdir()
                    times[name].append(run_worker(tree, setup, workdir))
            agreement = compare_trees(Path(tmp) / "old0" / "cold.jsonl", Path(tmp) / "new0" / "cold.jsonl")
        for phase in ("cold", "warm"):
            old = [t[phase] for t in times["old"]]
            new = [t[phase] for t in times["new"]]
            mean, low, high = ratio_interval([o / n for o, n in zip(old, new)])
            interval = "n/a (n=1)" if math.isnan(low) else f"{low:.2f}-{high:.2f}"
            print(f"| {setup} | {phase} | {repeats} | {np.mean(old):.2f} | {np.mean(new):.2f} | "
                  f"{mean:.2f}x ({interval}) |")
            headline[f"{setup}_{phase}_ratio"] = round(mean, 3)
            headline[f"{setup}_{phase}_ratio_ci"] = [round(low, 3), round(high, 3)]
            headline[f"{setup}_{phase}_old_s"] = round(float(np.mean(old)), 3)
            headline[f"{setup}_{phase}_new_s"] = round(float(np.mean(new)), 3)
        headline[f"{setup}_n"] = repeats
        headline[f"{setup}_trees"] = agreement
        print(f"| {setup} | trees | | {agreement['nodes_old']} nodes | {agreement['nodes_new']} nodes | "
              f"{agreement['nodes_equal']} equal, context gap {agreement['max_context_gap']:.1e} |")
    print("\nold/new > 1: the engine builder is faster; the interval is over paired repeats.")
    print(json.dumps(headline))
    return headline


if __name__ == "__main__":
    main()

"""Where a live episode's time goes, and what the faster paths give: old against new in one process.

Three measurements, each run twice in this process on the same questions, with the response
cache off and the same loaded weights, first with the code paths from before the profile
("old": transformers' lockstep ``generate``, no prefix sharing for LoRA rows, REINFORCE over
the full sequence), then with the new ones ("new": finished rows leave the batch, rows whose
LoRA is on the last layer share prefixes, REINFORCE runs only the completions with autograd,
through the last layer alone from the hidden states kept at generation, with no prefill):

- the exhaustive HotpotQA builder on the Qwen pair and on the default pool (episodes/hour);
- one HAPS joint update at batch 4 on the Qwen pair (episodes, then the REINFORCE update);
- ``--first-use``: assembling and loading a Qwen model into an empty cache, old code (from a
  checkout beside this one, ``--old-tree``) against new, each in a fresh process.
- ``--llama-cpp``: the torch path (today's defaults, fp32) against llama.cpp on the same GGUF
  files (the ``<model>-llamacpp`` pool entries) for the black-box calls: the HotpotQA builder on
  the pair (``--questions``) and the multi-hop hop-tree builder on ``--hop-queries`` queries per
  task (GSM8K and ARC-Challenge, ``--hop-max-new-tokens``). The two paths are different models,
  so their answers may differ: the paired score difference is printed with its 95% interval.

Per model it prints prefill tokens and time, decode steps, rows x steps computed and useful
(up to each row's own stop), scoring passes; then retrieval and embedding time and the rest
(Python, the protocol, tokenizing). The new path's greedy answers must equal the old path's.
The last line is one JSON object.

    python benchmarks/episode_throughput.py --questions 2
    python benchmarks/episode_throughput.py --questions 2 --skip-default-pool --haps-batch 4
    git worktree add /tmp/old_tree <commit before the profile>
    python benchmarks/episode_throughput.py --first-use qwen2.5-coder-0.5b --old-tree /tmp/old_tree --skip-builder --skip-haps
    python benchmarks/episode_throughput.py --llama-cpp --questions 1 --hop-queries 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

QWEN_PAIR = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
#: Backend options of each path (same weights, same dtype, same model ids).
PATHS = {
    "old": {"decode": "lockstep", "lora_prefix_sharing": False, "tail_logprobs": False, "tail_from_generation": False},
    "new": {},
}


def specs(models: list[str], path: str, dtype: str) -> list[dict]:
    """The models as spec dicts carrying the path's backend options and a pinned dtype."""
    from routing_gym.llm.spec import resolve_spec

    out = []
    for name in models:
        spec = resolve_spec(name).to_dict()
        spec["options"] = {**spec.get("options", {}), **PATHS[path], "dtype": dtype}
        out.append(spec)
    return out


class Timers:
    """Wall time spent in retrieval and in sentence embedding, by wrapping their entry points."""

    def __init__(self):
        from routing_gym.retrieval import encoder, retriever

        self.seconds = {"embedding": 0.0, "retrieval": 0.0}
        self._patches = [(encoder.SentenceEncoder, "encode", "embedding"),
                         (retriever.ParagraphIndex, "search_batch", "retrieval"),
                         (retriever.ParagraphIndex, "from_paragraphs", "retrieval")]
        self._originals = []

    def __enter__(self):
        for owner, attribute, label in self._patches:
            original = owner.__dict__[attribute]
            self._originals.append((owner, attribute, original))
            function = original.__func__ if isinstance(original, classmethod) else original

            def timed(*args, _function=function, _label=label, **kwargs):
                start = time.perf_counter()
                try:
                    return _function(*args, **kwargs)
                finally:
                    self.seconds[_label] += time.perf_counter() - start

            setattr(owner, attribute, classmethod(timed) if isinstance(original, classmethod) else timed)
        return self

    def __exit__(self, *exc):
        for owner, attribute, original in self._originals:
            setattr(owner, attribute, original)
        # Retrieval includes embedding its queries; count that time once, as embedding.
        return False


def profiles() -> dict[str, dict]:
    """The backend's per-model counters as plain dicts."""
    from routing_gym.llm.backends import transformers_backend

    return {name: dataclasses.asdict(p) for name, p in transformers_backend.PROFILES.items()}


def llama_cpp_specs(models: list[str]) -> list[dict]:
    """The models' llama.cpp twins (``<model>-llamacpp``) as spec dicts."""
    from routing_gym.llm.spec import LLAMA_CPP_SUFFIX, resolve_spec

    return [resolve_spec(name + LLAMA_CPP_SUFFIX).to_dict() for name in models]


def path_specs(models: list[str], path: str, dtype: str) -> list[dict]:
    """Spec dicts of ``path``: "old"/"new" (torch, see PATHS) or "llama.cpp"."""
    return llama_cpp_specs(models) if path == "llama.cpp" else specs(models, path, dtype)


def run_builder(models: list[str], path: str, questions: int, split: str, dtype: str, out_dir: Path) -> dict:
    """One exhaustive HotpotQA build on ``questions`` questions; its time, profile and rows."""
    from routing_gym.action_table import build_action_table
    from routing_gym.llm.backends import transformers_backend

    config = {"models": path_specs(models, path, dtype), "split": split, "limit": questions, "shuffle": False,
              "cache_mode": "off", "protocol": {"encoder_cache": None}}
    out = out_dir / f"table-{path}-{len(models)}.jsonl"
    transformers_backend.reset_profiles()
    with Timers() as timers:
        start = time.perf_counter()
        build_action_table("LLMRouting-HotpotQA-v0", out, config=config, questions_per_batch=questions,
                           progress=False)
        wall = time.perf_counter() - start
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:] if line.strip()]
    for row in rows:  # a llama.cpp twin plays the same role as its torch model: pair them by base name
        row["assignment"] = {role: base_name(name) for role, name in row["assignment"].items()}
    return {"wall_s": wall, "episodes": len(rows), "timers": dict(timers.seconds), "profile": profiles(),
            "rows": rows}


def base_name(name: str) -> str:
    from routing_gym.llm.spec import LLAMA_CPP_SUFFIX

    return name.removesuffix(LLAMA_CPP_SUFFIX)


HOP_TASKS = ["gsm8k", "arc_challenge"]


def run_hop_tree(models: list[str], path: str, queries: int, max_new_tokens: int, dtype: str, out_dir: Path) -> dict:
    """One depth-2 hop tree on ``queries`` queries per task of HOP_TASKS; its time, profile and nodes."""
    from routing_gym.hop_tree import HopTree, build_hop_tree
    from routing_gym.llm.backends import transformers_backend

    config = {"models": path_specs(models, path, dtype), "tasks": HOP_TASKS, "limit": queries,
              "cache_mode": "off", "temperature": 0.0, "max_new_tokens": max_new_tokens}
    out = out_dir / f"tree-{path.replace('.', '')}.jsonl"
    transformers_backend.reset_profiles()
    with Timers() as timers:
        start = time.perf_counter()
        build_hop_tree(out, config, env_id="LLMRouting-MultiHop-v0", depth=2, queries_per_batch=8, progress=False)
        wall = time.perf_counter() - start
    tree = HopTree.load(out)
    nodes = {(q, p): node for q, row in tree.queries.items() for p, node in row["nodes"].items() if p}
    return {"wall_s": wall, "queries": len(tree.queries), "nodes": nodes, "timers": dict(timers.seconds),
            "profile": profiles()}


def paired(label: str, before: dict, after: dict, key: str) -> dict:
    """The paired difference of ``key`` (after - before) over the items both runs hold, 95% bootstrap interval."""
    from routing_gym.stats import paired_difference_interval

    common = sorted(set(before) & set(after))
    a = [after[k][key] for k in common]
    b = [before[k][key] for k in common]
    same = sum(after[k]["answer"] == before[k]["answer"] for k in common)
    out = {"n": len(common), "same_answers": same, "mean_before": float(np.mean(b)), "mean_after": float(np.mean(a))}
    if len(common) >= 2:
        diff = paired_difference_interval(a, b)
        out.update(diff=diff.estimate, low=diff.low, high=diff.high)
        text = f"{diff.estimate:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]"
    else:
        text = "n < 2, no interval"
    print(f"  {label}: same answers {same}/{len(common)}; mean {out['mean_before']:.3f} (torch) vs "
          f"{out['mean_after']:.3f} (llama.cpp), paired diff {text}, n={len(common)}")
    return out


def compare_llama_cpp(pair: list[str], questions: int, split: str, hop_queries: int, hop_max_new_tokens: int,
                      dtype: str, out_dir: Path) -> dict:
    """Torch (today's defaults) against llama.cpp in one process: the HotpotQA and the hop-tree builder."""
    summary: dict = {}
    if questions:
        runs = {}
        for path in ("new", "llama.cpp"):
            runs[path] = run_builder(pair, path, questions, split, dtype, out_dir)
            print(f"HotpotQA builder, {path} path: {runs[path]['episodes']} episodes in {runs[path]['wall_s']:.1f} s",
                  flush=True)
        model_table(f"Exhaustive HotpotQA builder, {'+'.join(pair)}, {questions} questions x {len(pair) ** 2} "
                    "assignments", runs["new"], runs["llama.cpp"], {"wall": "wall_s"}, labels=("torch", "llama"))
        rate = {p: 3600 * run["episodes"] / run["wall_s"] for p, run in runs.items()}
        print(f"  HotpotQA builder: {rate['new']:.0f} (torch) -> {rate['llama.cpp']:.0f} (llama.cpp) episodes/hour "
              f"({rate['llama.cpp'] / rate['new']:.2f}x)")
        key = lambda r: (r["question_id"], json.dumps(r["assignment"], sort_keys=True))  # noqa: E731
        f1 = paired("HotpotQA F1", {key(r): r for r in runs["new"]["rows"]},
                    {key(r): r for r in runs["llama.cpp"]["rows"]}, "perf")
        summary["hotpotqa_builder"] = {"episodes_per_hour_torch": rate["new"],
                                       "episodes_per_hour_llama_cpp": rate["llama.cpp"],
                                       "ratio": rate["llama.cpp"] / rate["new"], "episodes": runs["new"]["episodes"],
                                       "f1": f1}
    if hop_queries:
        trees = {}
        for path in ("new", "llama.cpp"):
            trees[path] = run_hop_tree(pair, path, hop_queries, hop_max_new_tokens, dtype, out_dir)
            print(f"Hop tree, {path} path: {trees[path]['queries']} queries, {len(trees[path]['nodes'])} hop nodes "
                  f"in {trees[path]['wall_s']:.1f} s", flush=True)
        model_table(f"Hop-tree builder, {'+'.join(pair)}, depth 2, {hop_queries} queries per task of {HOP_TASKS}, "
                    f"{hop_max_new_tokens} new tokens", trees["new"], trees["llama.cpp"], {"wall": "wall_s"},
                    labels=("torch", "llama"))
        ratio = trees["new"]["wall_s"] / trees["llama.cpp"]["wall_s"]
        print(f"  Hop-tree builder: {trees['new']['wall_s']:.1f} s (torch) -> {trees['llama.cpp']['wall_s']:.1f} s "
              f"(llama.cpp) ({ratio:.2f}x)")
        score = paired("hop-node score", trees["new"]["nodes"], trees["llama.cpp"]["nodes"], "score")
        summary["hop_tree_builder"] = {"seconds_torch": trees["new"]["wall_s"],
                                       "seconds_llama_cpp": trees["llama.cpp"]["wall_s"], "ratio": ratio,
                                       "queries": trees["new"]["queries"], "score": score}
    return summary


def run_haps(models: list[str], batch: int, dtype: str, both_rollouts: bool) -> dict:
    """One HAPS joint update at ``batch``: episodes in lockstep, then the REINFORCE update.

    The same episodes are scored and backpropagated by the old and the new path (the update's
    inputs are the recorded token ids, so they need not be played twice); with
    ``both_rollouts`` each path also plays its own episodes, seeded alike.
    """
    import gymnasium as gym
    import torch

    from agents.haps import HAPSAgent, HAPSConfig, haps_env_config
    from routing_gym.llm.backends import transformers_backend

    config = HAPSConfig(episodes_per_update=batch)
    envs = {path: gym.make("LLMRouting-HotpotQA-HAPS-v0", config=haps_env_config(
        config, 0.7, split="train", limit=batch, models=specs(models, path, dtype), cache_mode="off",
        protocol={"encoder_cache": None})) for path in ("old", "new")}
    torch.manual_seed(0)
    agent = HAPSAgent(config)
    agent.adapt_to(envs["new"])
    out: dict = {}
    episodes = None
    for path in (("old", "new") if both_rollouts else ("new",)):
        rollout = agent.batched_env(envs[path], batch)
        transformers_backend.reset_profiles()
        torch.manual_seed(1)
        with Timers() as timers:
            start = time.perf_counter()
            episodes = agent.rollout(rollout, batch)
            out[f"episodes_s_{path}"] = time.perf_counter() - start
        out[f"episodes_profile_{path}"] = {"profile": profiles(), "timers": dict(timers.seconds),
                                           "wall_s": out[f"episodes_s_{path}"]}
        rollout.close()
    advantages = [1.0 - 2.0 * (i % 2) for i in range(len(episodes))]  # fixed, nonzero: every episode backpropagates
    for path in ("old", "new"):
        transformers_backend.reset_profiles()
        optimizer = agent.joint_optimizer()
        start = time.perf_counter()
        agent.update(episodes, advantages, envs[path].unwrapped.engine, optimizer=optimizer)
        out[f"update_s_{path}"] = time.perf_counter() - start
        out[f"update_profile_{path}"] = profiles()
    out["calls"] = sum(len(e.calls) for e in episodes)
    out["prompt_tokens"] = sum(len(c["prompt_ids"]) for e in episodes for c in e.calls)
    out["generated_tokens"] = sum(len(c["completion_ids"]) for e in episodes for c in e.calls)
    for env in envs.values():
        env.close()
    return out


def first_use(model: str, tree: Path) -> dict:
    """Seconds to assemble and load ``model`` into an empty cache with the code in ``tree`` (a fresh process)."""
    # CPU seconds too: on a shared machine the wall time says more about the neighbours.
    script = (
        "import resource, time; start = time.perf_counter()\n"
        "from routing_gym.llm import LLMPool\n"
        f"backend = LLMPool([{model!r}], cache_mode='off').backend({model!r})\n"
        "backend.tokenizer; backend.model\n"
        "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
        "print(time.perf_counter() - start, usage.ru_utime + usage.ru_stime)\n"
    )
    with tempfile.TemporaryDirectory(prefix="first-use-") as cache:
        env = {**os.environ, "ROUTING_GYM_CACHE": cache, "PYTHONPATH": str(tree)}
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tree, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"first use of {model} in {tree} failed:\n{done.stderr[-2000:]}")
        wall, cpu = map(float, done.stdout.strip().splitlines()[-1].split())
        return {"seconds": wall, "cpu_seconds": cpu}


def interval(values) -> tuple[float, float]:
    """Mean and 95% half-width (normal approximation) of paired differences or values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else math.nan, math.nan
    return float(values.mean()), float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


def model_table(title: str, before: dict, after: dict, extra_s: dict, labels: tuple[str, str] = ("old", "new")) -> None:
    """Print the per-model profile of both paths side by side."""
    print(f"\n{title}")
    header = (f"{'model':<30}{'path':<6}{'prefill tok':>12}{'prefill s':>10}{'steps':>7}{'rows*steps':>11}"
              f"{'useful':>8}{'useful %':>9}{'decode s':>9}{'scoring':>8}{'score s':>8}")
    print(header)
    for name in sorted(set(before["profile"]) | set(after["profile"])):
        for label, run in zip(labels, (before, after)):
            p = run["profile"].get(name)
            if p is None:
                continue
            useful = p["row_steps_useful"] / max(1, p["row_steps_computed"])
            print(f"{name:<30}{label:<6}{p['prefill_tokens']:>12}{p['prefill_s']:>10.1f}{p['decode_steps']:>7}"
                  f"{p['row_steps_computed']:>11}{p['row_steps_useful']:>8}{100 * useful:>8.0f}%"
                  f"{p['decode_s']:>9.1f}{p['cap_hits']:>3}/{p['completions']:<3}{p['scoring_passes']:>8}{p['scoring_s']:>8.1f}")
    for label, run in zip(labels, (before, after)):
        model_s = sum(p["prefill_s"] + p["decode_s"] + p["scoring_s"] for p in run["profile"].values())
        timers = run["timers"]
        rest = run[extra_s["wall"]] - model_s - timers["retrieval"]
        print(f"  {label}: wall {run[extra_s['wall']]:.1f} s = models {model_s:.1f} s + retrieval (with its "
              f"embedding) {timers['retrieval']:.1f} s [embedding {timers['embedding']:.1f} s] + the rest "
              f"(Python, protocol, tokenizing, backward) {rest:.1f} s")


def compare_builds(label: str, before: dict, after: dict) -> dict:
    """Episodes/hour of both paths, answer equality and the paired F1 difference."""
    key = lambda r: (r["question_id"], json.dumps(r["assignment"], sort_keys=True))  # noqa: E731
    old_rows, new_rows = {key(r): r for r in before["rows"]}, {key(r): r for r in after["rows"]}
    common = sorted(set(old_rows) & set(new_rows))
    same = sum(old_rows[k]["answer"] == new_rows[k]["answer"] for k in common)
    diff, half = interval([new_rows[k]["perf"] - old_rows[k]["perf"] for k in common])
    rate = {p: 3600 * run["episodes"] / run["wall_s"] for p, run in (("old", before), ("new", after))}
    useful = {p: sum(m["row_steps_useful"] for m in run["profile"].values())
              / max(1, sum(m["row_steps_computed"] for m in run["profile"].values()))
              for p, run in (("old", before), ("new", after))}
    print(f"  {label}: {rate['old']:.0f} -> {rate['new']:.0f} episodes/hour ({rate['new'] / rate['old']:.2f}x); "
          f"useful decode {100 * useful['old']:.0f}% -> {100 * useful['new']:.0f}%; same answers {same}/{len(common)}; "
          f"mean F1 {np.mean([old_rows[k]['perf'] for k in common]):.3f} -> "
          f"{np.mean([new_rows[k]['perf'] for k in common]):.3f} (paired diff {diff:+.3f} ± {half:.3f}, n={len(common)})")
    return {"episodes_per_hour_old": rate["old"], "episodes_per_hour_new": rate["new"],
            "ratio": rate["new"] / rate["old"], "useful_old": useful["old"], "useful_new": useful["new"],
            "same_answers": same, "n": len(common), "f1_diff": diff, "f1_diff_95": half}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen measurements, print the tables and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=2, help="HotpotQA questions per builder run")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--dtype", default="float32", help="compute dtype of both paths (the committed tables: float32)")
    parser.add_argument("--skip-builder", action="store_true")
    parser.add_argument("--skip-default-pool", action="store_true")
    parser.add_argument("--skip-haps", action="store_true")
    parser.add_argument("--haps-batch", type=int, default=4)
    parser.add_argument("--haps-both-rollouts", action="store_true",
                        help="each path also plays its own HAPS episodes (else the new path plays them once)")
    parser.add_argument("--pair", default=",".join(QWEN_PAIR),
                        help="the two models of the builder's first pool and of the HAPS step (tiny-llama,tiny-qwen2 to try it)")
    parser.add_argument("--first-use", default=None, metavar="MODEL", help="time assemble + load of MODEL, old and new")
    parser.add_argument("--old-tree", default=None, help="a checkout of the code before the profile (for --first-use)")
    parser.add_argument("--llama-cpp", action="store_true",
                        help="only compare the torch path with llama.cpp (the HotpotQA and the hop-tree builder)")
    parser.add_argument("--hop-queries", type=int, default=1, help="queries per task of the hop-tree comparison (0: skip)")
    parser.add_argument("--hop-max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    if args.questions < 1:
        parser.error(f"--questions must be >= 1, got {args.questions}")
    pair = [m for m in args.pair.split(",") if m]
    summary: dict = {"questions": args.questions, "dtype": args.dtype, "pair": pair}
    with tempfile.TemporaryDirectory(prefix="episode-throughput-") as tmp:
        out_dir = Path(tmp)
        if args.llama_cpp:
            summary["llama_cpp"] = compare_llama_cpp(pair, 0 if args.skip_builder else args.questions, args.split,
                                                     args.hop_queries, args.hop_max_new_tokens, args.dtype, out_dir)
            print(json.dumps(summary, default=float))
            return 0
        if not args.skip_builder:
            pools = [("Qwen pair" if pair == QWEN_PAIR else "pair", pair)]
            if not args.skip_default_pool:
                from routing_gym.llm.spec import DEFAULT_POOL

                pools.append(("default pool", list(DEFAULT_POOL)))
            for label, models in pools:
                runs = {}
                for path in ("old", "new"):  # each path's line as it ends: a long run shows its progress
                    runs[path] = run_builder(models, path, args.questions, args.split, args.dtype, out_dir)
                    print(f"{label}, {path} path: {runs[path]['episodes']} episodes in {runs[path]['wall_s']:.1f} s",
                          flush=True)
                model_table(f"Exhaustive HotpotQA builder, {label}, {args.questions} questions x "
                            f"{len(models) ** 2} assignments", runs["old"], runs["new"], {"wall": "wall_s"})
                summary[f"builder_{label.replace(' ', '_')}"] = compare_builds(label, runs["old"], runs["new"])
        if not args.skip_haps:
            haps = run_haps(pair, args.haps_batch, args.dtype, args.haps_both_rollouts)
            if args.haps_both_rollouts:
                model_table(f"HAPS episodes, {'+'.join(pair)}, batch {args.haps_batch}",
                            haps["episodes_profile_old"], haps["episodes_profile_new"], {"wall": "wall_s"})
            print(f"\nOne HAPS joint update, {'+'.join(pair)}, batch {args.haps_batch}: {haps['calls']} calls, "
                  f"{haps['prompt_tokens']} prompt and {haps['generated_tokens']} generated tokens")
            for path in ("old", "new"):
                p = haps[f"update_profile_{path}"]
                print(f"  REINFORCE update ({path}): {haps[f'update_s_{path}']:.1f} s, of which scoring passes "
                      f"{sum(m['scoring_s'] for m in p.values()):.1f} s over "
                      f"{sum(m['scoring_passes'] for m in p.values())} passes; "
                      f"{sum(m['rows_tail_from_generation'] for m in p.values())} rows from generation's hidden states")
            update_ratio = haps["update_s_old"] / haps["update_s_new"]
            line = f"  REINFORCE update: {haps['update_s_old']:.1f} -> {haps['update_s_new']:.1f} s ({update_ratio:.2f}x)"
            summary["haps"] = {k: v for k, v in haps.items() if not k.endswith(("profile_old", "profile_new"))}
            summary["haps"]["update_ratio"] = update_ratio
            summary["haps"]["rows_tail_from_generation"] = {
                path: sum(m["rows_tail_from_generation"] for m in haps[f"update_profile_{path}"].values())
                for path in ("old", "new")}
            if args.haps_both_rollouts:
                old = haps["episodes_s_old"] + haps["update_s_old"]
                new = haps["episodes_s_new"] + haps["update_s_new"]
                line += f"; whole step {old:.1f} -> {new:.1f} s ({old / new:.2f}x)"
                summary["haps"]["step_ratio"] = old / new
            print(line)
        if args.first_use:
            if not args.old_tree:
                parser.error("--first-use needs --old-tree (a checkout of the code before the profile)")
            here = Path(__file__).resolve().parents[1]
            times = {"old": first_use(args.first_use, Path(args.old_tree)), "new": first_use(args.first_use, here)}
            print(f"\nFirst use of {args.first_use} (empty cache, assemble + load): wall "
                  f"{times['old']['seconds']:.0f} s -> {times['new']['seconds']:.0f} s "
                  f"({times['old']['seconds'] / times['new']['seconds']:.2f}x); CPU "
                  f"{times['old']['cpu_seconds']:.0f} s -> {times['new']['cpu_seconds']:.0f} s "
                  f"({times['old']['cpu_seconds'] / times['new']['cpu_seconds']:.2f}x)")
            summary["first_use"] = {"model": args.first_use, "old_s": times["old"]["seconds"],
                                    "new_s": times["new"]["seconds"], "old_cpu_s": times["old"]["cpu_seconds"],
                                    "new_cpu_s": times["new"]["cpu_seconds"]}
    print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

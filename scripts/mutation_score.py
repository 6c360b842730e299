"""Mutation score of the core modules, one module group at a time, with mutmut.

Each group names the files mutmut may mutate, the functions whose mutants count (fnmatch
globs over mutmut's mutant names, e.g. ``routing_gym.cost.xǁCostNormalizerǁ__call__*``) and the
test files that may kill them. mutmut records which of those tests reach each function and
runs only them against its mutants, fastest first, stopping at the first failure.

Every group runs in a fresh copy of the package and its tests (mutmut writes its mutated
copy, ``mutants/``, next to its config), so the working tree is never touched.

    python scripts/mutation_score.py                 # every group (make mutation)
    python scripts/mutation_score.py cost metrics    # some groups
    python scripts/mutation_score.py --list          # the groups and their tests

Prints one table row per group and, as the last line, one JSON object. The score counts a
mutant as killed when a test failed or timed out on it; a mutant no selected test reaches
counts as survived. ``--survivors FILE`` writes the diff of every survivor.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What a group's copy holds: the package, the agents its tests import, the tests, the configs.
COPIED = ("routing_gym", "agents", "tests", "setup.cfg", "pyproject.toml")
#: The step, mask, reward and normalizer methods of the envs (any env class, so a refactor that
#: keeps these names keeps them covered).
ENV_METHODS = (
    "step",
    "complete_step",
    "action_masks",
    "_reward",
    "_fit_normalizer",
    "_cost_normalizer",
    "_after_load",
    "_obs",
    "lam_observation",
)


@dataclass(frozen=True)
class Group:
    """Files mutmut may mutate, the mutant-name globs that count, and the tests that may kill them."""

    files: tuple[str, ...]
    functions: tuple[str, ...]
    tests: tuple[str, ...]
    #: a pytest ``-k`` expression that leaves out slow tests (agent training, end-to-end CLI runs)
    keyword: str = ""


#: Tests that train agents, replay or check every ID, embed text or build the default table: a
#: minute each on a busy CPU, and their costs and rewards are checked faster elsewhere.
_TABLE_ENV_SLOW = (
    "not ppo_beats and not maskable_ppo and not same_seed and not pickle_round and not passes_gymnasium"
    " and not embeds_question_text and not builder and not default_table"
)

GROUPS: dict[str, Group] = {
    "cost": Group(
        files=("routing_gym/cost.py",),
        functions=("routing_gym.cost.*",),
        tests=(
            "tests/test_hand_computed_rewards.py",
            "tests/envs/test_table_envs.py",
            "tests/envs/test_table_lam_obs.py",
            "tests/data/test_outcome_table.py",
        ),
        keyword=f"{_TABLE_ENV_SLOW} and not multihop and not live",
    ),
    "metrics": Group(
        files=("routing_gym/metrics/*",),
        functions=("routing_gym.metrics.*",),
        tests=(
            "tests/metrics/test_hand_computed_metrics.py",
            "tests/metrics/test_metrics.py",
            "tests/metrics/test_hop_scorers.py",
            "tests/protocols/test_hotpotqa_protocol.py",
        ),
    ),
    "bench_metrics": Group(
        files=("routing_gym/bench/metrics.py",),
        functions=("routing_gym.bench.metrics.*",),
        tests=(
            "tests/bench/test_hand_computed_bench_metrics.py",
            "tests/bench/test_bench_metrics.py",
            "tests/bench/test_bench_curves.py",
        ),
        keyword="not end_to_end and not cover_every_share",
    ),
    "table_envs": Group(
        files=("routing_gym/envs/table*.py",),
        functions=tuple(f"routing_gym.envs.table*ǁ{name}*" for name in ENV_METHODS),
        tests=(
            "tests/test_hand_computed_rewards.py",
            "tests/envs/test_table_envs.py",
            "tests/envs/test_table_lam_obs.py",
        ),
        keyword=f"{_TABLE_ENV_SLOW} and not multihop and not live",
    ),
    "multihop_env": Group(
        # MultiHopEnv's mask and cost bound, and the reward and normalizer of the live-env base it
        # shares with the Teacher–Student envs
        files=("routing_gym/envs/multihop.py", "routing_gym/envs/live_base.py"),
        functions=(
            *(f"routing_gym.envs.multihop.*ǁ{name}*" for name in ("action_masks", "worst_episode_cost", "_reward",
                                                                  "_cost_normalizer")),
            *(f"routing_gym.envs.live_base.xǁRoutingEnvBaseǁ{name}*" for name in ("_reward", "_cost_normalizer")),
        ),
        tests=("tests/test_hand_computed_rewards.py", "tests/envs/test_multihop_env.py"),
        keyword="multihop or stop_is_masked or per_step_cost or right_final_answer",
    ),
    "cache_keys": Group(
        files=("routing_gym/llm/cache.py",),
        functions=(
            "routing_gym.llm.cache.x__canonical*",
            "routing_gym.llm.cache.x__check_key*",
            "routing_gym.llm.cache.xǁResponseCacheǁmake_key*",
        ),
        tests=("tests/llm/test_cache_keys.py", "tests/llm/test_cache.py"),
        keyword="key or round_trip",
    ),
    "task_scorers": Group(
        files=("routing_gym/tasks/*",),
        functions=("routing_gym.tasks.*ǁscore*", "routing_gym.tasks.*ǁprogram*"),
        tests=(
            "tests/metrics/test_hand_computed_metrics.py",
            "tests/metrics/test_hop_scorers.py",
            "tests/data/test_hop_task_loaders.py",
        ),
    ),
}

#: Prints each named mutant's diff, as ``mutmut show`` does.
SHOW_DIFFS = """
import sys
from mutmut.__main__ import find_mutant, get_diff_for_mutant
for name in sys.argv[1:]:
    print(f"## {name}\\n{get_diff_for_mutant(name, path=find_mutant(name).path)}")
"""


def mutmut_config(group: Group, tests: list[str]) -> str:
    """The ``[mutmut]`` section of setup.cfg for one group."""

    def lines(values) -> str:
        return "".join(f"\n    {v}" for v in values)

    # one pytest argument a line: "-m", "not slow", "-k", "..."
    pytest_args = ["-m", "not slow", "-p", "no:cacheprovider"] + (["-k", group.keyword] if group.keyword else [])

    return (
        "\n[mutmut]\n"
        "source_paths = routing_gym\n"
        # the tests import agents/ too; it must sit beside the mutated package
        "also_copy =\n    agents\n"
        f"only_mutate ={lines(group.files)}\n"
        f"pytest_add_cli_args_test_selection ={lines(tests)}\n"
        f"pytest_add_cli_args ={lines(pytest_args)}\n"
        # an error message's wording is not behaviour: no mutants inside raise statements
        "do_not_mutate_patterns =\n    ^\\s*raise \\w+\\(\n"
        # torch and the tokenizers are not fork-safe once imported: fork from a clean server
        "process_isolation = forkserver\n"
        "use_git_change_detection = false\n"
    )


def copy_tree(root: Path, destination: Path) -> None:
    """The package, agents, tests and configs of ``root``, without caches or earlier mutants."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutants", ".pytest_cache")
    for name in COPIED:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, destination / name)


def parse_results(text: str) -> dict[str, str]:
    """``{mutant name: status}`` from ``mutmut results --all true``."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"\s+(\S+__mutmut_\d+): (.+)$", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def run_group(name: str, group: Group, root: Path, workdir: Path, children: int, survivors_out) -> dict:
    """Run mutmut on one group in a fresh copy of ``root``; its counts, score and wall time."""
    tests = [t for t in group.tests if (root / t).exists()]
    missing = [t for t in group.tests if t not in tests]
    if missing:
        print(f"[{name}] test files not in this checkout, left out: {missing}", file=sys.stderr)
    copy = workdir / name
    copy_tree(root, copy)
    with open(copy / "setup.cfg", "a", encoding="utf-8") as handle:
        handle.write(mutmut_config(group, tests))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
    }
    start = time.monotonic()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *group.functions]
    run = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    (workdir / f"{name}.log").write_text(run.stdout + run.stderr, encoding="utf-8")
    if run.returncode != 0:
        raise SystemExit(
            f"[{name}] mutmut run failed (exit {run.returncode}); its output is in {workdir / (name + '.log')}:\n"
            + (run.stdout + run.stderr)[-3000:]
        )
    listed = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=copy, env=env, capture_output=True, text=True, check=True,
    )
    statuses = {
        mutant: status
        for mutant, status in parse_results(listed.stdout).items()
        if any(fnmatch.fnmatch(mutant, pattern) for pattern in group.functions)
    }
    if not statuses:
        raise SystemExit(f"[{name}] mutmut made no mutants matching {group.functions}.")
    killed = sum(status in ("killed", "timeout") for status in statuses.values())
    survived = sorted(m for m, status in statuses.items() if status not in ("killed", "timeout"))
    if survivors_out is not None and survived:
        # one process for every diff: `mutmut show` per mutant would start Python once each
        diffs = subprocess.run(
            [sys.executable, "-c", SHOW_DIFFS, *survived], cwd=copy, env=env, capture_output=True, text=True
        ).stdout
        survivors_out.write(f"# {name}\n{diffs}\n")
        survivors_out.flush()
    return {
        "group": name,
        "mutants": len(statuses),
        "killed": killed,
        "survived": len(survived),
        "no_tests": sum(status == "no tests" for status in statuses.values()),
        "score": killed / len(statuses),
        "wall_s": round(wall, 1),
        "survivors": survived,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to run (default: all of {list(GROUPS)})")
    parser.add_argument("--children", type=int, default=2, help="mutants tested in parallel (default 2)")
    parser.add_argument("--workdir", type=Path, help="keep the copies here (default: a temporary folder)")
    parser.add_argument("--survivors", type=Path, help="write each survivor's diff to this file")
    parser.add_argument(
        "--source", type=Path, default=ROOT,
        help="the checkout to copy (default: this one), e.g. an exported older commit for a before/after",
    )
    parser.add_argument("--list", action="store_true", help="print the groups and exit")
    args = parser.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown group {unknown[0]!r}; groups: {list(GROUPS)}")
    if args.list:
        for name, group in GROUPS.items():
            print(f"{name}: mutate {list(group.files)} {list(group.functions)}\n    tests {list(group.tests)}")
        return 0
    try:
        import mutmut  # noqa: F401
    except ImportError:
        parser.error("mutmut is not installed: pip install -e '.[mutation]'")
    names = args.groups or list(GROUPS)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="routing_gym_mutation_"))
    workdir.mkdir(parents=True, exist_ok=True)
    survivors_out = open(args.survivors, "w", encoding="utf-8") if args.survivors else None
    rows = []
    try:
        print(f"{'group':<14} {'mutants':>7} {'killed':>7} {'survived':>8} {'no tests':>8} {'score':>6} {'wall s':>7}")
        for name in names:
            row = run_group(name, GROUPS[name], args.source.resolve(), workdir, args.children, survivors_out)
            rows.append(row)
            print(
                f"{name:<14} {row['mutants']:>7} {row['killed']:>7} {row['survived']:>8} "
                f"{row['no_tests']:>8} {row['score']:>6.1%} {row['wall_s']:>7.0f}",
                flush=True,
            )
    finally:
        if survivors_out is not None:
            survivors_out.close()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    total = sum(r["mutants"] for r in rows)
    killed = sum(r["killed"] for r in rows)
    print(f"{'all':<14} {total:>7} {killed:>7} {total - killed:>8} {'':>8} {killed / total:>6.1%}")
    print(json.dumps({"groups": rows, "mutants": total, "killed": killed, "score": killed / total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

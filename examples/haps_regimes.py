"""HAPS and its ablations at the three λ regimes on one task, then one comparison table per regime.

Runs ``routing-gym train-haps`` once per (variant, λ): HAPS (fine-tuned backbone shared by
both levels), HAPS without the low level (``--no-lora``) and HAPS without parameter sharing
(``--no-share-backbone``). Each run writes ``<out-dir>/<task>/<variant>-<regime>/`` (the
agent, its joint-phase checkpoint) and ``.../results.json`` (its valid episodes). A run whose
results file exists is skipped and a stopped run resumes from its checkpoint, so the same
command picks up where it stopped. Then ``examples/compare_haps.py`` puts the runs beside the
fixed assignments, Random, the one-shot routers and the Oracle, one table per regime.

Mixed-source HotpotQA (Qwen2.5-Coder-0.5B open, -1.5B closed), with the exhaustive tables of
the 64 train and 100 valid questions built first by ``routing-gym precompute``:

    python examples/haps_regimes.py --task hotpotqa --out-dir results/haps18 \\
        --train-table results/haps18/hotpotqa_train.jsonl \\
        --valid-table results/haps18/hotpotqa_valid.jsonl

Flags after ``--`` go to every ``train-haps`` run (e.g. ``-- --updates 8``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from routing_gym.cli import main as routing_gym_main

REPO = Path(__file__).resolve().parents[1]
POOL = "qwen2.5-coder-0.5b,qwen2.5-coder-1.5b"
MMLU_SUBJECTS = ["astronomy", "college_biology", "elementary_mathematics", "high_school_computer_science",
                 "high_school_geography", "high_school_psychology", "marketing", "nutrition"]
#: Per task: the envs, the splits, how many questions train / early stopping / report.
TASKS = {
    "hotpotqa": {"env": "LLMRouting-HotpotQA-HAPS-v0", "assign": "LLMRouting-HotpotQA-Assign-v0",
                 "train_split": "train", "valid_split": "valid", "train": 64, "stop": 16, "valid": 100,
                 "env_config": {}},
    "mmlu": {"env": "LLMRouting-MMLU-HAPS-v0", "assign": "LLMRouting-MMLU-Assign-v0",
             "train_split": "val", "valid_split": "test", "train": 64, "stop": 16, "valid": 200,
             "env_config": {"subjects": MMLU_SUBJECTS}},
}
VARIANTS = {
    "HAPS": ["--finetune-backbone"],
    "HAPS without LoRA": ["--finetune-backbone", "--no-lora"],
    "HAPS without sharing": ["--finetune-backbone", "--no-share-backbone"],
}
REGIMES = ("performance-first", "balanced", "cost-first")
#: The joint phase: 8 updates of 4 episodes played in lockstep; the early-stopping questions are
#: played after updates 4 and 8, and the better of the two policies is kept.
TRAINING = ["--updates", "8", "--episodes-per-update", "4", "--rollout-envs", "4", "--eval-every", "4",
            "--patience", "2", "--warmup-epochs", "30"]


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--train-table", required=True, help="exhaustive table of the train questions")
    parser.add_argument("--valid-table", required=True, help="exhaustive table of the reported questions")
    parser.add_argument("--out-dir", default="results/haps")
    parser.add_argument("--models", default=POOL)
    parser.add_argument("--closed", default="qwen2.5-coder-1.5b", help="models used without LoRA")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--compare-only", action="store_true", help="skip runs without results")
    for part in ("train", "stop", "valid"):
        parser.add_argument(f"--{part}", type=int, default=None,
                            help=f"{part} questions (default: the task's, {TASKS['hotpotqa'][part]} for HotpotQA)")
    parser.add_argument("--train-split", default=None, help="default: the task's")
    parser.add_argument("--valid-split", default=None, help="default: the task's")
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    for key in ("train", "stop", "valid", "train_split", "valid_split"):
        if getattr(args, key) is None:
            setattr(args, key, task[key])
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    return args, extra


def run_flags(args: argparse.Namespace, variant: str, regime: str, folder: Path, extra: list[str]) -> list[str]:
    """The ``train-haps`` flags of one run."""
    task = TASKS[args.task]
    flags = ["--env", task["env"], "--models", args.models, "--closed", args.closed,
             "--train-split", args.train_split, "--train-limit", str(args.train),
             "--action-table", args.train_table,
             "--stop-split", args.train_split, "--stop-skip", str(args.train),
             "--stop-limit", str(args.stop), "--valid-episodes", str(args.stop),
             "--valid-split", args.valid_split, "--valid-limit", str(args.valid),
             "--env-config", json.dumps(task["env_config"]), "--lam", regime,
             *TRAINING, *VARIANTS[variant], "--out", str(folder / "agent"),
             "--results-json", str(folder / "results.json"), "--tensorboard-log", str(folder / "tb")]
    if args.data_dir:
        flags += ["--data-dir", args.data_dir]
    return flags + extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)

    root = Path(args.out_dir) / args.task
    regimes = args.regimes.split(",")
    runs: list[str] = []
    for regime in regimes:
        for variant in args.variants.split(","):
            folder = root / f"{variant.lower().replace(' ', '-')}-{regime}"
            results = folder / "results.json"
            if not results.exists():
                if args.compare_only:
                    continue
                print(f"== {args.task}: {variant} at λ = {regime}", flush=True)
                code = routing_gym_main(["train-haps", *run_flags(args, variant, regime, folder, extra)])
                if code:
                    return code
            runs += ["--run", f"{variant} ({regime})={results}"]
    task = TASKS[args.task]
    env_config = {"models": args.models.split(","), **task["env_config"]}
    if args.data_dir:
        env_config["data_dir"] = args.data_dir
    sys.stdout.flush()  # the comparison's table (and its JSON last line) follows this output
    compare = [sys.executable, str(REPO / "examples" / "compare_haps.py"),
               "--train-table", args.train_table, "--valid-table", args.valid_table, *runs,
               "--env", task["assign"], "--env-config", json.dumps(env_config),
               "--train-split", args.train_split, "--valid-split", args.valid_split,
               "--lam", ",".join(regimes)]
    return subprocess.run(compare).returncode


if __name__ == "__main__":
    sys.exit(main())

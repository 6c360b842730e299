"""Published result pages: their tables are recomputed from the per-question data beside them.

A page in ``docs/results/`` is free Markdown with *computed blocks*:

    <!-- computed: haps haps_hotpotqa_qwen_pair.json 0.1 -->
    (the table, written by this module)
    <!-- end computed -->

The first word says which table it is, the second names the data file (relative to the page),
the rest are that table's arguments:

* ``haps FILE LAM``: ``examples/compare_haps.py``'s summary JSON, its table at λ = LAM
  (``routing_gym.bench.comparison.haps_comparison``);
* ``multihop FILE LAM``: ``examples/hierrouter_multihop.py``'s result JSON with ``per_query``;
* ``hierrouter_seeds FILE LAM [TASK]``: such a result run with several seeds or feature sets
  (``--seeds``, ``--feature-sets``, ``--trees``): mean over seeds ± spread and the paired Δ
  from the best single model on train, over all held-out queries or TASK's
  (``hierrouter_report.report_table``);
* ``hierrouter_verdict FILE``: that result's verdict on HierRouter's claim per λ, router, task
  and overall (``hierrouter_report.verdict_table``);
* ``multihop_counts FILE LAM [REFERENCE]``: such a result written without ``per_query``: what
  its 0/1 quality counts support (``comparison.multihop_counts``);
* ``pool_quality FILE REFERENCE``: ``benchmarks/pool_quality.py``'s ``scores.csv``, compared
  with the model REFERENCE;
* ``curves FILE LAM``: ``routing_gym.bench.curves``'s per-query routes at one λ
  (``curves_comparison``);
* ``feature_gap FILE LAM_KEY``: ``examples/llmrouter_features.py``'s JSON, gap captured with
  and without the task and length features at one λ (``feature_gap.feature_gap_table``);
* ``power FILE N [MODELS]``: an exhaustive action table (JSONL), the differences from its best
  fixed assignment that N reported questions can detect, over the comma-separated MODELS
  (default: all; ``power.power_table``);
* ``haps_claims FILE TASK POOL REGIME``: ``examples/haps_claims.py --report``'s summary JSON, one
  (task, pool, regime): methods over seeds, paired intervals, LoRA's changes and the verdicts
  (``claims.claims_table``).

``python -m routing_gym.bench.published docs/results/*.md`` rewrites every block from its
data; ``--check`` only compares and exits 1 naming the blocks that differ (the test suite runs
the same comparison); ``--trim-curves CURVES_JSON OUT`` writes the part of a ``bench
--curves`` summary that a ``curves`` block reads.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

BLOCK = re.compile(
    r"<!-- computed: (?P<spec>[^\n]*?) -->\n(?P<body>(?:(?!<!-- computed:).)*?)<!-- end computed -->",
    re.DOTALL,
)


def _haps(path: Path, lam: str) -> str:
    from routing_gym.bench.comparison import haps_comparison

    summary = json.loads(path.read_text(encoding="utf-8"))
    key = next((k for k in summary["tables"] if float(k) == float(lam)), None)
    if key is None:
        raise ValueError(f"{path}: no table at λ = {lam} (it has {list(summary['tables'])}).")
    return haps_comparison(float(key), summary["tables"][key], summary.get("metric", "F1"))


def _multihop(path: Path, lam: str) -> str:
    from routing_gym.bench.comparison import multihop_comparison

    return multihop_comparison(json.loads(path.read_text(encoding="utf-8")), lam)


def _hierrouter_seeds(path: Path, lam: str, task: str | None = None) -> str:
    from routing_gym.bench.hierrouter_report import report_table

    return report_table(json.loads(path.read_text(encoding="utf-8")), lam, task)


def _hierrouter_verdict(path: Path) -> str:
    from routing_gym.bench.hierrouter_report import verdict_table

    return verdict_table(json.loads(path.read_text(encoding="utf-8")))


def _multihop_counts(path: Path, lam: str, *reference: str) -> str:
    from routing_gym.bench.comparison import MULTIHOP_REFERENCE, multihop_counts

    name = " ".join(reference) or MULTIHOP_REFERENCE
    return multihop_counts(json.loads(path.read_text(encoding="utf-8")), lam, name)


def _pool_quality(path: Path, reference: str) -> str:
    from routing_gym.bench.comparison import pool_quality_tables

    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        models = [c for c in reader.fieldnames or [] if c not in ("id", "task") and "|" not in c]
    return pool_quality_tables(rows, models, reference)


def _curves(path: Path, lam: str) -> str:
    from routing_gym.bench.curves import curves_comparison

    return curves_comparison(json.loads(path.read_text(encoding="utf-8")), float(lam))


def _feature_gap(path: Path, lam_key: str) -> str:
    from routing_gym.bench.feature_gap import feature_gap_table

    return feature_gap_table(json.loads(path.read_text(encoding="utf-8")), lam_key)


def _power(path: Path, n_report: str, models: str = "") -> str:
    from routing_gym.bench.power import power_table

    return power_table(path, int(n_report), [m for m in models.split(",") if m])


def _haps_claims(path: Path, task: str, pool: str, regime: str) -> str:
    from routing_gym.bench.claims import claims_table, find_group

    summary = json.loads(path.read_text(encoding="utf-8"))
    return claims_table(find_group(summary, task, pool, regime))


TABLES: dict[str, Callable[..., str]] = {
    "haps": _haps,
    "multihop": _multihop,
    "multihop_counts": _multihop_counts,
    "hierrouter_seeds": _hierrouter_seeds,
    "hierrouter_verdict": _hierrouter_verdict,
    "pool_quality": _pool_quality,
    "curves": _curves,
    "feature_gap": _feature_gap,
    "power": _power,
    "haps_claims": _haps_claims,
}


def render_block(page: Path, spec: str) -> str:
    """The table of one computed block (``spec`` = kind, data file, arguments)."""
    kind, *rest = spec.split()
    if kind not in TABLES:
        raise ValueError(f"{page}: unknown computed block {kind!r} (known: {sorted(TABLES)}).")
    if not rest:
        raise ValueError(f"{page}: computed block {spec!r} names no data file.")
    data = page.parent / rest[0]
    if not data.is_file():
        raise ValueError(f"{page}: computed block {spec!r}: {data} does not exist.")
    return TABLES[kind](data, *rest[1:])


def blocks(page: Path) -> list[tuple[str, str, str]]:
    """Every computed block of a page: (spec, committed text, recomputed text)."""
    text = page.read_text(encoding="utf-8")
    return [
        (m["spec"], m["body"].strip("\n"), render_block(page, m["spec"]))
        for m in BLOCK.finditer(text)
    ]


def rewrite(page: Path) -> bool:
    """Recompute every block of ``page`` in place; returns whether anything changed."""
    text = page.read_text(encoding="utf-8")
    new = BLOCK.sub(
        lambda m: (
            f"<!-- computed: {m['spec']} -->\n{render_block(page, m['spec'])}\n<!-- end computed -->"
        ),
        text,
    )
    if new != text:
        page.write_text(new, encoding="utf-8")
    return new != text


def trim_curves(summary: dict, env_id: str | None = None) -> dict:
    """One env of a ``curves.json`` with only what ``curves_comparison`` reads: the references,
    and each curve's name, label, seeds and points at the λ of the gap captured."""
    envs = summary["envs"]
    env_id = env_id or next(iter(envs))
    if env_id not in envs:
        raise ValueError(f"curves summary has no env {env_id!r} (it has {list(envs)}).")
    env = envs[env_id]
    curves = [
        {k: curve[k] for k in ("name", "label", "knob", "seeds", "at_lam")}
        for curve in env["curves"]
    ]
    keep = ("queries", "models", "singles", "best_fixed_on_train")
    return {"env": env_id, **{k: env[k] for k in keep}, "curves": curves}


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or ``--check``) the computed blocks of the given pages."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    parser.add_argument(
        "--trim-curves",
        nargs=2,
        type=Path,
        metavar=("CURVES_JSON", "OUT"),
        help="write the part of a bench --curves curves.json (its first env) that a curves block reads",
    )
    args = parser.parse_args(argv)
    stale = []
    try:
        if args.trim_curves:
            source, out = args.trim_curves
            trimmed = trim_curves(json.loads(source.read_text(encoding="utf-8")))
            out.write_text(json.dumps(trimmed) + "\n", encoding="utf-8")
            print(f"wrote {out}")
        for page in args.pages:
            if args.check:
                stale += [f"{page}: {spec}" for spec, old, new in blocks(page) if old != new]
            elif rewrite(page):
                print(f"rewrote {page}")
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in stale:
        print(f"differs from its data: {line}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

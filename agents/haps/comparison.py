"""HAPS runs beside the exhaustive table's baselines, on the same valid questions, at each λ.

The baselines come from the exhaustive action table of the valid split (every assignment
really played, greedy), read as ``Outcomes``: Random is its exact expectation (the mean over
the assignments), "best fixed" the assignment with the highest mean reward on the *train*
table, and the Oracle each question's best assignment in hindsight. One-shot routers fit on
the train table pick an assignment per valid question, looked up in the same table. A HAPS
run (``routing-gym train-haps --results-json``) played its valid episodes live; it shows in
the table of the λ it was trained at. Every row carries its per-question values, so
``routing_gym.bench.comparison.haps_comparison`` prints n, 95% intervals and paired
differences.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from agents.base import action_table_outcomes, arm_columns
from routing_gym.action_table import ActionTable
from routing_gym.bench.roster import ROSTER, build_agent
from routing_gym.cost import resolve_lambda
from routing_gym.outcomes import Outcomes

#: Per-question values every row carries (``question_id`` besides).
VALUES = ("perf", "usd", "normalized_cost", "reward")
#: A choice of assignment (model names in the table's role order) per question id.
Choice = dict[str, tuple[str, ...]]


def parse_lams(text: str) -> list[float]:
    """Comma-separated λ values: numbers or regime names."""
    lams = []
    for name in str(text).split(","):
        name = name.strip()
        try:
            lams.append(float(name))
        except ValueError:
            lams.append(resolve_lambda(name))
    return lams


def run_lambda(run: dict) -> float:
    """The λ a train-haps run was trained at (its recorded config)."""
    return resolve_lambda((run.get("config") or {}).get("lam", "balanced"))


def load_runs(specs: Sequence[str], lams: Sequence[float]) -> dict[str, dict]:
    """``LABEL=PATH`` results of train-haps, each with its valid episodes and a λ of ``lams``."""
    runs = {}
    for spec in specs:
        label, _, path = spec.partition("=")
        if not path:
            raise ValueError(f"--run {spec!r}: expected LABEL=PATH.")
        run = json.loads(Path(path).read_text())
        if "per_episode" not in run:
            raise ValueError(f"{path}: no 'per_episode' rows (write it with --results-json).")
        if not any(abs(run_lambda(run) - lam) < 1e-12 for lam in lams):
            raise ValueError(
                f"--run {label}: trained at λ = {run_lambda(run):g}, which is not in --lam "
                f"{', '.join(f'{lam:g}' for lam in lams)}."
            )
        runs[label] = run
    return runs


def compared_questions(valid: ActionTable, runs: dict[str, dict]) -> list[str]:
    """The valid questions the runs played (all of the table's without runs), sorted by id."""
    played = {e["question_id"] for run in runs.values() for e in run["per_episode"]}
    missing = played - set(valid.question_ids)
    if missing:
        raise ValueError(f"{len(missing)} valid questions HAPS played are not in the valid table.")
    return sorted(played or set(valid.question_ids))


def one_shot_choices(
    env_id: str,
    env_config: dict[str, Any],
    splits: tuple[str, str],
    tables: tuple[ActionTable, ActionTable],
    normalizer: Callable,
    questions: Sequence[str],
    lams: Sequence[float],
    seed: int = 0,
) -> dict[float, dict[str, Choice]]:
    """Per λ and one-shot router (fit on the train table), the assignment of each valid question."""
    from agents import ONE_SHOT_ROUTERS

    train_env = gym.make(env_id, config={**env_config, "split": splits[0]})
    valid_env = gym.make(env_id, config={**env_config, "split": splits[1]})
    try:
        train_data = action_table_outcomes(tables[0], train_env, normalizer)
        valid_data = action_table_outcomes(tables[1], valid_env, normalizer, question_ids=questions)
    finally:
        train_env.close()
        valid_env.close()
    choices: dict[float, dict[str, Choice]] = {lam: {} for lam in lams}
    for name in ONE_SHOT_ROUTERS:
        router = build_agent(name, seed, data=train_data).fit(train_data)
        columns = arm_columns(name, router.models, router.arms, valid_data)
        for lam in lams:
            router.lam = lam  # these routers take λ at routing time
            arms = columns[router.select_arms(valid_data.features)]
            assignments = [valid_data.arm_models[a] for a in arms]
            choices[lam][f"{ROSTER[name].label} (one-shot)"] = dict(
                zip(valid_data.query_ids, assignments)
            )
    return choices


class HAPSComparison:
    """The valid table's outcomes at one λ (USD and normalized costs), the rows built from them."""

    def __init__(
        self,
        lam: float,
        train: ActionTable,
        valid: ActionTable,
        questions: Sequence[str],
        normalizer,
    ):
        self.lam, self.normalizer, self.roles = lam, normalizer, tuple(valid.roles)
        models = valid.models
        self.valid = Outcomes.from_action_table(valid, models, question_ids=questions)  # USD costs
        self.normalized = self.valid.normalized(normalizer)
        self.questions = list(self.valid.query_ids)
        self.train = Outcomes.from_action_table(train, train.models, normalizer)

    # -- per-question values -----------------------------------------------------------------
    def values(self, perf: Sequence[float], usd: Sequence[float]) -> dict[str, list]:
        """Each question's F1, USD, normalized cost and reward (the tables' intervals need them)."""
        perf, usd = np.asarray(perf, dtype=np.float64), np.asarray(usd, dtype=np.float64)
        normalized = np.asarray(self.normalizer(usd), dtype=np.float64)
        return {
            "question_id": list(self.questions),
            "perf": perf.tolist(),
            "usd": usd.tolist(),
            "normalized_cost": normalized.tolist(),
            "reward": (perf - self.lam * normalized).tolist(),
        }

    @staticmethod
    def means(values: dict[str, list]) -> dict[str, float]:
        return {k: float(np.mean(values[k])) for k in VALUES}

    def key(self, assignment: dict[str, str]) -> tuple[str, ...]:
        """An assignment's model names in the table's role order."""
        return tuple(assignment[role] for role in self.roles)

    def score(self, choice: Choice) -> dict[str, Any]:
        """The row of a choice of assignment per question."""
        columns = [self.valid.column(*choice[q]) for q in self.questions]
        values = self.values(*self.valid.picked(columns))
        shares = Counter("/".join(choice[q]) for q in self.questions)
        return {**self.means(values), "assignments": dict(shares), "per_question": values}

    # -- the rows ----------------------------------------------------------------------------
    def best_fixed(self) -> tuple[str, ...]:
        """The assignment with the best mean reward on the train table (ties: the last by name)."""
        rewards = self.train.rewards(self.lam)
        mean = {
            names: float(np.mean(rewards[:, self.train.column(*names)].copy()))
            if names in self.train.arm_models
            else float("nan")
            for names in self.valid.arm_models
        }
        return max(self.valid.arm_models, key=lambda names: (mean[names], names))

    def oracle(self) -> Choice:
        """Each question's best assignment in hindsight (ties: the last by name)."""
        rewards = self.normalized.rewards(self.lam)
        arms = self.valid.arm_models
        return {
            q: max(arms, key=lambda names: (rewards[i, arms.index(names)], names))
            for i, q in enumerate(self.questions)
        }

    def run_row(self, label: str, run: dict) -> dict[str, Any]:
        """A HAPS run's row, with how its episodes compare to the table's of the same assignment."""
        by_id = {e["question_id"]: e for e in run["per_episode"]}
        missed = [q for q in self.questions if q not in by_id]
        if missed:
            raise ValueError(
                f"--run {label}: no episode for {len(missed)} of the compared questions "
                f"(first {missed[0]}); a paired comparison needs every one."
            )
        episodes = [by_id[q] for q in self.questions]
        # the table's episode of the same question and assignment: the one played without LoRA
        columns = [self.valid.column(*self.key(e["assignment"])) for e in episodes]
        table_perf, table_usd = self.valid.picked(columns)
        matches = sum(
            abs(e["perf"] - p) < 1e-9 and abs(e["cost"] - c) < 1e-12
            for e, p, c in zip(episodes, table_perf, table_usd)
        )
        values = self.values([e["perf"] for e in episodes], [e["cost"] for e in episodes])
        return {
            **self.means(values),
            "assignments": dict(Counter("/".join(self.key(e["assignment"])) for e in episodes)),
            "per_question": values,
            "table_matches": f"{matches}/{len(episodes)}",
            "vs_table": perf_changes([e["perf"] for e in episodes], table_perf),
        }

    def rows(self, runs: dict[str, dict], one_shot: dict[str, Choice]) -> dict[str, dict]:
        """Random, best fixed, every fixed assignment, one-shot routers, the runs, the Oracle."""
        arms = self.valid.arm_models
        per_arm = {names: self.score({q: names for q in self.questions}) for names in arms}
        # Random's exact expectation per question: the mean over the assignments
        random_values = {
            k: np.mean([per_arm[a]["per_question"][k] for a in arms], axis=0).tolist()
            for k in VALUES
        }
        random_values["question_id"] = list(self.questions)
        best = self.best_fixed()
        table = {
            "Random (expectation over the assignments)": {
                **self.means(random_values),
                "per_question": random_values,
            },
            f"Best fixed on train: {'/'.join(best)}": per_arm[best],
        }
        for names in arms:
            table[f"Fixed {'/'.join(names)}"] = per_arm[names]
        for label, choice in one_shot.items():
            table[label] = self.score(choice)
        for label, run in runs.items():
            if abs(run_lambda(run) - self.lam) <= 1e-12:
                table[label] = self.run_row(label, run)
        table["Oracle (hindsight upper bound)"] = self.score(self.oracle())
        return table


def table_metric(valid: ActionTable) -> str:
    """What the table's perf is: accuracy for MMLU, F1 otherwise."""
    return "accuracy" if "MMLU" in str((valid.header or {}).get("env_id", "")) else "F1"


def perf_changes(perf: Sequence[float], table_perf: Sequence[float]) -> dict[str, int]:
    """How many questions a run scored better on, worse on, or the same as the table's episode of
    the same assignment (played greedy without LoRA): where the generated LoRA changed the score."""
    deltas = [float(p) - float(t) for p, t in zip(perf, table_perf)]
    return {
        "better": sum(d > 1e-9 for d in deltas),
        "worse": sum(d < -1e-9 for d in deltas),
        "same": sum(abs(d) <= 1e-9 for d in deltas),
    }

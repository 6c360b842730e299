"""Bad input, tried as a careless or hostile user would: every probe must end in a clear error or
an accepted and verified correct result, never a silent wrong answer.

Each probe is classified as:

* ``clear``: an error whose message names what was wrong (the file, line, key, flag, model,
  action or path the probe damaged); for the command line also the right exit status (2 for
  usage errors, 1 for failures while running), one line on stderr and no traceback;
* ``correct``: accepted, and the result checked against the undamaged case;
* ``silent``: anything else (a wrong result, or an error that does not say what was wrong).

The table has one row per probe; the last line is one JSON object
``{"probes": N, "clear": ..., "correct": ..., "silent": ...}``.

    ROUTING_GYM_DATA=../shared/data python benchmarks/bad_inputs.py [--no-cli] [--no-live]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import routing_gym  # noqa: F401  (registers the LLMRouting IDs)
from agents import HierRouter, KNNRouter
from agents.base import env_models
from agents.evaluation import evaluate_agent, evaluate_on_data
from routing_gym.bench import BenchConfig, run_bench
from routing_gym.bench.runner import current_records, read_records
from routing_gym.data.outcome_table import load_outcome_table, read_wide_table
from routing_gym.llm.cache import ResponseCache
from routing_gym.outcomes import Outcomes

ENV = "LLMRouting-Table-GSM8K-v0"
CASCADE = "LLMRouting-Table-Cascade-GSM8K-v0"
SMALL_PPO = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2, "seed": 0}
EMBEDDING = json.dumps([1.0, 0.0, 0.0])


class Silent(Exception):
    """The probe was accepted but gave a wrong result."""


class Probes:
    """Runs probes and keeps one row per probe."""

    def __init__(self):
        self.rows: list[tuple[str, str, str]] = []

    def error(self, name: str, action: Callable[[], Any], *expected: str) -> None:
        """The probe must raise, with every ``expected`` text in the message."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001  (every kind of error is classified)
            message = f"{type(exc).__name__}: {exc}"
            status = "clear" if all(e in str(exc) for e in expected) else "silent"
            self.rows.append((name, status, message))
            return
        self.rows.append((name, "silent", "accepted without an error"))

    def correct(self, name: str, check: Callable[[], str]) -> None:
        """The probe must be accepted; ``check`` returns what it verified or raises Silent."""
        try:
            self.rows.append((name, "correct", check()))
        except Silent as exc:
            self.rows.append((name, "silent", f"wrong result: {exc}"))
        except Exception as exc:  # noqa: BLE001
            self.rows.append((name, "silent", f"unexpected {type(exc).__name__}: {exc}"))

    def cli(self, name: str, argv: list[str], status: int, *expected: str, cwd: Path) -> None:
        """``routing-gym argv`` must exit with ``status`` and print one line naming the input."""
        done = subprocess.run(
            [sys.executable, "-m", "routing_gym", *argv],
            capture_output=True,
            text=True,
            cwd=cwd,
            check=False,
        )
        lines = done.stderr.strip().splitlines()
        message = lines[-1] if lines else ""
        ok = (
            done.returncode == status
            and len(lines) == 1
            and "Traceback" not in done.stderr
            and all(e in message for e in expected)
        )
        detail = f"exit {done.returncode}, {len(lines)} stderr line(s): {message}"
        self.rows.append((name, "clear" if ok else "silent", detail))

    def add(self, name: str, status: str, message: str) -> None:
        self.rows.append((name, status, message))


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Silent(what)


# ---------------------------------------------------------------------------- files


def reordered_table(path: Path, drop: tuple[str, ...] = (), reverse: bool = True) -> Path:
    """The GSM8K variant's rows as a bring-your-own JSONL table, model columns reordered."""
    with open(path, "w", encoding="utf-8") as handle:
        for split in ("train", "valid", "test"):
            base = gym.make(ENV, split=split).unwrapped
            models = list(env_models(base))
            order = list(reversed(models)) if reverse else models
            for i, qid in enumerate(base.query_ids):
                row = {
                    "id": qid,
                    "task": base.query_tasks[i],
                    "split": split,
                    "embedding": base.embeddings[i].tolist(),
                }
                for model in order:
                    if model not in drop:
                        j = models.index(model)
                        row[model] = float(base.scores[i, j])
                        row[f"{model}|cost"] = float(base.costs[i, j])
                handle.write(json.dumps(row) + "\n")
    return path


def csv_file(path: Path, header: str, rows: list[str], prefix: bytes = b"") -> Path:
    path.write_bytes(prefix + "\n".join([header, *rows]).encode("utf-8") + b"\n")
    return path


def toy_table(path: Path, best: str) -> Path:
    """Two models on 45 queries; ``best`` answers every one, the other none."""
    rng = np.random.default_rng(0)
    splits = ["train"] * 30 + ["valid"] * 5 + ["test"] * 10
    with open(path, "w", encoding="utf-8") as handle:
        for i, split in enumerate(splits):
            row = {"id": f"q{i}", "split": split, "embedding": rng.normal(size=8).tolist()}
            row.update({m: float(m == best) for m in ("a", "b")})
            row["prompt_tokens"] = 100
            handle.write(json.dumps(row) + "\n")
    return path


def prices_file(path: Path, price_of_b: float) -> Path:
    prices = {"a": {"input_price": 1.0, "output_price": 1.0}}
    prices["b"] = {"input_price": price_of_b, "output_price": price_of_b}
    path.write_text(json.dumps(prices))
    return path


def cache_error_as_nobody(path: Path, mode: str = "rw") -> str:
    """Open a cache at ``path`` (and read a key) as an unprivileged user (root writes anywhere)."""

    def attempt() -> str:
        try:
            with ResponseCache(path, mode=mode) as cache:
                cache.get(ResponseCache.make_key("m", [1], {}))
        except Exception as exc:  # noqa: BLE001
            return f"{type(exc).__name__}: {exc}"
        return ""

    if os.geteuid() != 0:
        return attempt()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, attempt().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        message = handle.read().decode()
    os.waitpid(pid, 0)
    return message


# ---------------------------------------------------------------------------- the probes


def model_order_probes(p: Probes, work: Path) -> None:
    """Issue item 1: models matched by name, not position."""
    table = str(reordered_table(work / "reordered.jsonl"))
    short = str(reordered_table(work / "eight.jsonl", drop=("codegemma-7b",), reverse=False))
    default_test = gym.make(ENV, split="test")
    other_test = gym.make("LLMRouting-Table-v0", table=table, split="test")
    short_test = gym.make("LLMRouting-Table-v0", table=short, split="test")
    knn = KNNRouter(k=5).fit_env(gym.make(ENV, split="train"))
    ppo = HierRouter(**SMALL_PPO).fit(ENV, total_timesteps=256)

    def same_scores(agent) -> str:
        a, b = evaluate_agent(agent, default_test), evaluate_agent(agent, other_test)
        expect(a["perf"] == b["perf"] and a["share"] == b["share"], f"{a['perf']} vs {b['perf']}")
        return f"perf {b['perf']:.3f} and call shares equal to the default table's"

    p.correct("KNN, evaluate_agent, models in another order", lambda: same_scores(knn))

    def knn_predict() -> str:
        queries = default_test.unwrapped.embeddings[:20]
        knn.adapt_to(default_test)
        wanted = [env_models(default_test)[a] for a in knn.predict(queries)[0]]
        knn.adapt_to(other_test)
        got = [env_models(other_test)[a] for a in knn.predict(queries)[0]]
        expect(got == wanted, "predict() picked other models")
        return "predict() after adapt_to(env) picks the same models by name on 20 queries"

    p.correct("KNN, predict(), models in another order", knn_predict)
    p.correct("HierRouter, evaluate_agent, models in another order", lambda: same_scores(ppo))

    def cascade() -> str:
        agent = HierRouter(**SMALL_PPO).fit(CASCADE, total_timesteps=256)
        a = evaluate_agent(agent, gym.make(CASCADE, split="test"))
        other = gym.make("LLMRouting-Table-Cascade-v0", table=table, split="test")
        b = evaluate_agent(agent, other)
        expect(a["share"] == b["share"] and a["perf"] == b["perf"], f"{a['perf']} vs {b['perf']}")
        return f"cascade perf {b['perf']:.3f}, calls/episode {b['calls_per_episode']:.2f}, as on the default"

    p.correct("HierRouter cascade (per-model observations), another order", cascade)

    def saved_zip() -> str:
        loaded = HierRouter.load(ppo.save(work / "ppo.zip"))
        expect(loaded.models == ppo.models, "the zip lost the model names")
        a, b = evaluate_agent(ppo, other_test), evaluate_agent(loaded, other_test)
        expect(a["share"] == b["share"], "the loaded zip routes differently")
        return f"the zip keeps {len(loaded.models)} model names and routes the same"

    p.correct("saved PPO zip keeps the model names", saved_zip)

    def offline() -> str:
        a = evaluate_on_data(knn, Outcomes.from_table_env(default_test))
        b = evaluate_on_data(knn, Outcomes.from_table_env(other_test))
        expect(a["perf"] == b["perf"] and a["share"] == b["share"], "columns matched by position")
        return "evaluate_on_data matches arms to columns by name"

    p.correct("offline scores on data in another order", offline)
    p.error(
        "KNN on a table missing a model", lambda: evaluate_agent(knn, short_test), "codegemma-7b"
    )
    p.error(
        "HierRouter on a table missing a model",
        lambda: evaluate_agent(ppo, short_test),
        "codegemma-7b",
    )

    # checkpoints and observations
    knn_file, ppo_file = knn.save(work / "knn.pt"), ppo.save(work / "ppo2.zip")
    for source, suffix, cls in ((knn_file, ".pt", KNNRouter), (ppo_file, ".zip", HierRouter)):
        cut = work / f"truncated{suffix}"
        cut.write_bytes(source.read_bytes()[:400])
        p.error(
            f"{cls.__name__}.load of a truncated {suffix}", lambda c=cut, k=cls: k.load(c), str(cut)
        )
        junk = work / f"garbage{suffix}"
        junk.write_bytes(b"not a checkpoint\n" * 20)
        p.error(
            f"{cls.__name__}.load of a garbage {suffix}", lambda c=junk, k=cls: k.load(c), str(junk)
        )
    p.error(
        "HierRouter.load of a KNN file",
        lambda: HierRouter.load(knn_file),
        str(knn_file),
        "not a HierRouter checkpoint",
    )
    p.error(
        "KNNRouter.load of a HierRouter zip",
        lambda: KNNRouter.load(ppo_file),
        str(ppo_file),
        "HierRouter.load",
    )

    def nope() -> None:
        HierRouter.load("nope.zip")

    p.error("HierRouter.load('nope.zip')", nope, "nope.zip does not exist")
    p.error("KNNRouter().save() before fit", lambda: KNNRouter().save(work / "x.pt"), "not fitted")
    p.error(
        "KNN given a 10-value observation",
        lambda: knn.predict(np.zeros(10, dtype=np.float32)),
        "384-dimensional",
        "10 values",
    )
    p.error(
        "KNN given a NaN observation",
        lambda: knn.predict(np.full(384, np.nan, dtype=np.float32)),
        "NaN",
    )
    p.error(
        "HierRouter given a NaN observation",
        lambda: ppo.predict(np.full(384, np.nan, dtype=np.float32)),
        "NaN",
    )


def stale_row_probes(p: Probes, work: Path) -> None:
    """Issue item 2: resumed benchmark rows keyed by file contents."""
    table = toy_table(work / "toy.jsonl", best="a")
    prices = prices_file(work / "prices.json", 2.0)

    def config() -> BenchConfig:
        return BenchConfig(
            agents=["fixed-best"],
            envs=["LLMRouting-Table-v0"],
            regimes=["performance-first"],
            seeds=[0],
            env_config={"table": str(table), "prices": str(prices), "completion_tokens": 10},
            out=str(work / "bench"),
        )

    def row() -> dict:
        records = current_records(config(), read_records(config().rows_path))
        return next(r for r in records if r["kind"] == "row")

    def edited_table() -> str:
        run_bench(config(), progress=False)
        expect(row()["share"] == {"a": 1.0}, "first run")
        toy_table(table, best="b")
        run_bench(config(), progress=False)
        expect(row()["share"] == {"b": 1.0}, f"the old rows came back: {row()['share']}")
        return "after editing the table in place the rows were recomputed (now model b)"

    p.correct("bench, table edited in place, same command again", edited_table)

    def edited_prices() -> str:
        before = config().fingerprint("fixed-best", "LLMRouting-Table-v0")
        prices_file(prices, 0.5)
        after = config().fingerprint("fixed-best", "LLMRouting-Table-v0")
        expect(before != after, "the fingerprint ignores the price file's contents")
        return "editing the price file in place changes the rows' fingerprint"

    p.correct("bench, price file edited in place", edited_prices)


def table_file_probes(p: Probes, work: Path) -> None:
    """Issue item 3 and the table-file errors."""
    rows = [f'q{i},"{EMBEDDING}",0.5,1,0.001,0.002' for i in range(4)]
    twice = csv_file(
        work / "twice.csv", "id,embedding,a,b,b,a|cost,b|cost", [r + ",0" for r in rows]
    )
    p.error("CSV with a repeated column (b,b)", lambda: read_wide_table(twice), "twice.csv", "'b'")
    jsonl = work / "twice.jsonl"
    jsonl.write_text('{"id": "q0", "embedding": [1, 0], "b": 0, "b": 1, "b|cost": 0.1}\n')
    p.error(
        "JSONL with a repeated key", lambda: read_wide_table(jsonl), "twice.jsonl", "line 1", "'b'"
    )

    bom = csv_file(
        work / "excel.csv", "id,embedding,a,b,a|cost,b|cost", rows, prefix=b"\xef\xbb\xbf"
    )

    def read_bom() -> str:
        table = read_wide_table(bom)
        expect(table.ids.tolist() == ["q0", "q1", "q2", "q3"], f"ids {table.ids.tolist()}")
        return "a CSV with a UTF-8 BOM reads its 'id' column"

    p.correct("CSV with a UTF-8 BOM (Excel)", read_bom)
    folder = work / "a_folder"
    folder.mkdir()
    p.error("table path that is a folder", lambda: load_outcome_table(folder), "is a folder")
    big = csv_file(
        work / "big.csv",
        "id,embedding,a,a|cost",
        [f'q0,"{EMBEDDING}",1,0.1', f'q1,"{EMBEDDING}",1,0.1', f'q2,"{"x" * 200_000}",1,0.1'],
    )
    p.error("CSV cell over the field limit", lambda: read_wide_table(big), "big.csv", "line 4")
    latin = work / "latin1.csv"
    latin.write_bytes(b'id,embedding,a,a|cost\nq0,"[1,0]",1,0.1\ncaf\xe9,"[1,0]",1,0.1\n')
    p.error(
        "CSV with bytes that are not UTF-8", lambda: read_wide_table(latin), "latin1.csv", "line 3"
    )
    surrogate = work / "surrogate.jsonl"
    surrogate.write_text(
        json.dumps({"question": "fine", "a": 1, "a|cost": 0.1})
        + "\n"
        + '{"question": "broken \\ud800 text", "a": 1, "a|cost": 0.1}\n'
    )
    p.error(
        "JSONL question with a lone surrogate",
        lambda: read_wide_table(surrogate),
        "surrogate.jsonl",
        "line 2",
        "'question'",
    )


def action_probes(p: Probes, live: bool) -> None:
    """Issue item 4: non-integer actions, and the render mode."""
    bad = [2.5, "1", True, np.float32(1.7), float("nan"), None, "gemma-2-9b-it"]
    for env_id in (ENV, CASCADE):
        env = gym.make(env_id)
        space = str(env.action_space)
        for action in bad:

            def step(e=env, a=action) -> None:
                e.reset(seed=0)
                e.step(a)

            p.error(f"{env_id.split('-')[2]} env, action {action!r}", step, space, repr(action))
    p.error(
        "render_mode='human' (table env)",
        lambda: gym.make("LLMRouting-Table-v0", render_mode="human"),
        "render_mode='human'",
    )
    p.error(
        "config tasks clashing with the GSM8K variant",
        lambda: gym.make(ENV, config={"tasks": ["math"]}),
        "'tasks' is given twice",
    )
    if not live:
        return
    config = {"models": ["tiny-llama", "tiny-qwen2"], "limit": 1, "cache_mode": "off"}
    p.error(
        "render_mode='human' (live env)",
        lambda: gym.make("LLMRouting-HotpotQA-v0", config=config, render_mode="human"),
        "render_mode='human'",
    )
    env = gym.make("LLMRouting-HotpotQA-v0", config=config)
    env.reset(seed=0)
    for action in (True, 2.5, "1"):
        p.error(
            f"live env, action {action!r}",
            lambda a=action: env.step(a),
            "Discrete(2)",
            repr(action),
        )
    env.close()


def cache_probes(p: Probes, work: Path) -> None:
    """Response cache paths that cannot work."""
    blocker = work / "notes.txt"
    blocker.write_text("a file")
    p.error(
        "cache path under a regular file",
        lambda: ResponseCache(blocker / "sub" / "responses.sqlite"),
        str(blocker),
        "is a file, not a folder",
    )
    root = Path(tempfile.mkdtemp(prefix="routing_gym_probe_"))  # "nobody" must reach it
    locked = root / "locked"
    locked.mkdir()
    root.chmod(0o755)
    locked.chmod(0o555)
    try:
        message = cache_error_as_nobody(locked / "responses.sqlite")
        ok = "not writable" in message and str(locked) in message and "corrupt" not in message
        p.add("cache in an unwritable folder", "clear" if ok else "silent", message or "accepted")
        locked.chmod(0o755)
        shipped = locked / "shipped.sqlite"
        with ResponseCache(shipped) as cache:
            cache.put(ResponseCache.make_key("m", [1], {}), "m", {"text": "x"})
        for leftover in locked.glob("shipped.sqlite-*"):
            leftover.unlink()
        locked.chmod(0o555)
        message = cache_error_as_nobody(shipped, mode="ro")
        ok = (
            str(shipped) in message
            and "cache_mode='ro'" not in message
            and "not writable" in message
        )
        p.add(
            "mode='ro' cache in a read-only folder",
            "clear" if ok else "silent",
            message or "accepted",
        )
    finally:
        locked.chmod(0o755)
        shutil.rmtree(root)


def cli_probes(p: Probes, work: Path) -> None:
    """The command line: one line naming the bad input, exit 2 or 1, no traceback."""
    (work / "bad.yaml").write_text("agents: [knn\n  x: : y\n")
    (work / "bad.json").write_text('{"agents": ["knn",}')
    (work / "jobs.yaml").write_text("jobs: banana\n")
    p.cli(
        "--config missing.yaml", ["bench", "--config", "missing.yaml"], 2, "missing.yaml", cwd=work
    )
    p.cli(
        "--config malformed YAML",
        ["bench", "--config", "bad.yaml"],
        2,
        "bad.yaml, line 2",
        cwd=work,
    )
    p.cli(
        "--config malformed JSON",
        ["train", "--config", "bad.json"],
        2,
        "bad.json, line 1",
        cwd=work,
    )
    p.cli(
        "config file with jobs: banana", ["bench", "--config", "jobs.yaml"], 2, "'jobs'", cwd=work
    )
    p.cli("train --env unknown", ["train", "--env", "LLMRouting-Nope-v0"], 2, "--env", cwd=work)
    p.cli(
        "train --agent knn --out knn.zip",
        ["train", "--agent", "knn", "--env", ENV, "--out", "knn.zip"],
        2,
        "knn.pt",
        cwd=work,
    )
    p.cli(
        "precompute --limit 0",
        ["precompute", "--limit", "0", "--out", "t.jsonl"],
        2,
        "--limit",
        cwd=work,
    )
    for key, value in (("split", '"test"'), ("lam", "5")):
        p.cli(
            f"bench --env-config {key}: {value}",
            ["bench", "--agents", "knn", "--envs", ENV, "--env-config", f'{{"{key}": {value}}}'],
            2,
            f"'{key}'",
            cwd=work,
        )
    p.cli("train --lam banana", ["train", "--lam", "banana"], 2, "--lam", cwd=work)
    nope = '{"tasks": ["nope"]}'
    for command in ("train", "bench"):
        p.cli(
            f"{command} --env-config tasks nope",
            [command, "--env-config", nope],
            2,
            "--env-config",
            cwd=work,
        )
    p.cli(
        "precompute with a missing data folder (runtime failure)",
        ["precompute", "--data-dir", "nowhere", "--out", "t.jsonl"],
        1,
        "nowhere",
        cwd=work,
    )
    done = subprocess.run(
        [sys.executable, "-m", "routing_gym", "train", "--lam", "banana", "--debug"],
        capture_output=True,
        text=True,
        cwd=work,
        check=False,
    )
    ok = done.returncode == 2 and "Traceback" in done.stderr
    p.add("--debug shows the traceback", "clear" if ok else "silent", f"exit {done.returncode}")


# ---------------------------------------------------------------------------- trust boundaries


class _Marker:
    """Unpickling this runs a shell command that creates ``marker``: any command could run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def checkpoint_probes(p: Probes, work: Path) -> None:
    """Checkpoints that would run code, and checkpoints of the wrong kind or layout."""
    import base64
    import zipfile

    import cloudpickle
    import torch

    from routing_gym.bench import load_checkpoint

    marker = work / "marker"
    crafted = work / "crafted.pt"
    torch.save({"format": 2, "agent": "KNNRouter", "state": _Marker(marker)}, crafted)
    for name, load in (("KNNRouter.load", KNNRouter.load), ("load_checkpoint", load_checkpoint)):
        p.error(
            f"{name} of a .pt that runs a command",
            lambda f=load: f(crafted),
            str(crafted),
            "trust_pickle",
        )
        if marker.exists():
            p.add(f"{name} of a .pt that runs a command: marker", "silent", "the command ran")
    ppo = HierRouter(n_envs=1, n_steps=64, batch_size=64, n_epochs=1).fit(ENV, total_timesteps=64)
    saved = ppo.save(work / "ppo.zip")

    def rewrite(target: Path, edit) -> Path:
        with zipfile.ZipFile(saved) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        data = json.loads(entries["data"])
        edit(data)
        entries["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(target, "w") as archive:
            for name, content in entries.items():
                archive.writestr(name, content)
        return target

    hostile = {
        ":type:": "x",
        ":serialized:": base64.b64encode(cloudpickle.dumps(_Marker(marker))).decode(),
    }
    extra = rewrite(work / "extra.zip", lambda d: d.update(policy_kwargs=hostile))
    p.error(
        "HierRouter.load of a zip with a pickled command",
        lambda: HierRouter.load(extra),
        str(extra),
        "policy_kwargs",
    )

    def replaced() -> str:
        zip_path = rewrite(
            work / "replaced.zip",
            lambda d: d.update(
                {k: hostile for k, v in d.items() if isinstance(v, dict) and ":serialized:" in v}
            ),
        )
        loaded = HierRouter.load(zip_path)
        expect(not marker.exists(), "the command ran")
        obs = gym.make(ENV, split="test").unwrapped.embeddings[:16]
        expect(np.array_equal(loaded.predict(obs)[0], ppo.predict(obs)[0]), "routes differently")
        return "every pickled entry is rebuilt from plain JSON: nothing ran, same routes"

    p.correct("HierRouter.load of a zip whose pickled entries run a command", replaced)
    p.error(
        "HierRouter trained on a Box, evaluated on the cascade's Dict",
        lambda: evaluate_agent(ppo, gym.make(CASCADE, split="test")),
        "Box(384,)",
        "Dict(",
    )


class _FakeServer:
    """An OpenAI-compatible server on 127.0.0.1 answering every completion with ``reply(body)``
    (the standard library's http.server: canned answers, malformed ones included)."""

    def __init__(self):
        import http.server
        import threading

        self.reply = None
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send(
                    200,
                    "application/json",
                    json.dumps(
                        {
                            "object": "list",
                            "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "x"}],
                        }
                    ),
                )

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send(*fake.reply(body))

            def send(self, status, kind, text):
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _completion(body: dict, **fields) -> str:
    reply = {
        "id": "c",
        "object": "text_completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "text": "Paris", "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    reply.update(fields)
    return json.dumps(reply)


def server_probes(p: Probes, work: Path) -> None:
    """A server's answers: counts, model, log-probs and bodies that are not completions."""
    from routing_gym.llm import GenerationRequest, LLMPool

    fake = _FakeServer()
    ok = 200, "application/json"
    usage = lambda **u: (
        lambda b: (
            *ok,
            _completion(
                b,
                usage={
                    k: v
                    for k, v in {"prompt_tokens": 7, "completion_tokens": 2, **u}.items()
                    if v is not None
                },
            ),
        )
    )  # noqa: E731
    cases = {
        "negative token counts in usage": usage(prompt_tokens=-1_000_000),
        "usage without completion_tokens": usage(completion_tokens=None),
        "1e15 tokens in usage": usage(completion_tokens=10**15),
        "another model echoed back": lambda b: (*ok, _completion(b, model="gpt-4o")),
        "empty choices": lambda b: (*ok, _completion(b, choices=[])),
        "null choices": lambda b: (*ok, _completion(b, choices=None)),
        "invalid JSON with status 200": lambda b: (*ok, '{"choices": [{"te'),
        "HTML page with status 200": lambda b: (200, "text/html", "<html>login</html>"),
        "error body with status 200": lambda b: (*ok, '{"error": {"message": "overloaded"}}'),
    }
    spec = {
        "name": "srv",
        "location": "server:m",
        "backend": "openai",
        "price": {"input_per_m": 1.0, "output_per_m": 1.0},
        "options": {"base_url": fake.url, "api": "completions", "max_retries": 0, "timeout": 10},
    }
    request = GenerationRequest(model="srv", prompt="The capital of France is", max_new_tokens=4)
    for number, (name, reply) in enumerate(cases.items()):
        fake.reply = reply
        cache = work / f"server{number}.sqlite"
        pool = LLMPool([spec], cache=cache)
        p.error(f"server: {name}", lambda: pool.generate([request]), fake.url, "'srv'")
        pool.close()
        if cache.exists() and len(ResponseCache(cache, mode="ro")):
            p.add(f"server: {name}: cache", "silent", "the answer was cached")

    def nan_logprob(body):
        text = _completion(
            body,
            choices=[
                {
                    "index": 0,
                    "text": " A",
                    "finish_reason": "stop",
                    "logprobs": {
                        "tokens": [" A"],
                        "token_logprobs": [-0.1],
                        "top_logprobs": [{" A": "X", " B": -0.1}],
                        "text_offset": [0],
                    },
                }
            ],
        )
        return (*ok, text.replace('"X"', "NaN"))

    fake.reply = nan_logprob
    pool = LLMPool([spec], cache=work / "nan.sqlite")
    p.error(
        "server: a NaN log-prob",
        lambda: pool.choice_logprobs("srv", request, [" A", " B"]),
        fake.url,
        "nan",
    )
    pool.close()
    fake.server.shutdown()


def small_case_probes(p: Probes, work: Path) -> None:
    """The smaller silent cases: each an error naming the key and value."""
    from routing_gym.cost import resolve_lambda
    from routing_gym.data.gsm8k import load_gsm8k

    p.error("lam: True", lambda: gym.make(ENV, config={"lam": True}), "'lam'", "True")
    p.error("resolve_lambda(True)", lambda: resolve_lambda(True), "boolean True")
    blank = work / "blank.jsonl"
    blank.write_text(json.dumps({"question": "  ", "answer": "1\n#### 1"}) + "\n")
    p.error(
        "GSM8K file with a blank question",
        lambda: load_gsm8k(split=str(blank)),
        "blank.jsonl",
        "line 1",
        "'question'",
    )
    rows = [
        {
            "id": f"q{i}",
            "embedding": [1.0, float(i), 0.0],
            "a": 1,
            "b": 0,
            "a|cost": 0.1,
            "b|cost": 0.2,
        }
        for i in range(4)
    ]
    for name, field, value in (
        ("id null", "id", None),
        ("prompt_tokens 1e300", "prompt_tokens", 1e300),
    ):
        table = work / f"{field}.jsonl"
        table.write_text(
            "".join(
                json.dumps({**r, field: value if i == 0 else r.get(field, 100)}) + "\n"
                for i, r in enumerate(rows)
            )
        )
        p.error(
            f"table with {name}",
            lambda t=table: read_wide_table(t),
            table.name,
            "line 1",
            f"'{field}'",
        )
    p.error(
        "env config completion_tokens 1e300",
        lambda: gym.make(ENV, config={"completion_tokens": 1e300}),
        "completion_tokens",
        "1e+300",
    )

    def resumed() -> str:
        config = lambda out: BenchConfig(
            agents=["random", "knn"],
            envs=[ENV],
            regimes=["balanced", "cost-first"],
            seeds=[0],
            out=str(out),
        )  # noqa: E731
        run_bench(config(work / "straight"), progress=False)
        from routing_gym.bench import runner

        real, count = runner.append_record, []

        def stop_after_one(path, record):
            if record["kind"] == "row" and count:
                raise KeyboardInterrupt
            real(path, record)
            count.extend([1] if record["kind"] == "row" else [])

        runner.append_record = stop_after_one
        try:
            run_bench(config(work / "resumed"), progress=False)
        except KeyboardInterrupt:
            pass
        finally:
            runner.append_record = real
        run_bench(config(work / "resumed"), progress=False)
        strip = lambda out: sorted(
            json.dumps({k: v for k, v in r.items() if k not in ("fit_s", "eval_s")}, sort_keys=True)
            for r in read_records(out / "rows.jsonl")
            if r["kind"] == "row"
        )  # noqa: E731
        expect(strip(work / "straight") == strip(work / "resumed"), "resumed rows differ")
        return "interrupted after 1 row and resumed: the 4 rows equal an uninterrupted run's"

    p.correct("bench interrupted and resumed (Random's rows)", resumed)
    damaged = work / "damaged.sqlite"
    with ResponseCache(damaged) as cache:
        key = ResponseCache.make_key("m", [1], {})
        cache.put(key, "m", {"text": "x"})
    import sqlite3

    with sqlite3.connect(damaged) as conn:
        conn.execute("UPDATE responses SET record = '{not json'")
    p.error(
        "cache record that is not JSON",
        lambda: ResponseCache(damaged, mode="ro").get(key),
        str(damaged),
        key,
    )


def cache_cli_probes(p: Probes, work: Path) -> None:
    """``python -m routing_gym.llm.cache`` on a typo and on a corrupt file."""
    (work / "corrupt.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    for name, path in (("typo.sqlite", "typo.sqlite"), ("a corrupt file", "corrupt.sqlite")):
        done = subprocess.run(
            [sys.executable, "-m", "routing_gym.llm.cache", path],
            capture_output=True,
            text=True,
            cwd=work,
            check=False,
        )
        lines = done.stderr.strip().splitlines()
        ok = (
            done.returncode != 0
            and len(lines) == 1
            and path in lines[0]
            and "Traceback" not in done.stderr
        )
        p.add(
            f"cache CLI on {name}",
            "clear" if ok else "silent",
            f"exit {done.returncode}: {lines[-1] if lines else done.stdout.strip()[-80:]}",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line probes")
    parser.add_argument("--no-live", action="store_true", help="skip the live-env probes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    probes = Probes()
    work = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
    try:
        model_order_probes(probes, work)
        stale_row_probes(probes, work)
        table_file_probes(probes, work)
        action_probes(probes, live=not args.no_live)
        cache_probes(probes, work)
        checkpoint_probes(probes, work)
        server_probes(probes, work)
        small_case_probes(probes, work)
        cache_cli_probes(probes, work)
        if not args.no_cli:
            cli_probes(probes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _, _ in probes.rows)
    print(f"{'probe':<{width}}  {'result':<7}  message")
    for name, status, message in probes.rows:
        line = " ".join(message.split())
        print(f"{name:<{width}}  {status:<7}  {line[:140]}")
    counts = {
        s: sum(1 for _, status, _ in probes.rows if status == s)
        for s in ("clear", "correct", "silent")
    }
    print(f"\n{len(probes.rows)} probes in {time.perf_counter() - start:.0f} s")
    print(json.dumps({"probes": len(probes.rows), **counts}))
    return 0 if counts["silent"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

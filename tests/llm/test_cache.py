"""ResponseCache: exact round trips, key sensitivity, modes, multi-process safety and stats."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sqlite3
import time

import numpy as np
import pytest

from routing_gym.errors import CacheError
from routing_gym.llm.cache import ResponseCache, format_stats

DECODING = {"max_new_tokens": 64, "stop": ["\n"], "temperature": 0.0, "top_p": 1.0, "seed": 0}
FORK = mp.get_context("fork")


def key_of(i: int, model: str = "m0") -> str:
    return ResponseCache.make_key(f"{model}@sha256:0f1e", [101, 7, i], DECODING)


def record_of(i: int, pad: int = 0) -> dict:
    return {
        "text": f"réponse n°{i} ✓ 答案 🙂" + "x" * pad,
        "prompt_ids": [101, 7, i],
        "completion_ids": list(range(i, i + 7)),
        "prompt_tokens": 3,
        "completion_tokens": 7,
        "finish_reason": "stop",
        "logprob": -0.25 * i,
    }


# ------------------------------------------------------------------ round trips and keys
def test_round_trip_returns_identical_record(tmp_path):
    record = {
        "text": 'Ünïcødé ✓ 中文 \U0001f600 \n\t"quoted" \\ \x00end',
        "completion_ids": [0, 1, 2**31 - 1, 2**40, 151645],
        "prompt_ids": [],
        "nested": {
            "top_logprobs": [[-0.5, -float("inf")], [-1e-12, 3.5e-300]],
            "ok": True,
            "none": None,
        },
    }
    key = key_of(1)
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put(key, "m0", record)
        assert cache.get(key, "m0") == record
        assert cache.get(key, "m0") is not cache.get(key, "m0")  # callers get fresh objects
    with ResponseCache(tmp_path / "c.sqlite") as reopened:
        again = reopened.get(key)
    assert again == record
    assert again["nested"]["top_logprobs"][0][1] == -float("inf")
    assert [type(t) for t in again["completion_ids"]] == [int] * 5


def test_key_changes_with_each_part():
    base = dict(
        model_id="qwen@sha256:aa",
        prompt_ids=[1, 2, 3],
        decoding=DECODING,
        adapter_digest="",
        kind="generate",
    )
    variants = [
        base,
        {**base, "model_id": "qwen@sha256:ab"},  # same name, other weights
        {**base, "prompt_ids": [1, 2, 4]},
        {**base, "prompt_ids": [1, 2, 3, 0]},
        {**base, "decoding": {**DECODING, "temperature": 0.7}},
        {**base, "decoding": {**DECODING, "max_new_tokens": 65}},
        {**base, "decoding": {**DECODING, "stop": []}},
        {**base, "adapter_digest": "lora:1234"},
        {**base, "kind": "choice-logprobs"},
    ]
    keys = [ResponseCache.make_key(**v) for v in variants]
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 64 and int(k, 16) >= 0 for k in keys)


def test_key_is_canonical_for_equal_inputs():
    key = ResponseCache.make_key("m@1", [1, 2, 3], DECODING)
    reordered = dict(reversed(list(DECODING.items())))
    spelled_differently = {**DECODING, "stop": ("\n",), "temperature": 0, "max_new_tokens": 64.0}
    assert ResponseCache.make_key("m@1", [1, 2, 3], reordered) == key
    assert ResponseCache.make_key("m@1", (1, 2, 3), spelled_differently) == key
    assert ResponseCache.make_key("m@1", np.array([1, 2, 3], dtype=np.int64), DECODING) == key
    numpy_decoding = {**DECODING, "temperature": np.float32(0.0), "seed": np.int64(0)}
    assert ResponseCache.make_key("m@1", [1, 2, 3], numpy_decoding) == key


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"prompt_ids": [1.5]}, TypeError),
        ({"prompt_ids": "abc"}, TypeError),
        ({"model_id": ""}, ValueError),
        ({"kind": ""}, ValueError),
        ({"decoding": {"temperature": float("nan")}}, ValueError),
        ({"decoding": {"stop": {"a"}}}, TypeError),
    ],
)
def test_make_key_rejects_bad_parts(kwargs, error):
    args = {"model_id": "m@1", "prompt_ids": [1], "decoding": DECODING, **kwargs}
    with pytest.raises(error):
        ResponseCache.make_key(**args)


def test_put_rejects_bad_keys_models_and_records(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    with pytest.raises(ValueError, match="sha256"):
        cache.put("not-a-key", "m0", {})
    with pytest.raises(ValueError, match="model"):
        cache.put(key_of(1), "", {})
    with pytest.raises(TypeError, match="dict"):
        cache.put(key_of(1), "m0", [1, 2])
    with pytest.raises(TypeError, match="JSON"):
        cache.put(key_of(1), "m0", {"ids": np.arange(3)})
    assert len(cache) == 0


def test_put_many_is_all_or_nothing(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    items = [(key_of(i), "m0", record_of(i)) for i in range(5)]
    with pytest.raises(TypeError):
        cache.put_many(items + [(key_of(9), "m0", {"bad": object()})])
    assert len(cache) == 0
    conn = sqlite3.connect(tmp_path / "c.sqlite")  # make SQLite fail on the last row of a batch
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON responses WHEN NEW.model = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match="refused"):
        cache.put_many(items + [(key_of(9), "boom", {})])
    assert len(cache) == 0
    cache.put_many(items)
    assert cache.get_many([key_of(i) for i in range(7)]) == {
        key_of(i): record_of(i) for i in range(5)
    }


def test_first_write_wins(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key_of(1), "m0", {"text": "first"})
    cache.put(key_of(1), "m0", {"text": "second"})
    assert cache.get(key_of(1)) == {"text": "first"}
    assert len(cache) == 1


# ------------------------------------------------------------------------------- modes
def test_bad_mode_raises_naming_it(tmp_path):
    with pytest.raises(ValueError, match="'readwrite'"):
        ResponseCache(tmp_path / "c.sqlite", mode="readwrite")


def test_mode_off_misses_and_writes_nothing(tmp_path):
    path = tmp_path / "sub" / "c.sqlite"
    cache = ResponseCache(path, mode="off")
    cache.put(key_of(1), "m0", record_of(1))
    cache.put_many([(key_of(2), "m0", record_of(2))])
    assert cache.get(key_of(1), "m0") is None
    assert cache.get_many([key_of(1), key_of(2)], "m0") == {}
    assert len(cache) == 0
    assert cache.stats() == {"m0": {"entries": 0, "hits": 0, "misses": 3}}
    cache.close()
    assert not (tmp_path / "sub").exists()


def test_mode_ro_reads_but_does_not_write(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as writer:
        writer.put(key_of(1), "m0", record_of(1))
    with ResponseCache(path, mode="ro") as reader:
        assert reader.get(key_of(1), "m0") == record_of(1)
        reader.put(key_of(2), "m0", record_of(2))
        reader.put_many([(key_of(3), "m0", record_of(3)), (key_of(4), "m0", record_of(4))])
        assert reader.skipped_puts == 3
        assert reader.get(key_of(2), "m0") is None
        assert reader.stats() == {"m0": {"entries": 1, "hits": 1, "misses": 1}}  # in memory
    with ResponseCache(path) as check:
        assert len(check) == 1 and check.get(key_of(2)) is None
        assert check.stats() == {
            "m0": {"entries": 1, "hits": 0, "misses": 0}
        }  # ro counts never persisted


def test_mode_ro_on_missing_file_reads_empty_and_creates_nothing(tmp_path):
    cache = ResponseCache(tmp_path / "nope.sqlite", mode="ro")
    assert cache.get(key_of(1), "m0") is None and len(cache) == 0
    cache.close()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ foreign or corrupt files
def test_garbage_file_raises_cache_error_naming_path(tmp_path):
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is certainly not a database\n" * 200)
    for mode in ("rw", "ro"):
        with pytest.raises(CacheError, match="garbage.sqlite"):
            ResponseCache(path, mode=mode)
    assert path.read_bytes().startswith(b"this is certainly")  # left untouched


def test_corrupt_sqlite_file_raises_cache_error_naming_path(tmp_path):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    with pytest.raises(CacheError, match="corrupt.sqlite"):
        ResponseCache(path)


def test_foreign_sqlite_database_raises_cache_error_naming_path(tmp_path):
    path = tmp_path / "other_app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    for mode in ("rw", "ro"):
        with pytest.raises(CacheError, match=r"other_app\.db.*another application"):
            ResponseCache(path, mode=mode)
    with sqlite3.connect(path) as conn:  # not converted or altered
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["users"]
    conn.close()


def test_other_app_meta_table_or_schema_version_is_refused(tmp_path):
    foreign, newer = tmp_path / "foreign.sqlite", tmp_path / "newer.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema', 'someone.else')")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match="foreign.sqlite"):
        ResponseCache(foreign)
    ResponseCache(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match=r"newer\.sqlite.*version '99'"):
        ResponseCache(newer)


# -------------------------------------------------------------------------------- stats
def test_stats_count_hits_and_misses_per_model_and_persist(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    cache.put_many(
        [(key_of(i, "a"), "a", record_of(i)) for i in range(3)]
        + [(key_of(0, "b"), "b", record_of(0))]
    )
    cache.get(key_of(0, "a"), "a")
    cache.get(key_of(1, "a"), "a")
    cache.get(key_of(9, "a"), "a")
    cache.get(key_of(9, "b"), "b")
    cache.get_many([key_of(0, "b"), key_of(5, "b"), key_of(6, "b")], "b")
    cache.get(key_of(2, "a"))  # a hit without a model name counts for the stored model
    expected = {
        "a": {"entries": 3, "hits": 3, "misses": 1},
        "b": {"entries": 1, "hits": 1, "misses": 3},
    }
    assert cache.stats() == expected
    cache.get(key_of(0, "a"), "a")
    cache.close()
    expected["a"]["hits"] += 1
    with ResponseCache(path) as other:
        assert other.stats() == expected  # written on close, seen by a fresh connection


def test_counts_are_flushed_in_batches_without_close(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, flush_every=10)
    for i in range(25):
        cache.get(key_of(i), "m0")
    with ResponseCache(path, mode="ro") as peek:
        assert peek.stats() == {"m0": {"entries": 0, "hits": 0, "misses": 20}}
    assert cache.stats()["m0"]["misses"] == 25


def test_format_stats_renders_rows_totals_and_hit_rates():
    text = format_stats(
        {
            "alpha": {"entries": 3, "hits": 3, "misses": 1},
            "b": {"entries": 0, "hits": 0, "misses": 0},
        }
    )
    lines = text.splitlines()
    assert lines[0].split() == ["model", "entries", "hits", "misses", "hit", "rate"]
    assert lines[2].split() == ["alpha", "3", "3", "1", "75.0%"]
    assert lines[3].split() == ["b", "0", "0", "0", "-"]
    assert lines[-1].split() == ["total", "3", "3", "1", "75.0%"]
    assert format_stats({}).splitlines()[-1].split() == ["total", "0", "0", "0", "-"]


# ---------------------------------------------------------------------- lifecycle, pickle
def test_close_is_idempotent_and_cache_reopens(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key_of(1), "m0", record_of(1))
    cache.close()
    cache.close()
    assert cache.get(key_of(1)) == record_of(1)
    with cache as same:
        assert same is cache
    cache.close()


def test_pickled_cache_reopens_and_keeps_unflushed_counts_with_the_original(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key_of(1), "m0", record_of(1))
    cache.get(key_of(2), "m0")  # pending miss, not yet on disk
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.get(key_of(1), "m0") == record_of(1)
    clone.close()
    assert cache.stats()["m0"] == {"entries": 1, "hits": 1, "misses": 1}  # no double counting
    cache.close()


# ----------------------------------------------------------------------- many processes
N_WORKERS, N_PUTS, N_SHARED, BATCH = 4, 200, 50, 5


def _concurrent_writer(cache: ResponseCache, worker: int, barrier) -> None:
    model = f"model-{worker}"
    barrier.wait(10)
    own = [(key_of(i, model), model, record_of(i)) for i in range(N_PUTS - N_SHARED)]
    shared = [(key_of(i, "shared"), "shared", record_of(i)) for i in range(N_SHARED)]
    items = shared[worker::2] + own + shared  # different orders, overlapping keys
    for start in range(0, len(items), BATCH):
        cache.put_many(items[start : start + BATCH])
    assert len(cache.get_many([k for k, _, _ in own], model)) == len(own)
    for i in range(10):
        assert cache.get(key_of(10_000 + i, model), model) is None
    cache.close()


def test_concurrent_processes_write_disjoint_and_overlapping_keys(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    cache.put(
        key_of(0, "parent"), "parent", record_of(0)
    )  # the children inherit an open connection
    barrier = FORK.Barrier(N_WORKERS)
    procs = [
        FORK.Process(target=_concurrent_writer, args=(cache, w, barrier)) for w in range(N_WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * N_WORKERS
    own = N_PUTS - N_SHARED
    stats = cache.stats()  # before the checks below add hits of their own
    for w in range(N_WORKERS):
        assert stats[f"model-{w}"] == {"entries": own, "hits": own, "misses": 10}
    assert stats["shared"]["entries"] == N_SHARED
    assert cache.get(key_of(0, "parent"), "parent") == record_of(0)  # parent connection still fine
    for w in range(N_WORKERS):
        model = f"model-{w}"
        got = cache.get_many([key_of(i, model) for i in range(own)])
        assert got == {key_of(i, model): record_of(i) for i in range(own)}
    assert cache.get_many([key_of(i, "shared") for i in range(N_SHARED)]) == {
        key_of(i, "shared"): record_of(i) for i in range(N_SHARED)
    }
    assert len(cache) == 1 + N_WORKERS * own + N_SHARED
    cache.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _first_opener(path: str, worker: int, barrier) -> None:
    barrier.wait(10)
    with ResponseCache(path) as cache:
        cache.put(key_of(worker), "m0", record_of(worker))


def test_processes_creating_the_same_new_file_at_once(tmp_path):
    path = tmp_path / "fresh" / "c.sqlite"
    barrier = FORK.Barrier(N_WORKERS)
    procs = [
        FORK.Process(target=_first_opener, args=(str(path), w, barrier)) for w in range(N_WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * N_WORKERS
    with ResponseCache(path) as cache:
        assert cache.get_many([key_of(w) for w in range(N_WORKERS)]) == {
            key_of(w): record_of(w) for w in range(N_WORKERS)
        }


def _spawned_reader(cache: ResponseCache, model: str) -> None:
    for i in range(5):
        cache.get(key_of(i), model)  # keys 0..2 exist: 3 hits, 2 misses
    cache.close()


def test_stats_add_up_across_spawned_processes(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put_many([(key_of(i), "m0", record_of(i)) for i in range(3)])
    ctx = mp.get_context("spawn")  # the cache travels pickled, as to a SubprocVecEnv worker
    procs = [ctx.Process(target=_spawned_reader, args=(cache, m)) for m in ("m0", "m0", "m1")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    stats = cache.stats()
    assert stats["m0"] == {"entries": 3, "hits": 6, "misses": 4}
    assert stats["m1"] == {"entries": 0, "hits": 3, "misses": 2}
    cache.close()


def _batches(start: int):
    """The writer's schedule: a 4-key put_many, then two single puts, repeated."""
    i = start
    while True:
        if (i - start) % 6 == 0:
            yield list(range(i, i + 4))
            i += 4
        else:
            yield [i]
            i += 1


def _tight_writer(path: str, log_path: str, start: int) -> None:
    cache = ResponseCache(path)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    for batch in _batches(start):
        items = [(key_of(j, "k"), "k", record_of(j, pad=4000)) for j in batch]
        if len(items) == 1:
            cache.put(*items[0])
        else:
            cache.put_many(items)
        os.write(log, (" ".join(map(str, batch)) + "\n").encode())  # only after the commit returned


def test_sigkill_mid_write_keeps_every_committed_record(tmp_path):
    path, log_path = tmp_path / "c.sqlite", tmp_path / "committed.log"
    ResponseCache(path).close()
    starts = (0, 100_000, 200_000)
    for start, wait_lines in zip(starts, (40, 150, 400)):
        done = len(log_path.read_bytes().splitlines()) if log_path.exists() else 0
        proc = FORK.Process(target=_tight_writer, args=(str(path), str(log_path), start))
        proc.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if log_path.exists() and len(log_path.read_bytes().splitlines()) >= done + wait_lines:
                break
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL, f"writer from {start} ended before the kill"

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    committed = [int(i) for line in log_path.read_text().splitlines() for i in line.split()]
    assert len(committed) > 500
    with ResponseCache(path) as cache:
        assert cache.get_many([key_of(i, "k") for i in committed]) == {
            key_of(i, "k"): record_of(i, pad=4000) for i in committed
        }
        for start in starts:  # the batch in flight at the kill is stored completely or not at all
            last = max(i for i in committed if start <= i < start + 100_000)
            for batch in _batches(start):
                present = {key_of(j, "k") in cache.get_many([key_of(j, "k")]) for j in batch}
                assert len(present) == 1, f"batch {batch} is only partly stored"
                if batch[0] > last + 20:
                    break

"""How much prefill append-only dialogue prompts could save: measured on real episodes.

Plays ``--episodes`` Teacher–Student episodes per task (HotpotQA, MMLU; questions 0..N-1 of
``--split``, greedy, seeded) through the normal vector env (``LLMRouting-<task>-Assign-v0``,
every episode of a task in lockstep rounds, one batch per role and round, as the builder and
HAPS play them) with ``--model`` on both roles. Every model call is recorded where the pool
receives it (``LLMPool.generate`` / ``LLMPool.score``, wrapped here; nothing in the library
changes), as token ids, and three counts are taken per call:

- **prompt tokens**: the tokens of the prompt as the backend renders it.
- **prefilled today**: the tokens the transformers backend runs for it, replayed on the
  token ids alone: a row reads the longest prefix (at least ``prefix_min_tokens``) it shares
  with another row of its batch or that the ``PrefixStore`` holds from an earlier batch; a
  shared prefix the store lacks is computed once (extending its longest stored prefix) and
  kept. Scoring passes whose choices are one token each take that path too; others run one
  plain pass per choice (prompt + choice). Each env of the vector env has its own pool, so
  its own store, and a round runs through the pool of the first env still playing: the
  replay keeps one store per pool. On a cold cache the replay is checked against the
  backends' own counters (``ModelProfile.prefill_tokens`` and the stores'
  ``prefilled_tokens``).
- **prefilled if append-only**: an estimate of what the call would cost if each row (one
  episode's one role on one model) kept its keys and values across turns and each prompt
  were laid out as the previous prompt + the previous output + what is new. The first call
  of a row costs what it costs today. A later generation call costs the *new* tokens of its
  user message plus the chat wrapper that appending a turn needs (closing the previous
  reply, a user header, an assistant header and the response prefix). The new tokens are
  found by a greedy LZ77 parse of the user message's tokens against the row's previous
  prompt + output (and against the message itself): runs of at least ``--min-run`` tokens
  found there are already in the row's cache; every other token is new
  (``new_tokens``). So a note that restates an earlier paragraph costs nothing, a paragraph
  shown twice in one prompt costs once, and short coincidental matches (under
  ``--min-run`` tokens) still count as new. A scoring pass reads the row's cache cut back to
  its longest common prefix with the row's last prompt + output and runs the rest (at least
  one token), plus each choice's tokens where today runs a pass per choice.

The estimate is an upper bound on the saving: content is assumed reusable wherever it
sits in the earlier context, the notes that the prompts drop (bounded memories) stay in the
cache at no cost, and attention over the longer contexts is not charged.

Time: the episodes' wall time, the generation calls' time outside decoding (prefill, store
fills, batch layout; ``ModelProfile.decode_s`` is the decoding part) and the scoring passes'
time are measured in the same run (the backend's profile, as in
``benchmarks/episode_throughput.py``). The speed-up bound is Amdahl's: that prefill-side time
shrunk by the token ratio of its kind (generation, scoring), the rest unchanged.

    python benchmarks/turn_prefill_reuse.py                      # 8 episodes per task, SmolLM2
    python benchmarks/turn_prefill_reuse.py --episodes 2 --model tiny-llama
    python benchmarks/turn_prefill_reuse.py --cache /tmp/turns.sqlite   # a second run replays

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's profile helpers

TASKS = {"hotpotqa": "LLMRouting-HotpotQA-Assign-v0", "mmlu": "LLMRouting-MMLU-Assign-v0"}
SPLITS = {"hotpotqa": "valid", "mmlu": "val"}  # each data set's validation split
MIN_RUN = 4


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """The length of the longest common prefix of two token lists."""
    return len(os.path.commonprefix([list(a), list(b)]))


def new_tokens(content: Sequence[int], context: Sequence[int], min_run: int = MIN_RUN) -> int:
    """Tokens of ``content`` that a greedy LZ77 parse cannot copy from ``context`` or from
    earlier in ``content``, in runs of at least ``min_run`` tokens.

    At each position the longest run found in the source (``context`` then the part of
    ``content`` already parsed) is copied when it reaches ``min_run``; otherwise one token
    is new and the parse moves on. Hand-written: difflib's matcher pairs each block once and
    in order, which would count a moved note as new and a paragraph shown twice twice.
    """
    if min_run < 1:
        raise ValueError(f"new_tokens: min_run must be >= 1, got {min_run}.")
    content, source = list(content), list(context) + list(content)
    offset = len(context)
    starts: dict[tuple[int, ...], list[int]] = defaultdict(list)  # min_run-gram -> where it starts
    indexed = 0  # grams of source starting before this position are in ``starts``

    def index_up_to(end: int) -> None:
        nonlocal indexed
        for p in range(indexed, min(end, len(source) - min_run + 1)):
            starts[tuple(source[p : p + min_run])].append(p)
        indexed = max(indexed, end)

    index_up_to(offset)
    count, i = 0, 0
    while i < len(content):
        best = 0
        for p in starts.get(tuple(content[i : i + min_run]), ()):
            length = min_run
            while i + length < len(content) and source[p + length] == content[i + length]:
                length += 1
            best = max(best, length)
        if best >= min_run:
            step = best
        else:
            step, count = 1, count + 1
        index_up_to(offset + i + step)  # grams may overlap the copy itself, as in LZ77
        i += step
    return count


class PrefixStoreReplay:
    """The transformers backend's prefix sharing, replayed on token ids alone.

    Mirrors ``TransformersBackend._shared_prefixes`` and ``prefilled_batch``/``PrefixStore.get``
    (keys only; nothing is evicted: the few prefixes of these runs stay far under the store's
    512 MB), so that a call's prefilled tokens can be counted whatever the cache held.
    """

    def __init__(self, min_tokens: int = 32):
        self.min_tokens = min_tokens
        self.keys: set[tuple[int, ...]] = set()
        self.filled = 0  # tokens run to fill the store, as PrefixStore.prefilled_tokens counts them

    def longest(self, prompt: Sequence[int]) -> int:
        """The longest stored prefix of ``prompt`` that leaves a token to run."""
        prompt = tuple(prompt)
        return max((len(k) for k in self.keys if len(k) < len(prompt) and prompt[: len(k)] == k), default=0)

    def batch(self, prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
        """Per row, (tokens run after its prefix, tokens run to fill the store for it)."""
        from routing_gym.llm.backends.prefix_sharing import shared_prefix_lengths

        shared = shared_prefix_lengths(prompts, self.min_tokens)
        stored = [self.longest(p) for p in prompts]
        lengths = [max(a, b if b >= self.min_tokens else 0) for a, b in zip(shared, stored)]
        rest = [len(p) - n for p, n in zip(prompts, lengths)]
        fills = [0] * len(prompts)
        for row, (prompt, length) in enumerate(zip(prompts, lengths)):
            key = tuple(prompt[:length])
            if length and key not in self.keys:  # computed once, for the first row that needs it
                fills[row] = length - self.longest(key)
                self.filled += fills[row]
                self.keys.add(key)
        return rest, fills


@dataclasses.dataclass
class Call:
    """One request as the pool received it, with what it costs today and append-only."""

    kind: str  # "generation" or "scoring"
    row: tuple  # (model, system prompt, episode)
    prompt: list[int]
    user: list[int]  # the user message's tokens alone
    completion: list[int]
    choices: list[list[int]]
    prefix_tokens: int = 0  # the response prefix's tokens at the prompt's end
    after_prefix: int = 0  # today: tokens run after the row's shared or stored prefix
    today: int = 0
    append_only: int = 0


class Recorder:
    """Wraps ``LLMPool.generate``/``score`` and the backend's methods: every call's tokens and times."""

    def __init__(self, questions: list[str]):
        self.questions = questions
        self.calls: list[Call] = []
        self.batches: list[tuple[str, int, list[int]]] = []  # (kind, which pool, indices into calls), in order
        self.seconds = {"generate": 0.0, "score": 0.0}

    def row(self, request) -> tuple:
        user = request.messages[-1]["content"]
        found = [i for i, q in enumerate(self.questions) if user.startswith(q)]
        if len(found) != 1:
            raise RuntimeError(f"cannot tell the episode of a prompt that starts {user[:80]!r} ({len(found)} matches)")
        return request.model, request.messages[0]["content"], found[0]

    @contextlib.contextmanager
    def wrapped(self):
        from routing_gym.llm.backends.transformers_backend import TransformersBackend
        from routing_gym.llm.pool import LLMPool

        recorder = self
        generate, score = LLMPool.generate, LLMPool.score
        backend_generate, backend_score = TransformersBackend.generate, TransformersBackend.score_choices_batch

        def pool_generate(pool, requests):
            results = generate(pool, requests)
            indices = []
            for request, result in zip(requests, results):
                backend = pool.backend(request.model)
                bare = len(backend.prompt_ids(dataclasses.replace(request, response_prefix="")))
                recorder.calls.append(Call("generation", recorder.row(request), list(result.prompt_ids),
                                           tokens(backend.tokenizer, request.messages[-1]["content"]),
                                           list(result.completion_ids), [],
                                           prefix_tokens=len(result.prompt_ids) - bare))
                indices.append(len(recorder.calls) - 1)
            recorder.batches.append(("generation", id(pool), indices))
            return results

        def pool_score(pool, requests):
            results = score(pool, requests)
            indices = []
            for scoring in requests:
                backend = pool.backend(scoring.model)
                recorder.calls.append(Call("scoring", recorder.row(scoring.request), backend.prompt_ids(scoring.request),
                                           tokens(backend.tokenizer, scoring.request.messages[-1]["content"]), [],
                                           [tokens(backend.tokenizer, c) for c in scoring.choices]))
                indices.append(len(recorder.calls) - 1)
            recorder.batches.append(("scoring", id(pool), indices))
            return results

        def timed(function, label):
            def run(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    recorder.seconds[label] += time.perf_counter() - start
            return run

        LLMPool.generate, LLMPool.score = pool_generate, pool_score
        TransformersBackend.generate = timed(backend_generate, "generate")
        TransformersBackend.score_choices_batch = timed(backend_score, "score")
        try:
            yield self
        finally:
            LLMPool.generate, LLMPool.score = generate, score
            TransformersBackend.generate, TransformersBackend.score_choices_batch = backend_generate, backend_score


def tokens(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def turn_wrapper_tokens(backend) -> int:
    """Chat-template tokens that appending one user turn adds around the reply and the message
    (closing the reply, user header, assistant header), measured with the model's template."""
    from routing_gym.llm.requests import GenerationRequest

    one = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    two = one + [{"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}]
    lengths = [len(backend.prompt_ids(GenerationRequest(model=backend.spec.name, messages=m))) for m in (one, two)]
    return lengths[1] - lengths[0] - len(tokens(backend.tokenizer, "a")) - len(tokens(backend.tokenizer, "v"))


def price_calls(recorder: Recorder, max_batch_size: int, min_tokens: int, min_run: int, wrapper: dict) -> int:
    """Fill each call's ``today`` (the stores replayed batch by batch) and ``append_only``;
    return the tokens run to fill the stores."""
    # Each env of a vector env has its own pool, hence its own backend and store; a round runs
    # through the pool of the first env still playing, so the replay keeps one store per pool.
    stores: dict[tuple[int, str], PrefixStoreReplay] = {}
    calls = recorder.calls
    for kind, pool, indices in recorder.batches:
        by_model: dict[str, list[int]] = defaultdict(list)
        for i in indices:
            by_model[calls[i].row[0]].append(i)
        for model, members in by_model.items():
            store = stores.setdefault((pool, model), PrefixStoreReplay(min_tokens))
            for batch in pool_batches(calls, members, kind, max_batch_size):
                single = [i for i in batch if kind == "generation" or all(len(c) == 1 for c in calls[i].choices)]
                rest, fills = store.batch([calls[i].prompt for i in single])
                for i, r, f in zip(single, rest, fills):
                    calls[i].today, calls[i].after_prefix = r + f, r
                for i in set(batch) - set(single):  # one plain pass per choice
                    calls[i].today = sum(len(calls[i].prompt) + len(c) for c in calls[i].choices)
    last: dict[tuple, Call] = {}  # the row's last generation call
    for call in calls:
        previous = last.get(call.row)
        if previous is None:  # a row's first call has no cache of its own
            call.append_only = call.today
        else:
            context = previous.prompt + previous.completion
            if call.kind == "generation":
                call.append_only = new_tokens(call.user, context, min_run) + wrapper[call.row[0]] + call.prefix_tokens
            else:  # the row's cache cut back to what the scoring prompt shares with it
                call.append_only = max(1, len(call.prompt) - common_prefix_length(call.prompt, context))
                if not all(len(c) == 1 for c in call.choices):
                    call.append_only += sum(len(c) for c in call.choices)
        if call.kind == "generation":
            last[call.row] = call
    return sum(store.filled for store in stores.values())


def pool_batches(calls: list[Call], members: list[int], kind: str, max_batch_size: int) -> list[list[int]]:
    """The batches the pool sends for one model's requests of one call (``LLMPool._generate_bucket``
    sorts by prompt length and cuts every ``max_batch_size``; ``_score_bucket`` cuts at
    ``max_batch_size`` choice rows, in order)."""
    if kind == "generation":
        order = sorted(members, key=lambda i: len(calls[i].prompt))
        return [order[s : s + max_batch_size] for s in range(0, len(order), max_batch_size)]
    batches: list[list[int]] = [[]]
    for i in members:
        rows = sum(len(calls[j].choices) for j in batches[-1])
        if batches[-1] and rows + len(calls[i].choices) > max_batch_size:
            batches.append([])
        batches[-1].append(i)
    return [b for b in batches if b]


def play(task: str, model: str, episodes: int, split: str, seed: int, cache: str | None, max_batch_size: int,
         min_run: int) -> dict:
    """The task's episodes in one vector env step, recorded; their calls, times and profile."""
    import gymnasium as gym
    import numpy as np
    from episode_throughput import profiles

    import routing_gym  # noqa: F401  (registers the IDs)
    from routing_gym.llm.backends import transformers_backend

    config = {"models": [model], "split": split, "limit": episodes, "shuffle": False, "record_text": True,
              "cache_path": cache, "cache_mode": "rw" if cache else "off", "max_batch_size": max_batch_size}
    vec = gym.make_vec(TASKS[task], num_envs=episodes, vectorization_mode="vector_entry_point", config=config)
    try:
        _, infos = vec.reset(seed=seed, options=[{"index": i} for i in range(episodes)])
        recorder = Recorder([str(q).strip() for q in infos["question"]])
        transformers_backend.reset_profiles()
        with recorder.wrapped():
            start = time.perf_counter()
            _, _, terminated, _, infos = vec.step(np.zeros(vec.action_space.shape, dtype=vec.action_space.dtype))
            wall = time.perf_counter() - start
        if not terminated.all():
            raise RuntimeError(f"{task}: a whole-episode step left an episode unfinished")
        backend = vec.envs[0].engine.pool.backend(model)
        min_tokens = int(backend.spec.options.get("prefix_min_tokens", 32))
        replayed_fills = price_calls(recorder, max_batch_size, min_tokens, min_run, {model: turn_wrapper_tokens(backend)})
        measured_fills = sum(env.engine.pool.backend(model).prefix_store.prefilled_tokens for env in vec.envs)
        final = infos["final_info"]
        return {"calls": recorder.calls, "wall_s": wall, "seconds": dict(recorder.seconds), "profile": profiles(),
                "replayed_store_fills": replayed_fills, "measured_store_fills": measured_fills,
                "perf": [float(x) for x in final["perf"]]}
    finally:
        vec.close()


def summarize(task: str, run: dict) -> dict:
    """Print the task's table, the replay check and the Amdahl bound; return the figures."""
    calls = run["calls"]
    kinds = {}
    print(f"\n{task}: {len({c.row[2] for c in calls})} episodes, {len({c.row for c in calls})} rows, "
          f"wall {run['wall_s']:.1f} s")
    print(f"{'calls':<12}{'n':>5}{'prompt tok':>12}{'today':>9}{'append-only':>13}{'today / append-only':>21}")
    for kind in ("generation", "scoring", "all"):
        chosen = [c for c in calls if kind in ("all", c.kind)]
        if not chosen:
            continue
        prompt = sum(len(c.prompt) for c in chosen)
        today = sum(c.today for c in chosen)
        append = sum(c.append_only for c in chosen)
        ratio = today / append if append else float("nan")
        kinds[kind] = {"calls": len(chosen), "prompt_tokens": prompt, "prefilled_today": today,
                       "prefilled_append_only": append, "ratio": ratio}
        print(f"{kind:<12}{len(chosen):>5}{prompt:>12}{today:>9}{append:>13}{ratio:>20.2f}x")
    profile = run["profile"]
    counted = sum(p["prefill_tokens"] for p in profile.values())
    generation_rest = sum(c.after_prefix for c in calls if c.kind == "generation")
    if run["seconds"]["generate"] > 0:  # on a warm cache the backends ran nothing to check against
        print(f"  replay check: tokens run by generate {generation_rest} replayed, {counted} counted by the "
              f"backend; store fills {run['replayed_store_fills']} replayed, {run['measured_store_fills']} counted")
    out = {"by_kind": kinds, "mean_perf": sum(run["perf"]) / len(run["perf"]), "wall_s": run["wall_s"],
           "replay_check": {"generation_rest_replayed": generation_rest, "generation_rest_counted": counted,
                            "store_fills_replayed": run["replayed_store_fills"],
                            "store_fills_counted": run["measured_store_fills"]}}
    decode = sum(p["decode_s"] for p in profile.values())
    generation_prefill = run["seconds"]["generate"] - decode
    scoring = run["seconds"]["score"]
    if run["seconds"]["generate"] <= 0:
        print("  time: every call came from the cache, so no time was measured")
        return out
    # Amdahl: each kind's prefill-side time shrinks by its token ratio, the rest stays.
    saved = {"generation": generation_prefill * (1 - 1 / kinds["generation"]["ratio"]),
             "scoring": scoring * (1 - 1 / kinds["scoring"]["ratio"]) if "scoring" in kinds else 0.0}
    saved["both"] = saved["generation"] + saved["scoring"]
    bound = {kind: run["wall_s"] / (run["wall_s"] - s) for kind, s in saved.items()}
    share = (generation_prefill + scoring) / run["wall_s"]
    print(f"  time: episodes {run['wall_s']:.1f} s = generation outside decoding {generation_prefill:.1f} s + decoding "
          f"{decode:.1f} s + scoring passes {scoring:.1f} s + the rest {run['wall_s'] - run['seconds']['generate'] - scoring:.1f} s")
    print(f"  prefill-side share {100 * share:.0f}%. Episode speed-up at most (Amdahl): "
          f"{bound['generation']:.2f}x from append-only generation prompts, {bound['scoring']:.2f}x from scoring "
          f"passes that read their row's last prompt, {bound['both']:.2f}x both")
    out.update(generation_outside_decode_s=generation_prefill, decode_s=decode, scoring_s=scoring,
               prefill_share=share, saved_s_bound=saved, speedup_bound=bound)
    return out


def main(argv: list[str] | None = None) -> int:
    """Play, price and print each task; the last line is one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    parser.add_argument("--model", default="smollm2-135m", help="the model of both roles")
    parser.add_argument("--episodes", type=int, default=8, help="episodes per task (questions 0..N-1)")
    parser.add_argument("--split", default=None, help=f"the split of every task (default {SPLITS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-run", type=int, default=MIN_RUN, help="shortest run of tokens counted as reused")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--cache", default=None, help="a response cache to write (and replay on a second run); default off")
    args = parser.parse_args(argv)
    for name in ("episodes", "min_run", "max_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    summary: dict = {"model": args.model, "episodes": args.episodes, "split": args.split, "seed": args.seed,
                     "min_run": args.min_run}
    for task in args.tasks:
        run = play(task, args.model, args.episodes, args.split or SPLITS[task], args.seed, args.cache, args.max_batch_size,
                   args.min_run)
        summary[task] = summarize(task, run)
    print(json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

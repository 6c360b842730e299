"""Prefix sharing: one batch of dialogue turns with the shared prompt prefix prefilled once,
against the same batch prefilled row by row, and the next turn's batch with the prefixes
already in the store.

Usage: python benchmarks/prefix_sharing.py [--models ...] [--questions 4] [--variants 4]
                                           [--new-tokens 8] [--repeats 2]

The batch mimics a lockstep round of the HotpotQA Student: every row opens with the
protocol's own system prompt and a question, and ``--variants`` rows per question differ
in their notes (the earlier turns). "next turn" is a second batch on the same questions
with other notes, run right after the shared one, so its prefixes come from the store. The
modes run in one process, alternating, so the ratios hold on a noisy machine. Also counts how many rows' greedy
completions are identical token for token. Prints a table and, as its last line, one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from routing_gym.llm import GenerationRequest, LLMPool
from routing_gym.llm.spec import BUILTIN_SPECS, REAL_MODELS
from routing_gym.protocols.dialogue import load_prompts

QUESTIONS = [
    "Which city hosted the first modern Olympic Games, and in which country is it?",
    "Who wrote the novel that the film Blade Runner is based on?",
    "Are the Danube and the Rhine rivers both longer than 1,000 km?",
    "What instrument did the composer of The Four Seasons play?",
    "Which element has the chemical symbol that comes first in the alphabet?",
    "In which year did the ship that Ernest Shackleton sailed to Antarctica sink?",
]
NOTES = [
    "Read: the paragraph says the games were held in 1896.",
    "Proposed answer: Athens. Teacher: Rethink, the country is missing.",
    "Read: the author was born in Chicago in 1928.",
    "Teacher: Continue, the search was useful.",
    "Read: the river flows through ten countries.",
    "Proposed answer: yes. Teacher: Rethink, the second length is not known yet.",
]


def requests_for(model: str, questions: int, variants: int, new_tokens: int, turn: int = 0) -> list[GenerationRequest]:
    system = load_prompts("hotpotqa_student")["system"].template
    rows = []
    for q in range(questions):
        for v in range(variants):
            notes = "\n".join(NOTES[(q + v + i + turn) % len(NOTES)] for i in range(v + 1 + turn))
            user = f"Question: {QUESTIONS[q % len(QUESTIONS)]}\n\nSearches left: {3 - v % 3}\nYour notes:\n{notes}\n\n" \
                   "Write your next Thought and Action."
            rows.append(GenerationRequest(model=model, messages=[{"role": "system", "content": system},
                                                                  {"role": "user", "content": user}],
                                          max_new_tokens=new_tokens))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[m for m in REAL_MODELS if m != "gemma3-270m"],
                        help="models whose type supports prefix sharing (Gemma-3's sliding window does not)")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    figures = {}
    for model in args.models:
        base = BUILTIN_SPECS[model]
        plain = replace(base, options={**base.options, "prefix_sharing": False})
        pool = LLMPool([base], cache_mode="off", max_batch_size=args.questions * args.variants)
        backend = pool.backend(model)
        requests = requests_for(model, args.questions, args.variants, args.new_tokens)
        prompts = [backend.prompt_ids(r) for r in requests]
        lengths = backend._shared_prefixes(prompts, [None] * len(prompts))
        following = requests_for(model, args.questions, args.variants, args.new_tokens, turn=1)
        following_prompts = [backend.prompt_ids(r) for r in following]
        backend.generate(requests[:2], prompts[:2])  # load and warm up, untimed
        seconds = {"plain": [], "shared": [], "next_plain": [], "next_stored": []}
        outputs = {}
        for _ in range(args.repeats):
            backend._prefix_store = None  # every repeat starts with an empty store
            for mode, spec, batch, ids in (("plain", plain, requests, prompts), ("shared", base, requests, prompts),
                                           ("next_plain", plain, following, following_prompts),
                                           ("next_stored", base, following, following_prompts)):
                backend.spec = spec
                start = time.perf_counter()
                completions = backend.generate(batch, ids)
                seconds[mode].append(time.perf_counter() - start)
                outputs[mode] = [c.completion_ids for c in completions]
        backend.spec = base
        best = {mode: min(values) for mode, values in seconds.items()}
        prompt_tokens = sum(len(p) for p in prompts)
        distinct_prefixes = {tuple(p[:n]) for p, n in zip(prompts, lengths) if n}
        prefilled = prompt_tokens - sum(lengths) + sum(len(k) for k in distinct_prefixes)
        same = sum(a == b for a, b in zip(outputs["shared"], outputs["plain"]))
        same += sum(a == b for a, b in zip(outputs["next_stored"], outputs["next_plain"]))
        figures[model] = {
            "rows": len(requests),
            "prompt_tokens": prompt_tokens,
            "prefilled_tokens_shared": prefilled,
            "plain_s": round(best["plain"], 3),
            "shared_s": round(best["shared"], 3),
            "speedup": round(best["plain"] / best["shared"], 2),
            "next_turn_plain_s": round(best["next_plain"], 3),
            "next_turn_stored_s": round(best["next_stored"], 3),
            "next_turn_speedup": round(best["next_plain"] / best["next_stored"], 2),
            "identical_rows": same,
            "rows_compared": 2 * len(requests),
        }
        pool.close()

    print(f"{'model':<22}{'rows':>6}{'prompt tok':>12}{'prefilled':>11}{'plain s':>9}{'shared s':>10}"
          f"{'speed-up':>10}{'next plain':>12}{'next stored':>13}{'speed-up':>10}{'identical':>11}")
    for model, f in figures.items():
        print(f"{model:<22}{f['rows']:>6}{f['prompt_tokens']:>12}{f['prefilled_tokens_shared']:>11}"
              f"{f['plain_s']:>9.2f}{f['shared_s']:>10.2f}{f['speedup']:>9.2f}x"
              f"{f['next_turn_plain_s']:>12.2f}{f['next_turn_stored_s']:>13.2f}{f['next_turn_speedup']:>9.2f}x"
              f"{f['identical_rows']:>8}/{f['rows_compared']}")
    print(json.dumps({"benchmark": "prefix_sharing", "new_tokens": args.new_tokens,
                      "threads": torch.get_num_threads(), "models": figures}))


if __name__ == "__main__":
    main()

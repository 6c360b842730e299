"""Run many Teacher–Student episodes together, one batched pool call per round of turns."""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from routing_gym.llm.lora import LoRAAdapter
from routing_gym.llm.pool import LLMPool
from routing_gym.protocols.base import EpisodeState, TeacherStudentProtocol


def run_lockstep(
    protocol: TeacherStudentProtocol,
    pool: LLMPool,
    states: Sequence[EpisodeState],
    assignments: Sequence[Mapping[str, str]],
    seeds: Sequence[int],
    adapters: Sequence[Mapping[str, LoRAAdapter]] | None = None,
) -> list[float]:
    """Play each episode to its end with a fixed model per role (and optional per-model LoRA).

    The k-th turn of every unfinished episode runs in one ``pool.generate`` call, so each
    model sees one large batch per round. Returns each episode's total cost (USD).
    """
    costs = [0.0] * len(states)
    while True:
        live = [i for i, s in enumerate(states) if not s.done and len(s.turns) < protocol.max_turns]
        if not live:
            return costs
        requests = []
        for i in live:
            model = assignments[i][protocol.next_role(states[i])]
            request = protocol.request(states[i], model, seed=seeds[i] + len(states[i].turns))
            adapter = adapters[i].get(model) if adapters is not None else None
            if adapter is not None:
                request = dataclasses.replace(request, adapter=adapter)
            requests.append(request)
        for i, request, result in zip(live, requests, pool.generate(requests)):
            protocol.advance(states[i], request, result, pool)
            costs[i] += result.cost

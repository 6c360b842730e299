"""The episode engine: runs batches of episodes in lockstep, the one place protocol steps run.

An ``EpisodeEngine`` is a protocol (Teacher–Student or multi-hop), a pool and the questions.
Everything that plays episodes goes through it: every live env (a turn or a whole episode per
step, ``play_moves``), the vector env (the moves of all its envs in one batch), the exhaustive
builder (every assignment on every question), the hop-tree builder (every hop sequence of
every query) and HAPS training (the token log-probs of played episodes).

A turn has two kinds of model call, and the engine batches both across the episodes it is
given: first the generation of every episode's next turn (one ``LLMPool.generate`` call), then
the scoring passes the replies need to be read (answer-letter or verdict log-probs, one
``LLMPool.score`` call). Both are priced; a turn's cost is the sum. Only then does each
episode advance, so a protocol never calls a model itself.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

from routing_gym.llm.lora import LoRAAdapter
from routing_gym.llm.pool import LLMPool
from routing_gym.llm.requests import GenerationRequest, GenerationResult, ScoringResult
from routing_gym.protocols.base import EpisodeProtocol, EpisodeState, Turn


@dataclass(frozen=True)
class TurnJob:
    """One episode's next turn: the episode, the model that plays it, its seed, an optional LoRA."""

    state: EpisodeState
    model: str
    seed: int
    adapter: LoRAAdapter | None = None
    #: How many turns the episode had when the job was made (a job is for that turn only).
    turn_index: int = 0


@dataclass
class TurnCalls:
    """A turn's model calls, done and priced, not yet applied to its episode.

    ``scores`` are the results of the protocol's ``scoring_requests`` for the reply, in
    order; None when they are still to be run (``EpisodeEngine.apply`` runs them then).
    """

    job: TurnJob
    request: GenerationRequest
    result: GenerationResult
    scores: list[ScoringResult] | None = None


class EpisodeEngine:
    """Runs episodes of one protocol through one pool, many at a time.

    Args:
        protocol: the task logic (prompts, parsing, scoring, when an episode ends).
        pool: the models; every generation and scoring pass goes through it (and its cache).
        examples: the questions; ``start(i)`` begins an episode on ``examples[i]``.
    """

    def __init__(self, protocol: EpisodeProtocol, pool: LLMPool, examples: Sequence[Any]):
        self.protocol = protocol
        self.pool = pool
        self.examples = examples

    # -- episodes ----------------------------------------------------------------------------
    def start(self, index: int) -> EpisodeState:
        """A fresh episode on question ``index``."""
        if not 0 <= index < len(self.examples):
            raise ValueError(f"Question index must be in [0, {len(self.examples)}), got {index}.")
        state = self.protocol.start(self.examples[index])
        state.extra["question_index"] = index
        return state

    @property
    def max_turns(self) -> int:
        """The most turns an episode can take."""
        return self.protocol.max_turns

    @property
    def max_new_tokens_per_turn(self) -> int:
        """The longest completion one turn may produce."""
        return self.protocol.max_new_tokens_per_turn

    @property
    def search_budget(self) -> int:
        """Searches an episode starts with (0 for protocols without search)."""
        return int(self.protocol.config.get("search_budget", 0) or 0)

    @property
    def temperature(self) -> float:
        """The sampling temperature of every turn (0: greedy)."""
        return float(self.protocol.config.get("temperature", 0.0))

    def is_over(self, state: EpisodeState) -> bool:
        """Whether the episode has ended (done, or at the turn cap)."""
        return state.done or len(state.turns) >= self.protocol.max_turns

    def next_role(self, state: EpisodeState) -> str:
        """The role of the next turn."""
        return self.protocol.next_role(state)

    def performance(self, state: EpisodeState) -> float:
        """The task score of the episode so far, in [0, 1]."""
        return float(self.protocol.performance(state))

    def searches_left(self, state: EpisodeState) -> int:
        """The episode's remaining search budget."""
        return self.protocol.searches_left(state)

    def context_text(self, state: EpisodeState) -> str:
        """Question plus transcript, as the observation encoder reads it."""
        return self.protocol.context_text(state)

    def render(self, state: EpisodeState) -> str:
        """The readable transcript of the episode."""
        return self.protocol.render(state)

    # -- turns -------------------------------------------------------------------------------
    def job(
        self, state: EpisodeState, model: str, seed: int, adapter: LoRAAdapter | None = None
    ) -> TurnJob:
        """The next turn of ``state``, played by ``model``."""
        if self.is_over(state):
            raise RuntimeError("The episode is over; start a new one before asking for a turn.")
        self.pool.backend(model)  # an unknown model fails here, named
        return TurnJob(state, model, int(seed), adapter, len(state.turns))

    def request(self, job: TurnJob) -> GenerationRequest:
        """The generation request of a job's turn (with its adapter, if any)."""
        request = self.protocol.request(job.state, job.model, seed=job.seed)
        if job.adapter is not None:
            request = dataclasses.replace(request, adapter=job.adapter)
        return request

    def run_calls(self, jobs: Sequence[TurnJob]) -> list[TurnCalls]:
        """Run the model calls of the jobs' turns, batched; the episodes do not advance yet."""
        return run_turn_calls([(self, job) for job in jobs])

    def apply(self, calls: TurnCalls) -> Turn:
        """Advance the episode by a turn whose calls are done (its scoring is run now if missing)."""
        job = calls.job
        if len(job.state.turns) != job.turn_index:
            raise RuntimeError("These calls are for an earlier turn of the episode; run the turn again.")
        scores = calls.scores
        if scores is None:
            scoring = self.protocol.scoring_requests(job.state, calls.request, calls.result)
            scores = self.pool.score(scoring) if scoring else []
        return self.protocol.advance(job.state, calls.request, calls.result, scores)

    def play_turns(self, jobs: Sequence[TurnJob]) -> list[Turn]:
        """Play one turn of each job (its own episode): calls batched, then each episode advances."""
        return [self.apply(calls) for calls in self.run_calls(jobs)]

    def play_episodes(
        self,
        states: Sequence[EpisodeState],
        assignments: Sequence[Mapping[str, str]],
        seeds: Sequence[int],
        adapters: Sequence[Mapping[str, LoRAAdapter]] | None = None,
        on_round: Callable[[int, int], None] | None = None,
    ) -> list[float]:
        """Play each episode to its end with a fixed model per role (and optional per-model LoRA).

        The k-th turn of every unfinished episode runs in one batched round, so each model sees
        one large batch per round. A turn's seed is the episode's seed plus the turn index.
        ``on_round(round, playing)`` is called before each round (for progress display).
        Returns each episode's total cost (USD, scoring passes included).
        """
        plays = [
            EpisodePlay(self, state, assignment, seed, adapters[i] if adapters is not None else {})
            for i, (state, assignment, seed) in enumerate(zip(states, assignments, seeds))
        ]
        return play_episodes_together(plays, on_round)

    # -- white-box training ------------------------------------------------------------------
    def episode_logprob(
        self,
        calls: Sequence[Mapping[str, Any]],
        adapters: Mapping[str, LoRAAdapter | None] | Sequence[LoRAAdapter | None],
        include_unadapted: bool = False,
    ):
        """Differentiable log-likelihood of an episode's recorded calls under per-model LoRA
        (``LLMPool.episode_logprob``): what HAPS's joint phase trains through."""
        return self.pool.episode_logprob(calls, adapters, include_unadapted=include_unadapted)


@dataclass(frozen=True)
class EpisodePlay:
    """An episode to play to its end: its engine, state, model per role, seed and LoRA per model."""

    engine: EpisodeEngine
    state: EpisodeState
    assignment: Mapping[str, str]
    seed: int
    adapters: Mapping[str, LoRAAdapter] = dataclasses.field(default_factory=dict)


#: What one env step asks the engine for: one turn, a whole episode, or no model call (None).
Move = Union[TurnJob, EpisodePlay, None]
#: What the engine gives back for a move: the played ``Turn``, the episode's cost, or None.
Outcome = Union[Turn, float, None]


def play_moves(moves: Sequence[tuple[EpisodeEngine, Move]]) -> list[Outcome]:
    """Play the moves of any number of envs, each with its engine; every call batched.

    The turns (``TurnJob``) run through ``run_turn_calls`` (one generation and one scoring
    call per pool setup) and their episodes advance; the whole episodes (``EpisodePlay``)
    play to their ends in lockstep rounds. A None move makes no call.
    """
    out: list[Outcome] = [None] * len(moves)
    turns = [i for i, (_, move) in enumerate(moves) if isinstance(move, TurnJob)]
    if turns:
        for i, calls in zip(turns, run_turn_calls([moves[i] for i in turns])):
            out[i] = moves[i][0].apply(calls)
    episodes = [i for i, (_, move) in enumerate(moves) if isinstance(move, EpisodePlay)]
    if episodes:
        for i, cost in zip(episodes, play_episodes_together([moves[i][1] for i in episodes])):
            out[i] = cost
    return out


def play_episodes_together(
    plays: Sequence[EpisodePlay], on_round: Callable[[int, int], None] | None = None
) -> list[float]:
    """Play episodes of any number of engines to their ends in lockstep rounds.

    Each round runs the next turn of every unfinished episode through ``run_turn_calls`` (one
    generation and one scoring call per pool setup), then advances each episode. Before each
    round, ``on_round(round, playing)`` gets the round's index and how many episodes it plays.
    Returns each episode's total cost (USD, scoring passes included).
    """
    costs = [0.0] * len(plays)
    for round_index in itertools.count():
        live = [i for i, play in enumerate(plays) if not play.engine.is_over(play.state)]
        if not live:
            return costs
        if on_round is not None:
            on_round(round_index, len(live))
        pairs = []
        for i in live:
            play = plays[i]
            model = play.assignment[play.engine.next_role(play.state)]
            job = play.engine.job(play.state, model, play.seed + len(play.state.turns), play.adapters.get(model))
            pairs.append((play.engine, job))
        for i, calls in zip(live, run_turn_calls(pairs)):
            costs[i] += plays[i].engine.apply(calls).cost


def run_turn_calls(pairs: Sequence[tuple[EpisodeEngine, TurnJob]]) -> list[TurnCalls]:
    """Run the model calls of turns from any number of engines: one batched generation call and
    one batched scoring call per pool setup.

    Engines whose pools have the same models, cache file and batch size (the envs of one
    vector env) share the batch: their calls run through the first such pool.
    """
    groups: list[tuple[LLMPool, list[int]]] = []
    for index, (engine, _) in enumerate(pairs):
        for pool, members in groups:
            if _same_setup(pool, engine.pool):
                members.append(index)
                break
        else:
            groups.append((engine.pool, [index]))
    out: list[TurnCalls | None] = [None] * len(pairs)
    for pool, members in groups:
        requests = [pairs[i][0].request(pairs[i][1]) for i in members]
        results = pool.generate(requests)
        scoring, owners = [], []
        for position, (i, request, result) in enumerate(zip(members, requests, results)):
            engine, job = pairs[i]
            wanted = engine.protocol.scoring_requests(job.state, request, result)
            scoring.extend(wanted)
            owners.extend([position] * len(wanted))
        scores: list[list[ScoringResult]] = [[] for _ in members]
        for position, score in zip(owners, pool.score(scoring) if scoring else []):
            scores[position].append(score)
        for position, (i, request, result) in enumerate(zip(members, requests, results)):
            out[i] = TurnCalls(pairs[i][1], request, result, scores[position])
    return out  # type: ignore[return-value]


def _same_setup(a: LLMPool, b: LLMPool) -> bool:
    """Whether two pools answer every request alike: same model specs, cache file and batch size."""
    return a is b or (
        a.specs == b.specs
        and a.cache.path == b.cache.path
        and a.cache.mode == b.cache.mode
        and a.max_batch_size == b.max_batch_size
    )

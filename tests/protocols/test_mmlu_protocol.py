"""The MMLU Teacher–Student protocol: letter reading, Submit/Continue, round cap, scoring."""

from __future__ import annotations

import pytest

from routing_gym.data.mmlu import MMLUExample, load_mmlu
from routing_gym.llm import GenerationResult, LLMPool
from routing_gym.llm.requests import ScoringResult
from routing_gym.protocols import STUDENT, TEACHER, MMLUProtocol
from routing_gym.protocols.mmlu import ANSWER_CUE, STUDENT_PREFIX

# A self-written question in the MMLU layout.
FIXTURE = MMLUExample(
    id="fixture/0",
    subject="fixture",
    question="Which planet is closest to the Sun?",
    choices=("Venus", "Mercury", "Earth", "Mars"),
    answer="B",
)


class ScriptedPool:
    """Answers choice_logprobs with fixed numbers and records what it was asked."""

    def __init__(self, logprobs=(-3.0, -1.0, -2.0, -4.0)):
        self.logprobs = list(logprobs)
        self.calls = []

    def choice_logprobs(self, name, request, choices):
        self.calls.append((name, request, tuple(choices)))
        return self.logprobs[: len(choices)]

    def score(self, requests):
        return [
            ScoringResult(s.model, self.choice_logprobs(s.model, s.request, s.choices), 0, 0, 0.0)
            for s in requests
        ]


class NoScoringPool:
    def choice_logprobs(self, *args):
        raise AssertionError("this letter mode must not score letters")

    def score(self, *args):
        raise AssertionError("this letter mode must not score letters")


def advance(protocol, state, request, result, pool=None):
    """One turn as the episode engine plays it: the reply's scoring passes through ``pool``
    (none asked: no pool needed), then ``advance`` with their results."""
    scoring = protocol.scoring_requests(state, request, result)
    return protocol.advance(state, request, result, pool.score(scoring) if scoring else [])


def _result(request, text):
    return GenerationResult(
        model=request.model, text=text, prompt_ids=[1, 2, 3], completion_ids=[4, 5], cost=0.002
    )


def _play(protocol, state, text, pool=None, model="m"):
    request = protocol.request(state, model)
    return request, advance(protocol, state, request, _result(request, text), pool)


# -- reading the letter --------------------------------------------------------------------------
def test_logprob_mode_takes_the_argmax_letter_after_an_answer_cue():
    protocol = MMLUProtocol()
    state = protocol.start(FIXTURE)
    pool = ScriptedPool()
    request, turn = _play(protocol, state, " The closest is Venus. Answer: A", pool)
    assert turn.parsed["letter"] == "B" and turn.parsed["letter_source"] == "logprob"
    assert turn.parsed["regex_letter"] == "A"
    assert turn.parsed["letter_logprobs"] == {"A": -3.0, "B": -1.0, "C": -2.0, "D": -4.0}
    assert state.answer == "B"
    (name, scoring, choices), = pool.calls
    assert name == "m" and choices == ("A", "B", "C", "D")
    assert scoring.messages == request.messages
    assert scoring.response_prefix == STUDENT_PREFIX + " The closest is Venus. Answer: A" + ANSWER_CUE


def test_logprob_ties_go_to_the_earlier_letter():
    protocol = MMLUProtocol()
    state = protocol.start(FIXTURE)
    _, turn = _play(protocol, state, "?", ScriptedPool([-2.0, -1.0, -1.0, -5.0]))
    assert turn.parsed["letter"] == "B"


def test_regex_mode_reads_the_written_letter_and_keeps_the_last_one_when_none():
    protocol = MMLUProtocol({"letter_mode": "regex"})
    state = protocol.start(FIXTURE)
    _, turn = _play(protocol, state, " Mercury orbits nearest. Answer: B", NoScoringPool())
    assert turn.parsed == {"letter": "B", "letter_source": "regex", "regex_letter": "B"}
    _play(protocol, state, " Continue", model="t")
    _, turn = _play(protocol, state, " I am not sure at all", NoScoringPool())
    assert turn.parsed["letter"] is None and turn.parsed["letter_source"] == "none"
    assert state.answer == "B" and protocol.performance(state) == 1.0


def test_regex_then_logprob_scores_only_when_the_regex_finds_nothing():
    protocol = MMLUProtocol({"letter_mode": "regex_then_logprob"})
    state = protocol.start(FIXTURE)
    pool = ScriptedPool([-1.0, -2.0, -3.0, -4.0])
    _, turn = _play(protocol, state, " Answer: C", pool)
    assert turn.parsed["letter"] == "C" and not pool.calls
    _play(protocol, state, " Continue", model="t")
    _, turn = _play(protocol, state, " hmm", pool)
    assert turn.parsed["letter"] == "A" and turn.parsed["letter_source"] == "logprob" and len(pool.calls) == 1


# -- rounds --------------------------------------------------------------------------------------
def test_submit_ends_the_episode_and_scores_the_letter():
    protocol = MMLUProtocol({"letter_mode": "regex"})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " Answer: B")
    assert protocol.next_role(state) == TEACHER
    request, turn = _play(protocol, state, " Submit. Mercury is right.", model="t")
    assert request.response_prefix == "Verdict:"
    assert "Student's answer: B" in request.messages[-1]["content"]
    assert turn.parsed == {"verdict": "submit", "verdict_source": "text", "verdict_parsed": True,
                           "reason": "Mercury is right.", "reviewed_letter": "B"}
    assert state.done and state.extra["end_reason"] == "submitted" and protocol.performance(state) == 1.0


def test_continue_sends_the_solution_back_with_the_feedback():
    protocol = MMLUProtocol({"letter_mode": "regex"})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " Venus is hottest so closest. Answer: A")
    _, turn = _play(protocol, state, " Revise: hottest is not closest.", model="t")
    assert turn.parsed["verdict"] == "continue" and not state.done and state.rounds_done == 1
    assert protocol.performance(state) == 0.0
    prompt = protocol.request(state, "m").messages[-1]["content"]
    assert "Venus is hottest so closest." in prompt and "hottest is not closest." in prompt
    assert "Your previous answer: A" in prompt and "teacher's feedback" in prompt
    assert state.memory[STUDENT] == [
        "Round 1: I answered A.", "Teacher said Continue: hottest is not closest."
    ]
    assert state.memory[TEACHER] == ["Round 1: answer A; I said Continue."]


def test_the_round_cap_ends_the_episode_and_the_last_letter_counts():
    protocol = MMLUProtocol({"letter_mode": "regex", "max_rounds": 3})
    state = protocol.start(FIXTURE)
    for letter in "ACB":
        _play(protocol, state, f" Answer: {letter}")
        _play(protocol, state, " Continue, check again.", model="t")
    assert state.done and state.extra["end_reason"] == "round_cap"
    assert len(state.turns) == protocol.max_turns == 6
    assert state.answer == "B" and protocol.performance(state) == 1.0


def test_an_unreadable_verdict_defaults_in_text_mode_and_is_recorded():
    protocol = MMLUProtocol({"letter_mode": "regex", "max_rounds": 2, "verdict_mode": "text"})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " Answer: D")
    _, turn = _play(protocol, state, " %%%", model="t")
    assert turn.parsed["verdict"] == "continue" and turn.parsed["verdict_parsed"] is False
    assert turn.parsed["verdict_source"] == "default" and not state.done
    protocol = MMLUProtocol({"letter_mode": "regex", "default_verdict": "submit", "verdict_mode": "text"})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " Answer: D")
    _play(protocol, state, " %%%", model="t")
    assert state.done and protocol.performance(state) == 0.0


def test_an_unreadable_verdict_is_read_from_the_teachers_logprobs():
    protocol = MMLUProtocol({"letter_mode": "regex"})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " Answer: B")
    pool = ScriptedPool([-0.3, -1.5])
    _, turn = _play(protocol, state, " Mercury, as the student says.", pool, model="t")
    assert pool.calls[0][2] == (" Submit", " Continue")
    assert turn.parsed["verdict"] == "submit" and turn.parsed["verdict_source"] == "logprob"
    assert state.done and state.extra["end_reason"] == "submitted"


def test_memories_stay_within_their_bounds():
    protocol = MMLUProtocol({"letter_mode": "regex", "memory_length": 1, "memory_chars": 20, "max_rounds": 3})
    state = protocol.start(FIXTURE)
    for _ in range(3):
        _play(protocol, state, " Answer: A")
        _play(protocol, state, " Continue " + "because " * 20, model="t")
    assert all(len(notes) == 1 and len(notes[0]) <= 20 for notes in state.memory.values())


def test_render_and_context_show_the_exchange():
    protocol = MMLUProtocol({"context_chars": 300})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " It is Mercury. Answer: B", ScriptedPool(), model="smol")
    _play(protocol, state, " Submit", model="gem")
    text = protocol.render(state)
    for piece in (FIXTURE.question, "B. Mercury", "Student [smol] round 1", "Teacher [gem] round 1",
                  "answer B via logprob (A 0.09, B 0.64, C 0.24, D 0.03)", "Answer: B | gold: B | score 1"):
        assert piece in text
    context = protocol.context_text(state)
    assert context.startswith(FIXTURE.question) and "D. Mars" in context
    assert context.splitlines()[-1] == "Teacher: Submit." and len(context) <= 300


@pytest.mark.parametrize(
    "config, key",
    [
        ({"letter_mode": "argmax"}, "letter_mode"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"default_verdict": "rethink"}, "default_verdict"),
        ({"solution_chars": "long"}, "solution_chars"),
        ({"search_budget": 2}, "search_budget"),
        ({"temperature": "hot"}, "temperature"),
        ({"verdict_mode": "logprob"}, "verdict_mode"),
    ],
)
def test_bad_config_raises_naming_the_key(config, key):
    with pytest.raises(ValueError, match=key):
        MMLUProtocol(config)


# -- real (tiny) models --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory):
    cache = tmp_path_factory.mktemp("responses") / "responses.sqlite"
    pool = LLMPool(["tiny-llama", "tiny-qwen2"], cache=cache)
    yield pool
    pool.close()


def _real_example():
    try:
        return load_mmlu("val", ["astronomy"])[0]
    except FileNotFoundError as exc:
        pytest.skip(f"data missing: MMLU (set ROUTING_GYM_DATA): {exc}")


def test_a_tiny_model_letter_is_the_argmax_of_its_choice_logprobs(tiny_pool):
    protocol = MMLUProtocol({"student_max_new_tokens": 16})
    state = protocol.start(FIXTURE)
    request = protocol.request(state, "tiny-qwen2")
    result = tiny_pool.generate([request])[0]
    turn = advance(protocol, state, request, result, tiny_pool)
    scoring = type(request)(model="tiny-qwen2", messages=request.messages,
                            response_prefix=request.response_prefix + result.text + ANSWER_CUE)
    expected = tiny_pool.choice_logprobs("tiny-qwen2", scoring, ["A", "B", "C", "D"])
    assert list(turn.parsed["letter_logprobs"].values()) == pytest.approx(expected)
    assert turn.parsed["letter"] == "ABCD"[max(range(4), key=expected.__getitem__)]
    assert len(set(expected)) == 4  # the letters really differ, so the argmax means something


@pytest.mark.parametrize("source", ["fixture", "val"])
def test_a_full_episode_runs_through_the_tiny_pool_and_replays(source, tiny_pool):
    example = FIXTURE if source == "fixture" else _real_example()
    protocol = MMLUProtocol({"student_max_new_tokens": 24, "teacher_max_new_tokens": 12})

    def episode():
        state = protocol.start(example)
        step = 0
        while not state.done:
            assert step < protocol.max_turns
            model = tiny_pool.names[step % 2]
            request = protocol.request(state, model, seed=step)
            turn = advance(protocol, state, request, tiny_pool.generate([request])[0], tiny_pool)
            assert turn.prompt_ids == tiny_pool.backend(model).prompt_ids(request)
            assert turn.messages == list(request.messages) and turn.cost > 0
            step += 1
        return state

    state = episode()
    assert [t.role for t in state.turns] == [STUDENT, TEACHER] * (len(state.turns) // 2)
    assert state.answer in ("A", "B", "C", "D")  # log-prob reading always gives a letter
    assert protocol.performance(state) == float(state.answer == example.answer)
    assert protocol.render(episode()) == protocol.render(state)

"""The HotpotQA Teacher–Student protocol: parsing, search budget, verdicts, round cap, scoring."""

from __future__ import annotations

import pickle

import pytest

from routing_gym.data.hotpotqa import HotpotQAExample, load_hotpotqa
from routing_gym.llm import GenerationResult, LLMPool
from routing_gym.llm.requests import ScoringResult
from routing_gym.protocols import STUDENT, TEACHER, HotpotQAProtocol, make_protocol
from routing_gym.protocols.hotpotqa import FORCED_PREFIX, STUDENT_PREFIX, parse_action
from routing_gym.retrieval.retriever import RetrievedParagraph, context_paragraphs

# A self-written two-hop question in the HotpotQA schema.
FIXTURE = HotpotQAExample(
    id="fixture-zephyr",
    question="Which river flows through the city where the Zephyr Cup regatta is held?",
    answer="River Lune",
    type="bridge",
    level="hard",
    context=(
        ("Zephyr Cup", ("The Zephyr Cup is a rowing regatta held every June in Kellbridge.",
                        " It was first raced in 1921.")),
        ("Kellbridge", ("Kellbridge is a market town in the north.", " The River Lune flows through it.")),
        ("Orbital Bakery", ("Orbital Bakery is a chain of bread shops.",)),
        ("Tessa Moravec", ("Tessa Moravec is a chess grandmaster.", " She won the title twice.")),
    ),
    supporting_facts=(("Zephyr Cup", 0), ("Kellbridge", 1)),
)


class WordOverlapIndex:
    """A stand-in for the dense index: ranks paragraphs by words shared with the query."""

    def __init__(self, context):
        self.paragraphs = context_paragraphs(context)
        self.queries: list[str] = []

    def __len__(self):
        return len(self.paragraphs)

    def search(self, query, k=1):
        self.queries.append(query)
        words = set(query.lower().split())
        scored = sorted(
            ((len(words & set(f"{t} {x}".lower().split())), -i, t, x) for i, (t, x) in enumerate(self.paragraphs)),
            reverse=True,
        )
        return [RetrievedParagraph(t, x, float(s), r) for r, (s, _, t, x) in enumerate(scored[:k], start=1)]


class ScriptedPool:
    """Answers choice_logprobs with fixed numbers and records what it was asked."""

    def __init__(self, logprobs=(-1.0, -2.0)):
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


def advance(protocol, state, request, result, pool=None):
    """One turn as the episode engine plays it: the reply's scoring passes through ``pool``
    (none asked: no pool needed), then ``advance`` with their results."""
    scoring = protocol.scoring_requests(state, request, result)
    return protocol.advance(state, request, result, pool.score(scoring) if scoring else [])


def _result(request, text, prompt_len=5, completion_len=3):
    return GenerationResult(
        model=request.model,
        text=text,
        prompt_ids=list(range(prompt_len)),
        completion_ids=list(range(100, 100 + completion_len)),
        cost=0.001 * (prompt_len + completion_len),
    )


def _start(protocol, example=FIXTURE):
    state = protocol.start(example)
    state.extra["retriever"] = WordOverlapIndex(example.context)
    return state


def _play(protocol, state, text, model="student-model", pool=None):
    """Run one turn with a hand-written reply; returns (request, turn)."""
    request = protocol.request(state, model)
    return request, advance(protocol, state, request, _result(request, text), pool or ScriptedPool())


# -- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, action, argument",
    [
        ("Thought: I need the town.\nAction: Search[Zephyr Cup", "search", "Zephyr Cup"),
        ("Thought: found it.\nAction: Finish[River Lune]", "finish", "River Lune"),
        ('Thought: hm\nAction: finish["yes"]', "finish", "yes"),
        ("Action: Finish[Kellbridge\nmore text", "finish", "Kellbridge"),
        ("Thought: no idea at all", "invalid", None),
        ("Thought: x\nAction: Search[   ]", "invalid", None),
        ("", "invalid", None),
    ],
)
def test_parse_action_reads_the_first_search_or_finish(text, action, argument):
    parsed = parse_action(text)
    assert parsed["action"] == action
    assert parsed.get("argument") == argument


def test_parse_action_keeps_the_thought_without_labels():
    parsed = parse_action("Thought: I need the town of the regatta.\nAction: Search[Zephyr Cup")
    assert parsed["thought"] == "I need the town of the regatta."


# -- rounds --------------------------------------------------------------------------------------
def test_a_search_spends_budget_and_shows_the_paragraph_to_both_agents():
    protocol = HotpotQAProtocol({"search_budget": 2})
    state = _start(protocol)
    assert protocol.next_role(state) == STUDENT
    request, turn = _play(protocol, state, " I need the town.\nAction: Search[Zephyr Cup regatta")
    assert request.response_prefix == STUDENT_PREFIX and "]" in request.stop
    assert turn.parsed["action"] == "search" and turn.parsed["title"] == "Zephyr Cup"
    assert state.searches_left == 1 and state.extra["retrieved"] == ["Zephyr Cup"]
    assert turn.observation.startswith("[Zephyr Cup] The Zephyr Cup is a rowing regatta")
    assert state.memory[STUDENT][-1].startswith("Zephyr Cup: The Zephyr Cup")
    assert protocol.next_role(state) == TEACHER
    teacher_request = protocol.request(state, "teacher-model")
    assert "rowing regatta held every June in Kellbridge" in teacher_request.messages[-1]["content"]
    assert teacher_request.response_prefix == "Verdict:"
    _, verdict = _play(protocol, state, " Rethink. Search the town instead.", model="teacher-model")
    assert verdict.parsed == {
        "verdict": "rethink", "verdict_source": "text", "verdict_parsed": True,
        "reason": "Search the town instead.", "reviewed_action": "search", "accepted": False,
    }
    assert state.rounds_done == 1 and not state.done and state.answer is None
    next_prompt = protocol.request(state, "student-model").messages[-1]["content"]
    assert "Search[Zephyr Cup regatta]" in next_prompt and "Search the town instead." in next_prompt
    assert "Searches left: 1" in next_prompt


def test_an_accepted_finish_ends_the_episode_with_its_f1():
    protocol = HotpotQAProtocol()
    state = _start(protocol)
    _play(protocol, state, " The river is the Lune.\nAction: Finish[the Lune")
    assert state.answer == "the Lune" and not state.done
    _, verdict = _play(protocol, state, " Continue. It is supported.", model="teacher-model")
    assert verdict.parsed["accepted"] and state.done and state.extra["end_reason"] == "accepted"
    # answer [lune] against gold [river, lune]: P = 1, R = 1/2, F1 = 2·1·0.5 / 1.5 = 2/3
    assert protocol.performance(state) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="over"):
        protocol.request(state, "student-model")


def test_a_rethink_on_finish_gives_another_round_and_the_cap_keeps_the_last_answer():
    protocol = HotpotQAProtocol({"search_budget": 1, "max_rounds": 3})
    state = _start(protocol)
    _play(protocol, state, " guess\nAction: Finish[Kellbridge")
    _play(protocol, state, " Rethink, that is a town.", model="teacher-model")
    assert not state.done and state.answer == "Kellbridge" and state.searches_left == 1
    _play(protocol, state, " look it up\nAction: Search[Kellbridge")
    _play(protocol, state, " Rethink", model="teacher-model")
    assert state.searches_left == 0
    request, turn = _play(protocol, state, "River Lune")  # last round: forced finish
    assert request.response_prefix == FORCED_PREFIX
    assert turn.parsed == {"action": "finish", "argument": "River Lune", "thought": "", "forced": True}
    _, last = _play(protocol, state, " Rethink, not sure.", model="teacher-model")
    assert state.done and state.extra["end_reason"] == "round_cap" and not last.parsed["accepted"]
    assert len(state.turns) == protocol.max_turns == 6
    assert state.answer == "River Lune" and protocol.performance(state) == 1.0


def test_the_student_must_finish_once_the_search_budget_is_spent():
    protocol = HotpotQAProtocol({"search_budget": 1, "max_rounds": 4})
    state = _start(protocol)
    first = protocol.request(state, "m")
    assert first.response_prefix == STUDENT_PREFIX
    _play(protocol, state, " x\nAction: Search[Kellbridge")
    _play(protocol, state, " Continue", model="teacher-model")
    forced = protocol.request(state, "m")
    assert forced.response_prefix == FORCED_PREFIX
    assert "]" in forced.stop and "\n" in forced.stop
    assert "no searches left" in forced.messages[-1]["content"]
    # Even a reply that tries to search is read as the answer of the prefilled Finish[.
    turn = advance(protocol, state, forced, _result(forced, "River Lune"), None)
    assert turn.parsed["action"] == "finish" and state.searches_left == 0


def test_the_last_round_forces_a_finish_even_with_searches_left():
    protocol = HotpotQAProtocol({"search_budget": 3, "max_rounds": 2})
    state = _start(protocol)
    _play(protocol, state, " x\nAction: Search[Zephyr Cup")
    _play(protocol, state, " Continue", model="teacher-model")
    assert state.searches_left == 2
    assert protocol.request(state, "m").response_prefix == FORCED_PREFIX


def test_an_invalid_action_is_recorded_and_explained_without_spending_a_search():
    protocol = HotpotQAProtocol()
    state = _start(protocol)
    _, turn = _play(protocol, state, " I will look around the web a bit")
    assert turn.parsed["action"] == "invalid" and "Search" in turn.parsed["reason"]
    assert "Action: Search[...]" in turn.observation
    assert state.searches_left == 3 and state.answer is None
    teacher_prompt = protocol.request(state, "teacher-model").messages[-1]["content"]
    assert "not a valid action" in teacher_prompt
    _play(protocol, state, " Rethink", model="teacher-model")
    assert "Action: Search[...]" in protocol.request(state, "m").messages[-1]["content"]


def test_an_unreadable_verdict_is_read_from_the_teachers_logprobs():
    protocol = HotpotQAProtocol()
    state = _start(protocol)
    _play(protocol, state, " x\nAction: Finish[River Lune")
    pool = ScriptedPool([-2.0, -0.5])
    request, turn = _play(protocol, state, " the answer looks like a river", model="teacher-model", pool=pool)
    assert turn.parsed["verdict"] == "rethink" and turn.parsed["verdict_source"] == "logprob"
    assert turn.parsed["verdict_parsed"] is False
    assert turn.parsed["verdict_logprobs"] == {"continue": -2.0, "rethink": -0.5}
    (name, scoring, choices), = pool.calls
    assert name == "teacher-model" and choices == (" Continue", " Rethink")
    assert scoring.messages == request.messages and scoring.response_prefix == "Verdict:"
    assert not state.done and "log-probs" in protocol.render(state)


def test_an_unreadable_verdict_takes_the_configured_default_in_text_mode():
    for default, done in (("continue", True), ("rethink", False)):
        protocol = HotpotQAProtocol({"default_verdict": default, "verdict_mode": "text"})
        state = _start(protocol)
        _play(protocol, state, " x\nAction: Finish[River Lune")
        _, turn = _play(protocol, state, " ###", model="teacher-model", pool=object())  # never asked
        assert turn.parsed["verdict"] == default and turn.parsed["verdict_parsed"] is False
        assert turn.parsed["verdict_source"] == "default"
        assert state.done is done


def test_an_episode_without_any_answer_scores_zero_at_the_cap():
    protocol = HotpotQAProtocol({"search_budget": 0, "max_rounds": 2})
    state = _start(protocol)
    while not state.done:
        _play(protocol, state, "")
    assert len(state.turns) == protocol.max_turns and state.answer is None
    assert protocol.performance(state) == 0.0 and state.extra["end_reason"] == "round_cap"


def test_memories_stay_within_their_bounds():
    protocol = HotpotQAProtocol({"search_budget": 3, "memory_length": 2, "memory_chars": 30})
    state = _start(protocol)
    for query in ("Zephyr Cup", "Kellbridge", "Tessa Moravec"):
        _play(protocol, state, f" x\nAction: Search[{query}")
        _play(protocol, state, " Continue, a long and winding reason " * 4, model="t")
    for role in (STUDENT, TEACHER):
        assert len(state.memory[role]) == 2
        assert all(len(note) <= 30 for note in state.memory[role])
    assert state.memory[TEACHER][-1].startswith("Round 3: Search[Tessa")


def test_a_repeated_search_reads_a_fresh_paragraph_unless_disabled():
    for fresh, second_title in ((True, "Kellbridge"), (False, "Zephyr Cup")):
        protocol = HotpotQAProtocol({"fresh_paragraphs": fresh})
        state = _start(protocol)
        titles = []
        for _ in range(2):
            _, turn = _play(protocol, state, " x\nAction: Search[Zephyr Cup Kellbridge")
            titles.append(turn.parsed["title"])
            _play(protocol, state, " Continue", model="t")
        assert titles == ["Zephyr Cup", second_title]


# -- records and views ---------------------------------------------------------------------------
def test_turns_keep_tokens_cost_and_the_request_for_training():
    protocol = HotpotQAProtocol()
    state = _start(protocol)
    request = protocol.request(state, "m", seed=7)
    assert request.seed == 7 and request.temperature == 0.0
    assert request.max_new_tokens == protocol.config["student_max_new_tokens"]
    result = _result(request, " x\nAction: Search[Kellbridge", prompt_len=11, completion_len=4)
    turn = advance(protocol, state, request, result, None)
    assert turn.role == STUDENT and turn.model == "m"
    assert turn.prompt_ids == list(range(11)) and turn.completion_ids == [100, 101, 102, 103]
    assert (turn.prompt_tokens, turn.completion_tokens) == (11, 4)
    assert turn.cost == pytest.approx(0.015)
    assert turn.messages == list(request.messages) and turn.response_prefix == STUDENT_PREFIX
    teacher_request = protocol.request(state, "t")
    assert teacher_request.max_new_tokens == protocol.config["teacher_max_new_tokens"]


def test_advance_refuses_a_result_from_another_model():
    protocol = HotpotQAProtocol()
    state = _start(protocol)
    request = protocol.request(state, "m")
    wrong = GenerationResult(model="other", text="", prompt_ids=[1], completion_ids=[2], cost=0.0)
    with pytest.raises(ValueError, match="other"):
        protocol.advance(state, request, wrong)


def test_context_text_keeps_the_question_and_the_latest_turns_within_budget():
    protocol = HotpotQAProtocol({"context_chars": 200})
    state = _start(protocol)
    for query in ("Zephyr Cup", "Kellbridge"):
        _play(protocol, state, f" x\nAction: Search[{query}")
        _play(protocol, state, " Continue", model="t")
    text = protocol.context_text(state)
    assert len(text) <= 200
    assert text.startswith(FIXTURE.question[:40])
    assert "Teacher: Continue" in text.splitlines()[-1]
    assert "Search[Zephyr Cup]" not in text  # the oldest turn made room for the newest


def test_render_shows_question_roles_models_retrievals_and_answer():
    protocol = HotpotQAProtocol()
    state = _start(protocol)
    _play(protocol, state, " x\nAction: Search[Kellbridge", model="smol")
    _play(protocol, state, " Continue", model="gem")
    _play(protocol, state, " x\nAction: Finish[River Lune", model="smol")
    _play(protocol, state, " Continue", model="gem")
    text = protocol.render(state)
    for piece in (FIXTURE.question, "Student [smol] round 1", "Teacher [gem] round 2", "[Kellbridge]",
                  "Search[Kellbridge]", "answer accepted", "Answer: 'River Lune'", "F1 1.000"):
        assert piece in text


def test_the_same_replies_give_the_same_states():
    replies = [" x\nAction: Search[Kellbridge", " Rethink, wrong town", " y\nAction: Finish[Lune", " Continue"]

    def run():
        protocol = make_protocol("hotpotqa", {"search_budget": 2})
        state = _start(protocol)
        for i, reply in enumerate(replies):
            _play(protocol, state, reply, model=f"m{i % 2}")
        return state

    first, second = run(), run()
    assert first.turns == second.turns and first.memory == second.memory
    assert (first.answer, first.done, first.rounds_done) == (second.answer, second.done, second.rounds_done)


def test_the_protocol_pickles_and_holds_no_heavy_objects():
    protocol = make_protocol("hotpotqa", {"search_budget": 2})
    clone = pickle.loads(pickle.dumps(protocol))
    assert clone.config == protocol.config and clone.max_turns == 6
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in protocol.config.values())


@pytest.mark.parametrize(
    "config, key",
    [
        ({"searches": 3}, "searches"),
        ({"search_budget": -1}, "search_budget"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"max_rounds": 2.5}, "max_rounds"),
        ({"temperature": -0.1}, "temperature"),
        ({"student_max_new_tokens": 0}, "student_max_new_tokens"),
        ({"memory_length": True}, "memory_length"),
        ({"paragraph_chars": 2}, "paragraph_chars"),
        ({"fresh_paragraphs": "yes"}, "fresh_paragraphs"),
        ({"default_verdict": "submit"}, "default_verdict"),
        ({"encoder_cache": 3}, "encoder_cache"),
        ({"verdict_mode": "vote"}, "verdict_mode"),
    ],
)
def test_bad_config_raises_naming_the_key(config, key):
    with pytest.raises(ValueError, match=key):
        HotpotQAProtocol(config)


def test_make_protocol_knows_both_tasks_and_rejects_others():
    assert make_protocol("hotpotqa").max_turns == 2 * (3 + 1)
    assert make_protocol("mmlu").max_turns == 6
    with pytest.raises(ValueError, match="gsm8k"):
        make_protocol("gsm8k")


# -- real retrieval and real (tiny) models -------------------------------------------------------
@pytest.fixture(scope="module")
def encoder_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("embeddings") / "embeddings.sqlite")


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory):
    cache = tmp_path_factory.mktemp("responses") / "responses.sqlite"
    pool = LLMPool(["tiny-llama", "tiny-qwen2"], cache=cache)
    yield pool
    pool.close()


def _real_examples(n):
    try:
        return load_hotpotqa("valid", limit=n)
    except FileNotFoundError as exc:
        pytest.skip(f"data missing: HotpotQA (set ROUTING_GYM_DATA): {exc}")


def test_dense_search_finds_the_named_paragraph(encoder_cache):
    protocol = HotpotQAProtocol({"encoder_cache": encoder_cache})
    state = protocol.start(FIXTURE)
    _play(protocol, state, " x\nAction: Search[Kellbridge")
    assert state.turns[-1].parsed["title"] == "Kellbridge"
    assert len(state.extra["retriever"]) == len(FIXTURE.context)


def test_dense_search_on_a_real_question(encoder_cache):
    example = _real_examples(1)[0]
    protocol = HotpotQAProtocol({"encoder_cache": encoder_cache})
    state = protocol.start(example)
    title = example.supporting_facts[-1][0]
    _, turn = _play(protocol, state, f" x\nAction: Search[{title}")
    assert turn.parsed["title"] == title and turn.parsed["rank"] == 1


def _episode(protocol, pool, example):
    state = protocol.start(example)
    step = 0
    while not state.done:
        assert step < protocol.max_turns
        model = pool.names[step % 2]
        request = protocol.request(state, model, seed=step)
        result = pool.generate([request])[0]
        turn = advance(protocol, state, request, result, pool)
        assert turn.prompt_ids == pool.backend(model).prompt_ids(request)
        assert turn.completion_tokens >= 1 and turn.cost > 0
        step += 1
    return state


@pytest.mark.parametrize("source", ["fixture", "valid"])
def test_a_full_episode_runs_through_the_tiny_pool_and_replays(source, tiny_pool, encoder_cache):
    example = FIXTURE if source == "fixture" else _real_examples(1)[0]
    protocol = HotpotQAProtocol({
        "encoder_cache": encoder_cache, "search_budget": 2, "student_max_new_tokens": 16, "teacher_max_new_tokens": 8,
    })
    state = _episode(protocol, tiny_pool, example)
    assert state.done and 2 <= len(state.turns) <= protocol.max_turns
    assert [t.role for t in state.turns] == [STUDENT, TEACHER] * (len(state.turns) // 2)
    assert 0.0 <= protocol.performance(state) <= 1.0
    assert example.question.strip() in protocol.render(state)
    again = _episode(protocol, tiny_pool, example)
    assert protocol.render(again) == protocol.render(state)


def test_written_student_replies_with_a_tiny_teacher_through_the_pool(tiny_pool, encoder_cache):
    protocol = HotpotQAProtocol({"encoder_cache": encoder_cache, "teacher_max_new_tokens": 8})
    state = protocol.start(FIXTURE)
    while not state.done:
        if protocol.next_role(state) == STUDENT:
            if protocol.forced_finish(state):
                _play(protocol, state, "River Lune")  # the reply continues the prefilled "Action: Finish["
            elif state.turns:
                _play(protocol, state, " y\nAction: Finish[River Lune")
            else:
                _play(protocol, state, " x\nAction: Search[Kellbridge")
            continue
        request = protocol.request(state, "tiny-llama")
        turn = advance(protocol, state, request, tiny_pool.generate([request])[0], tiny_pool)
        assert turn.parsed["verdict"] in ("continue", "rethink")
        if turn.parsed["verdict_source"] == "logprob":  # the tiny model's own preference
            scores = turn.parsed["verdict_logprobs"]
            assert turn.parsed["verdict"] == max(scores, key=scores.get)
    assert state.turns[0].parsed["title"] == "Kellbridge" and state.answer == "River Lune"
    assert protocol.performance(state) == 1.0
    # random weights write no verdict word, so the verdicts came from the model's log-probs
    assert {t.parsed["verdict_source"] for t in state.turns if t.role == TEACHER} == {"logprob"}

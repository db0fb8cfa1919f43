"""Concurrent Decide calls decided together (`service.combiner`), on a real engine, log and gRPC server: each
call gets its own answer, its own error, and is logged once."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from offerbandit.errors import AlreadyExists, LogClosed, NotFound, Overloaded
from offers.v1 import decision_pb2 as pb
from service import validation
from service.answers import AnswerEncoder
from service.combiner import DecideCombiner
from service.config import ServiceConfig
from service.engine import DecisionEngine
from tests.conftest import make_request

CONFIG = ServiceConfig()
SAME_KEY = '[privacy]\nuser_hash_key = "decide-combiner-key-01"\n'  # two servers hash customers alike


def inputs_of(*requests: pb.DecideRequest) -> list[validation.DecideInput]:
    return [validation.decide_input(r, CONFIG.limits, CONFIG.privacy) for r in requests]


class Together:
    """Decides inputs with a `DecideCombiner` so that the first call decides alone while every other one
    waits, then all the others are decided as one group (its answer is held until they all wait)."""

    def __init__(self, engine: DecisionEngine, refuse: str = "") -> None:
        self.engine = engine
        self.encoder = AnswerEncoder(1 << 20)
        self.logged_when_answered: dict[str, bool] = {}
        self.groups: list[int] = []
        self.refuse = refuse
        self.expected_waiting = 0
        self._first = threading.Event()
        self.combiner = DecideCombiner(engine, self.answer, max_group=64, on_group=self.groups.append)

    def answer(self, outcome) -> bytes:
        if not self._first.is_set():
            self._first.set()
            deadline = time.monotonic() + 10
            while self.combiner.waiting < self.expected_waiting and time.monotonic() < deadline:
                time.sleep(0.002)
        self.logged_when_answered.setdefault(outcome.event_id, logged(self.engine, outcome.event_id))
        if self.refuse and outcome.event_id == self.refuse:
            raise Overloaded("the answer would be too big (test)")
        return self.encoder.decision(outcome)

    def decide(self, inputs: list[validation.DecideInput]) -> list:
        self.expected_waiting = len(inputs) - 1
        results: list = [None] * len(inputs)

        def one(i: int) -> None:
            try:
                results[i] = self.combiner.decide(inputs[i], timeout=10)
            except Exception as exc:  # noqa: BLE001 - the test looks at each call's error
                results[i] = exc

        first = threading.Thread(target=one, args=(0,))
        first.start()
        self._first.wait(10)
        others = [threading.Thread(target=one, args=(i,)) for i in range(1, len(inputs))]
        for thread in others:
            thread.start()
        for thread in [first, *others]:
            thread.join(30)
        return results


def logged(engine: DecisionEngine, event_id: str) -> bool:
    return engine.log.find_decision(event_id) is not None


def test_waiting_calls_are_decided_as_one_group_each_with_its_own_answer(start_server):
    together, alone = start_server(SAME_KEY).engine, start_server(SAME_KEY).engine
    inputs = inputs_of(*(make_request(user=f"user-{i}", event_id=f"ev-{i}") for i in range(6)))
    combined = Together(together)
    results = combined.decide(inputs)
    assert combined.groups == [1, 5]
    encoder = AnswerEncoder(1 << 20)
    for inp, (outcome, answer) in zip(inputs, results):
        assert outcome.event_id == inp.event_id and logged(together, inp.event_id)
        assert pb.Decision.FromString(answer).event_id == inp.event_id
        (single,) = alone.decide([inp])  # the same call decided alone, on a server in the same state
        assert (outcome.arm, outcome.probability) == (single.arm, single.probability)
        assert answer == encoder.decision(single)


def test_a_callers_mistake_fails_that_call_alone(start_server):
    engine = start_server().engine
    engine.decide(inputs_of(make_request(user="alice", event_id="taken")))
    inputs = inputs_of(make_request(user="u0", event_id="good-0"),
                       make_request(user="u1", event_id="good-1"),
                       make_request(user="u2", event_id="bad-campaign", campaign="no-such-campaign"),
                       make_request(user="bob", event_id="taken"),  # alice's id, another request
                       make_request(user="u3", event_id="good-2"))
    results = Together(engine).decide(inputs)
    assert isinstance(results[2], NotFound) and "no-such-campaign" in str(results[2])
    assert isinstance(results[3], AlreadyExists)
    for i in (0, 1, 4):
        assert results[i][0].event_id == inputs[i].event_id and logged(engine, inputs[i].event_id)
    assert not logged(engine, "bad-campaign")
    assert engine.log.find_decision("taken").context.user_key == engine.keys.user_keys("alice")[0]


def test_an_answer_too_big_is_refused_alone_and_nothing_of_it_is_logged(start_server):
    engine = start_server().engine
    inputs = inputs_of(*(make_request(user=f"user-{i}", event_id=f"big-{i}") for i in range(4)))
    combined = Together(engine, refuse="big-2")
    results = combined.decide(inputs)
    assert isinstance(results[2], Overloaded)
    assert not logged(engine, "big-2")
    assert [logged(engine, f"big-{i}") for i in (0, 1, 3)] == [True, True, True]
    assert combined.groups == [1, 3]  # the group of three failed on big-2, then each was decided alone


def test_server_made_ids_are_logged_once_when_a_group_is_decided_again(start_server):
    served = start_server()
    engine = served.engine
    inputs = inputs_of(make_request(user="anna"), make_request(user="ben"),
                       make_request(user="carl", campaign="no-such-campaign"), make_request(user="dora"))
    results = Together(engine).decide(inputs)
    assert isinstance(results[2], NotFound)
    ids = [results[i][0].event_id for i in (0, 1, 3)]
    assert len(set(ids)) == 3 and all(logged(engine, event_id) for event_id in ids)
    con = sqlite3.connect(served.data_dir / "decisions.db")
    try:
        (rows,) = con.execute("SELECT count(*) FROM decisions").fetchone()
    finally:
        con.close()
    assert rows == 3  # the group's first try logged nothing; each call alone logged its own once


def test_a_call_decided_again_after_its_group_committed_is_answered_not_logged_twice(start_server):
    served = start_server()
    engine = served.engine
    release = threading.Event()
    holder = threading.Thread(target=lambda: engine.decide(inputs_of(make_request(user="ben", event_id="bens")),
                                                           respond=lambda outcomes: release.wait(10)))
    holder.start()  # holds "bens" in flight: a group with it waits for it, and answers only after its commit
    threading.Timer(0.5, release.set).start()
    combined = Together(engine, refuse="bens")
    inputs = inputs_of(make_request(user="first", event_id="first"), make_request(user="anna"),
                       make_request(user="ben", event_id="bens"))
    results = combined.decide(inputs)
    holder.join(10)
    assert isinstance(results[2], Overloaded)
    anna = results[1][0].event_id
    assert combined.logged_when_answered[anna]  # the group's answers were built after its commit: anna's row was already there
    con = sqlite3.connect(served.data_dir / "decisions.db")
    try:
        (rows,) = con.execute("SELECT count(*) FROM decisions WHERE user_key = ?",
                              (engine.keys.user_keys("anna")[0],)).fetchone()
    finally:
        con.close()
    assert rows == 1 and combined.groups == [1, 2]


def test_calls_with_one_event_id_are_never_in_one_group(start_server):
    engine = start_server().engine
    inputs = inputs_of(make_request(user="first", event_id="first"), make_request(user="ben", event_id="retried"),
                       make_request(user="ben", event_id="retried"), make_request(user="cleo", event_id="cleos"))
    combined = Together(engine)
    results = combined.decide(inputs)
    assert combined.groups == [1, 2, 1]  # the retry waited for the group after its first try's
    assert results[1][0] == results[2][0] and results[1][1] == results[2][1]
    assert results[3][0].event_id == "cleos"


def test_a_fault_of_the_log_is_every_calls_error(tmp_path):
    engine = DecisionEngine(CONFIG, tmp_path / "engine")
    engine.close()
    results = Together(engine).decide(inputs_of(*(make_request(user=f"u{i}", event_id=f"e{i}") for i in range(3))))
    assert all(isinstance(r, LogClosed) for r in results)


def test_a_call_behind_a_slow_group_is_decided_beside_it(start_server):
    engine = start_server().engine
    encoder = AnswerEncoder(1 << 20)
    slow, answered = threading.Event(), []

    def answer(outcome) -> bytes:
        if outcome.event_id == "slow":
            slow.set()
            time.sleep(1.0)  # the group ahead waits on something (the log restarting, say)
        answered.append(outcome.event_id)
        return encoder.decision(outcome)

    combiner = DecideCombiner(engine, answer, max_group=64, patience_s=0.05)
    (slow_input, quick_input) = inputs_of(make_request(user="u1", event_id="slow"),
                                          make_request(user="u2", event_id="quick"))
    leader = threading.Thread(target=combiner.decide, args=(slow_input, 10))
    leader.start()
    slow.wait(10)
    started = time.monotonic()
    outcome, _ = combiner.decide(quick_input, timeout=10)
    assert outcome.event_id == "quick" and time.monotonic() - started < 0.8
    leader.join(10)
    assert answered == ["quick", "slow"] and logged(engine, "quick") and logged(engine, "slow")
    assert combiner.waiting == 0


def test_max_group_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_group"):
        DecideCombiner(None, bytes, max_group=0)  # type: ignore[arg-type]


def test_concurrent_decides_through_the_server_are_grouped_and_counted(start_server):
    served = start_server(metrics_port=0)
    calls = [make_request(user=f"user-{i}", event_id=f"wire-{i}") for i in range(48)]
    answers: list = [None] * len(calls)

    def send(part: range) -> None:
        for i in part:
            answers[i] = served.stub.Decide(calls[i], timeout=10)

    threads = [threading.Thread(target=send, args=(range(k, len(calls), 8),)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a.event_id for a in answers] == [c.event_id for c in calls]
    assert all(logged(served.engine, c.event_id) for c in calls)
    families = {f.name: f for f in text_string_to_metric_families(served.server.metrics.render().decode())}
    samples = {s.name: s.value for s in families["offerbandit_decide_group_size"].samples}
    assert samples["offerbandit_decide_group_size_sum"] == len(calls)
    assert 1 <= samples["offerbandit_decide_group_size_count"] <= len(calls)

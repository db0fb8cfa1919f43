"""The order of learning (learn_seq: given once, in the order asked, streamed back in that order; claims
without one found again; a log from older code numbered once) and alias moves under the write lock — on
both backends."""
from __future__ import annotations

import threading
import time

import pytest

from decision_log import RewardDefaults, open_log
from tests.decision_log.test_decision_log import _row

DEFAULTS = RewardDefaults()


def _log_with_claims(where, n: int, claimed: range):
    log = open_log(where, writable=True)
    log.insert_decisions([_row(f"e{i}") for i in range(n)]).result(10)
    seqs = [d.seq for d in log.decisions()]
    log.claim_due([seqs[i] for i in claimed], time.time(), DEFAULTS).result(10)
    return log, seqs


def test_learn_seq_is_given_once_in_the_order_asked(log_where):
    log, seqs = _log_with_claims(log_where, 6, range(5))
    first = log.assign_learn_seq([seqs[3], seqs[1], seqs[5]]).result(10)  # seqs[5] was never claimed
    assert first == {seqs[3]: 1, seqs[1]: 2}
    again = log.assign_learn_seq([seqs[1], seqs[0], seqs[3], seqs[0]]).result(10)
    assert again == {seqs[0]: 3}  # already learned events are never given a second one
    assert log.max_learn_seq() == 3 and log.max_learn_seq("default") == 3 and log.max_learn_seq("other") == 0
    streamed = list(log.learned_events_after(DEFAULTS, "default", 0, chunk=1))
    assert [(e.learn_seq, e.seq) for e in streamed] == [(1, seqs[3]), (2, seqs[1]), (3, seqs[0])]
    assert [e.learn_seq for e in log.learned_events_after(DEFAULTS, "default", 2)] == [3]
    assert list(log.learned_events_after(DEFAULTS, "other", 0)) == []
    assert list(log.unlearned_final(chunk=1)) == [seqs[2], seqs[4]]  # claimed, never learned
    log.close()


def test_a_log_from_older_code_is_numbered_once_in_claim_order(log_place):
    log, seqs = _log_with_claims(log_place.where, 4, range(3))
    log.close()
    for when, seq in [(30.0, seqs[0]), (10.0, seqs[1]), (20.0, seqs[2])]:
        log_place.sql("UPDATE decisions SET learned_at = ? WHERE seq = ?", (when, seq))
    log = open_log(log_place.where, writable=True)
    assert log.backfill_learn_seq().result(10) == 3
    assert [e.seq for e in log.learned_events_after(DEFAULTS, "default", 0)] == [seqs[1], seqs[2], seqs[0]]
    assert log.learn_seq_through("default", 20.0) == 2 and log.learn_seq_through("default", 5.0) == 0
    assert log.backfill_learn_seq().result(10) == 0  # once any event has a learn_seq, never again
    assert list(log.unlearned_final()) == []
    log.close()


def test_alias_moves_are_serialised_by_the_write_lock_and_recorded(log_where):
    server_log = open_log(log_where, writable=True)
    operator_log = open_log(log_where)  # read-only: another process, as the CLI
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def slow_move():
        order.append("server in")
        inside.set()
        release.wait(10)
        order.append("server out")
        return ("1", "2")

    def operator_move():
        order.append("operator")
        return ("2", "7")

    mover = threading.Thread(target=lambda: server_log.alias_move("default", "champion", "checkpoint", who="ckpt",
                                                                  why="published", move=slow_move))
    mover.start()
    assert inside.wait(10)
    blocked = threading.Thread(target=lambda: operator_log.alias_move("default", "champion", "promote", who="ana",
                                                                      why="ship", move=operator_move))
    blocked.start()
    time.sleep(0.3)
    assert order == ["server in"]  # the operator waits for the server's move: no interleaving
    release.set()
    mover.join(10)
    blocked.join(10)
    assert order == ["server in", "server out", "operator"]
    assert server_log.alias_move("default", "champion", "checkpoint", who="x", why="y", move=lambda: None) is None
    moves = server_log.alias_moves("default", "champion")
    assert [(m.kind, m.from_version, m.to_version, m.who) for m in moves] == [("promote", "2", "7", "ana"),
                                                                              ("checkpoint", "1", "2", "ckpt")]
    assert [m.kind for m in server_log.alias_moves("default", "champion", ("promote", "rollback"))] == ["promote"]
    with pytest.raises(ValueError):
        server_log.alias_move("default", "champion", "guess", who="x", why="y", move=lambda: ("1", "2"))
    operator_log.close()
    server_log.close()


def test_decisions_commit_while_an_alias_move_is_inside_its_registry_calls(log_where):
    """The alias lock is not the log's write lock: a decision (and a reward) commits in well under the time
    a mover spends inside its MLflow calls; the move's row is recorded only when the move returns."""
    server_log = open_log(log_where, writable=True)
    operator_log = open_log(log_where)  # another process's (the CLI's) move waits for the alias lock only
    inside = threading.Event()
    release = threading.Event()
    moved: list[object] = []

    def slow_move():
        inside.set()
        assert release.wait(20)
        return ("1", "2")

    mover = threading.Thread(target=lambda: moved.append(server_log.alias_move(
        "default", "champion", "checkpoint", who="ckpt", why="published", move=slow_move)))
    mover.start()
    try:
        assert inside.wait(10)
        mark = server_log.alias_move_mark()
        started = time.perf_counter()
        server_log.insert_decisions([_row("during-move")]).result(5)
        committed_in = time.perf_counter() - started
        assert committed_in < 2.0  # it waited for no alias move (the move is held for up to 20 s)
        assert [d.event_id for d in server_log.decisions()] == ["during-move"]
        assert server_log.alias_move_mark() == mark  # nothing recorded while the move is inside MLflow
        blocked: list[str] = []
        operator = threading.Thread(target=lambda: blocked.append(str(operator_log.alias_move(
            "default", "champion", "promote", who="ana", why="ship", move=lambda: blocked.append("in") or None))))
        operator.start()
        time.sleep(0.3)
        assert blocked == []  # a second mover still waits for the first
    finally:
        release.set()
        mover.join(10)
    operator.join(10)
    assert blocked == ["in", "None"]
    assert [(m.kind, m.to_version) for m in moved] == [("checkpoint", "2")]
    assert server_log.alias_move_mark() > mark
    operator_log.close()
    server_log.close()

"""Issue 14, items 4, 5 and 9 through a real server: repeats bound to their request, contacts that count
only once committed, caps that eviction cannot lift, and SQLite faults answered UNAVAILABLE."""
from __future__ import annotations

import sqlite3
import threading

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from offers.v1 import decision_pb2 as pb
from tests.conftest import make_request
from tests.repeats import assert_repeat_of
from tests.waiting import wait_for

SMS_CAP = """
[log]
busy_timeout_ms = 200
{log_extra}
[learning]
history_max_users = {max_users}
[[campaigns.default.rules.caps]]
format = "sms"
max_contacts = 1
window_s = 3600
"""
SMS_ONLY = dict(formats=["sms"], slots=["morning"])


def rows(data_dir, sql, params=()):
    con = sqlite3.connect(data_dir / "decisions.db")
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def count(data_dir) -> int:
    return rows(data_dir, "SELECT count(*) AS n FROM decisions")[0]["n"]


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def capped(served, user="alice", **fields) -> pb.Decision:
    return served.stub.Decide(make_request(user=user, **SMS_ONLY, **fields), timeout=10)


# --- item 5: same event id, same request -----------------------------------------------------------

def test_another_users_event_id_is_already_exists_and_logs_nothing_for_him(served):
    alice = served.stub.Decide(make_request(user="alice", event_id="shared-id"), timeout=10)
    code, details = code_of(lambda: served.stub.Decide(
        make_request(user="bob", event_id="shared-id", offers=[("bob-only", {"category": "x"})]), timeout=10))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert "shared-id" in details and alice.offer_id not in details
    assert count(served.data_dir) == 1
    assert_repeat_of(served.stub.Decide(make_request(user="alice", event_id="shared-id"), timeout=10), alice)


@pytest.mark.parametrize("change", [
    dict(user="mallory"), dict(campaign="default", context={"segment": "old"}),
    dict(offers=[("o1", {"category": "travel"})]), dict(formats=["email", "sms"]), dict(deferred=True),
    dict(numeric={"age": 3.0}), dict(excluded_offers=["o2"]),
])
def test_any_field_but_event_id_and_ranking_limit_makes_another_request(served, change):
    served.stub.Decide(make_request(event_id="e"), timeout=10)
    fields = {"user": "alice", **change}
    assert code_of(lambda: served.stub.Decide(make_request(event_id="e", **fields), timeout=10))[0] \
        == grpc.StatusCode.ALREADY_EXISTS


def test_a_repeat_is_cut_to_its_own_ranking_limit(served):
    full = served.stub.Decide(make_request(event_id="cut"), timeout=10)
    top2 = served.stub.Decide(make_request(event_id="cut", ranking_limit=2), timeout=10)
    again = served.stub.Decide(make_request(event_id="cut"), timeout=10)
    assert_repeat_of(again, full)
    assert list(top2.ranking) == list(again.ranking)[:2]
    assert (top2.offer_id, top2.probability) == (full.offer_id, full.probability)


def test_map_order_is_not_part_of_the_request(served):
    first = make_request(event_id="order", context={"a": "1", "b": "2"})
    second = make_request(event_id="order", context={"b": "2", "a": "1"})
    original = served.stub.Decide(first, timeout=10)
    assert_repeat_of(served.stub.Decide(second, timeout=10), original)


def test_a_conflicting_batch_item_fails_the_batch_naming_its_index(served):
    served.stub.Decide(make_request(user="alice", event_id="taken"), timeout=10)
    before = count(served.data_dir)
    batch = pb.DecideBatchRequest(requests=[make_request(user="carol", event_id="fresh-1"),
                                            make_request(user="carol", event_id="taken")])
    code, details = code_of(lambda: served.stub.DecideBatch(batch, timeout=10))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "requests[1]" in details
    assert count(served.data_dir) == before  # nothing of the batch


def test_after_a_restart_the_stored_fingerprint_decides(start_server, tmp_path):
    data = tmp_path / "persist"
    running = start_server(data_dir=data)
    original = running.stub.Decide(make_request(event_id="kept"), timeout=10)
    running.server.stop(grace=1)
    again = start_server(data_dir=data)
    assert code_of(lambda: again.stub.Decide(make_request(user="eve", event_id="kept"), timeout=10))[0] \
        == grpc.StatusCode.ALREADY_EXISTS
    assert_repeat_of(again.stub.Decide(make_request(event_id="kept"), timeout=10), original)


def test_rows_without_a_fingerprint_compare_as_before(start_server, tmp_path):
    data = tmp_path / "old"
    running = start_server(data_dir=data)
    original = running.stub.Decide(make_request(event_id="legacy"), timeout=10)
    running.server.stop(grace=1)
    con = sqlite3.connect(data / "decisions.db")
    con.execute("UPDATE decisions SET fingerprint = NULL, request_hash = NULL")  # text before schema 4, bytes since
    con.commit()
    con.close()
    again = start_server(data_dir=data)
    assert_repeat_of(again.stub.Decide(make_request(user="someone", event_id="legacy"), timeout=10), original)


def test_an_oversize_answer_is_refused_before_anything_is_logged(start_server):
    served = start_server(SMS_CAP.format(log_extra="", max_users=1000) + "[server]\nmax_message_bytes = 16384\n")
    offers = [(f"offer-{i:03d}", {"category": f"c{i % 4}"}) for i in range(60)]
    batch = pb.DecideBatchRequest(requests=[make_request(user="alice" if i == 0 else f"user-{i}", event_id=f"big-{i}",
                                                         offers=offers, formats=["sms", "email"], slots=["morning"])
                                            for i in range(6)])
    assert batch.ByteSize() < 16384  # the request itself is within the limit; its answer (~27 KB) is not
    for _ in range(2):  # and the same on a retry: nothing was committed the first time
        code, details = code_of(lambda: served.stub.DecideBatch(batch, timeout=10))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "nothing was logged" in details
    assert count(served.data_dir) == 0
    assert capped(served).format == "sms"  # no contact was left behind by the refused batch
    for item in batch.requests:
        item.ranking_limit = 3
    assert len(served.stub.DecideBatch(batch, timeout=10).decisions) == 6


def capped_timeout(served, timeout, **fields):
    return served.stub.Decide(make_request(user="alice", **SMS_ONLY, **fields), timeout=timeout)


def _pause_writer(engine) -> threading.Event:
    release = threading.Event()
    engine.log.backend.writer.submit(lambda conn: release.wait(30))
    return release


def _failed_decisions(served) -> float:
    """Decide calls the server answered with an error (its handler returned), from its metrics."""
    return sum(sample.value for family in text_string_to_metric_families(served.server.metrics.render().decode())
               for sample in family.samples
               if sample.name == "offerbandit_decisions_total" and sample.labels.get("outcome") not in ("ok", None))


def test_deadline_exceeded_means_nothing_was_committed(start_server):
    served = start_server(SMS_CAP.format(log_extra="", max_users=1000))
    release = _pause_writer(served.engine)
    try:
        code, _ = code_of(lambda: capped_timeout(served, 0.5, event_id="late"))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        # the server's own wait ends a moment after the client's (much later on a busy machine): the writer
        # resumes only once the handler gave up, as a writer slower than the call's deadline would
        wait_for(lambda: _failed_decisions(served) >= 1, what="the server to give up on the decision")
    finally:
        release.set()
    served.engine.log.backend.writer.write(lambda conn: None, timeout=10)  # the queue has drained
    assert count(served.data_dir) == 0
    retried = capped(served, event_id="late")  # a fresh decision: nothing stood in its way
    assert retried.format == "sms" and count(served.data_dir) == 1


# --- item 4: only committed contacts count; eviction never lifts a cap ----------------------------

def test_a_full_queue_refusal_leaves_no_contact(start_server):
    served = start_server(SMS_CAP.format(log_extra="max_queue = 1", max_users=1000))
    writer = served.engine.log.backend.writer
    release = _pause_writer(served.engine)
    try:
        while writer.queue_depth:  # the pause is taken by the writer thread ...
            threading.Event().wait(0.01)
        writer.submit(lambda conn: None)  # ... and this fills the one queue slot
        code, details = code_of(lambda: capped(served))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue" in details
    finally:
        release.set()
    # the writer must take the filler job before the slot is free again (on a loaded machine it may not yet)
    wait_for(lambda: writer.queue_depth == 0, what="the writer to drain its one-slot queue")
    decision = capped(served)
    assert decision.exploration != "no_contact" and decision.format == "sms"
    assert capped(served).no_contact_reason == "cap"  # and the committed one does count


def test_flooding_with_random_ids_does_not_lift_a_real_users_cap(start_server):
    served = start_server(SMS_CAP.format(log_extra="", max_users=5))
    assert capped(served).format == "sms"
    for i in range(40):
        capped(served, user=f"random-{i}")
    assert len(served.engine.history) <= 5  # alice was evicted long ago
    again = capped(served)
    assert again.exploration == "no_contact" and again.no_contact_reason == "cap"
    # alice and random-0..3 came while the store held everyone the log knows (an embedded log: no read);
    # from the first eviction on, random-4.. and alice again are read from the log
    assert served.engine.history.loads == 37


# --- item 9: SQLite faults are UNAVAILABLE, with a plain message, and leave nothing behind ---------

def test_a_locked_log_is_unavailable_and_leaves_no_contact(start_server):
    served = start_server(SMS_CAP.format(log_extra="", max_users=1000))
    capped(served, user="warm-up")
    holder = sqlite3.connect(served.data_dir / "decisions.db", timeout=0.1, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, details = code_of(lambda: capped(served))
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "busy" in details or "locked" in details
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    decision = capped(served)
    assert decision.format == "sms"  # the refused call left no contact


def test_a_full_log_is_unavailable_and_the_server_recovers(start_server):
    served = start_server(SMS_CAP.format(log_extra="", max_users=1000))
    capped(served, user="warm-up")
    writer = served.engine.log.backend.writer
    pages = writer.write(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0], timeout=10)
    writer.write(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}").fetchone(), timeout=10)
    big = [(f"offer-{i:03d}", {"category": "c", "blurb": "x" * 200}) for i in range(200)]
    code, details = code_of(lambda: capped(served, offers=big))
    assert code == grpc.StatusCode.UNAVAILABLE and "full" in details
    writer.write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823").fetchone(), timeout=10)
    assert capped(served, offers=big).format == "sms"  # nothing of the refused call counted

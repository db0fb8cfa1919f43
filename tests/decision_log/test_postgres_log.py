"""What only the PostgreSQL log has: several writers on one log (two `DecisionLog`s, as two replicas),
PostgreSQL restarted under writes, a real older schema upgraded, masked URLs, its faults."""
from __future__ import annotations

import random
import socket
import threading
import time

import psycopg
import pytest

from decision_log import CapLimit, LogOptions, open_log
from decision_log.postgres.connection import as_log_fault, mask_url
from decision_log.postgres.schema import SCHEMA_VERSION, migrate_url
from offerbandit.errors import LogUnavailable
from tests.decision_log.test_decision_log import _row
from tests.waiting import wait_for


def _run_threads(targets) -> None:
    errors: list[BaseException] = []

    def guarded(target):
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def test_two_writers_racing_the_same_event_ids_commit_each_decision_once(postgres_url):
    first, second = open_log(postgres_url, writable=True), open_log(postgres_url, writable=True)
    ids = [f"e{i}" for i in range(300)]
    outcomes = []
    lock = threading.Lock()

    def writer(log, seed):
        order = ids[:]
        random.Random(seed).shuffle(order)
        for start in range(0, len(order), 7):
            futures = [log.insert_decisions([_row(e, user_key=f"u{seed}")]) for e in order[start:start + 7]]
            for future in futures:
                with lock:
                    outcomes.append(future.result(30))

    _run_threads([lambda log=log, seed=seed: writer(log, seed)
                  for seed, log in enumerate([first, second, first, second])])
    written = sum(o.written for o in outcomes)
    repeated = [e for o in outcomes for e in o.repeated]
    assert written == len(ids) and len(repeated) == 3 * len(ids)  # each id written once, three repeats each
    assert sorted(set(repeated)) == sorted(ids)
    assert first.count() == len(ids)
    first.close()
    second.close()


def test_two_writers_joining_rewards_join_each_once(postgres_url):
    first, second = open_log(postgres_url, writable=True), open_log(postgres_url, writable=True)
    now = time.time()
    events = [f"e{i}" for i in range(60)]
    rows = [_row(e, learn_due_at=now + 3600, campaign="once" if i % 2 else "summed") for i, e in enumerate(events)]
    first.insert_decisions(rows).result(30)
    aggregation = lambda campaign: "sum" if campaign == "summed" else "first"  # noqa: E731
    acks = []
    lock = threading.Lock()

    def rewarder(log, seed):
        order = events[:]
        random.Random(seed).shuffle(order)
        for event in order:
            for reward_id in ("r1", "r2"):  # every thread sends the same two rewards: retries of one another
                outcome = log.record_reward(event, 0.25, reward_id, time.time(), aggregation).result(30)
                with lock:
                    acks.append((event, reward_id, outcome))

    _run_threads([lambda log=log, seed=seed: rewarder(log, seed)
                  for seed, log in enumerate([first, second, first, second])])
    for event, row in zip(events, rows):
        accepted = [(rid, o) for e, rid, o in acks if e == event and o.accepted and not o.retried]  # joined it
        retries = [o for e, rid, o in acks if e == event and o.retried]
        assert len(retries) == 2 * 4 - 2  # every other call of the same (event, reward_id) answered as stored
        stored = first.find_decision(event)
        if row.campaign == "summed":  # each (event, reward_id) joined once: two rewards add up
            assert sorted(rid for rid, _ in accepted) == ["r1", "r2"]
            assert stored.reward == pytest.approx(0.5) and stored.learned_at is None
        else:  # first: one reward counts, the event is claimed for learning once
            assert len(accepted) == 1 and accepted[0][1].learn_seq is not None
            assert stored.reward == 0.25 and stored.learned_at is not None
    counted = first.backend._conn().execute("SELECT event_id, count(*) FROM rewards WHERE status = 'counted' "
                                            "GROUP BY event_id").fetchall()
    assert {e: n for e, n in counted} == {r.event_id: 2 if r.campaign == "summed" else 1 for r in rows}
    first.close()
    second.close()


def test_caps_are_exact_when_two_writers_contact_one_customer_at_once(postgres_url):
    first, second = open_log(postgres_url, writable=True), open_log(postgres_url, writable=True)
    caps = (CapLimit("*", 3600.0, 3), CapLimit("sms", 3600.0, 5))
    customers = [f"c{i}" for i in range(8)]
    outcomes = []
    lock = threading.Lock()

    def writer(log, tag):
        futures = []
        for n in range(4):
            for customer in customers:
                row = _row(f"{tag}-{customer}-{n}", user_key=customer, decided_at=time.time(), caps=caps)
                futures.append(log.insert_decisions([row]))
        for future in futures:
            with lock:
                outcomes.append(future.result(30))

    _run_threads([lambda log=log, tag=tag: writer(log, tag)
                  for tag, log in [("a", first), ("b", second), ("c", first), ("d", second)]])
    capped = {e for o in outcomes for e in o.capped}
    assert sum(o.written for o in outcomes) == 4 * 4 * len(customers) and len(capped) == (16 - 3) * len(customers)
    for customer in customers:
        rows = first.backend.user_decisions(customer, 0.0, 100)
        contacts = [r for r in rows if r["chosen_index"] is not None]
        assert len(contacts) == 3, customer  # never four: the second writer saw the first's commit
        assert all(r["no_contact_reason"] == "cap" and r["exploration"] == "no_contact" and r["probability"] == 1.0
                   for r in rows if r["chosen_index"] is None)
        assert {r["event_id"] for r in rows if r["chosen_index"] is None} <= capped
    first.close()
    second.close()


def test_postgres_restarted_under_writes_loses_no_acknowledged_write_and_recovers(postgres_url, postgres_cluster):
    log = open_log(postgres_url, writable=True, options=LogOptions(busy_timeout_ms=300, connect_timeout_s=5))
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write_forever():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                outcome = log.insert_decisions([_row(f"w{n}", decided_at=time.time())]).result(30)
                assert outcome.written == 1
                acknowledged.append(f"w{n}")
            except LogUnavailable as exc:
                failures.append(exc)
                time.sleep(0.02)
            except BaseException as exc:  # noqa: BLE001 - anything else is a failure of the test
                failures.append(exc)
                return

    writer = threading.Thread(target=write_forever)
    writer.start()
    wait_for(lambda: len(acknowledged) >= 20, 30, "writes before the restart")
    postgres_cluster.stop("immediate")  # a crash: no shutdown checkpoint; committed means in the WAL
    try:
        wait_for(lambda: failures, 30, "writes to fail while PostgreSQL is down")
        down_acks = len(acknowledged)
        with pytest.raises(LogUnavailable):
            log.find_decision("w1")
        time.sleep(0.5)
        assert len(acknowledged) == down_acks  # nothing is acknowledged while it is down
    finally:
        postgres_cluster.start()
    wait_for(lambda: len(acknowledged) >= down_acks + 20, 60, "writes to succeed again without reopening")
    stop.set()
    writer.join(30)
    assert all(isinstance(f, LogUnavailable) for f in failures), [type(f) for f in failures]
    log.close()
    # what is on disk, read on a connection of its own (the log's reader pool may still be reconnecting:
    # with this test's 0.3 s pool timeout its first read after the restart can be UNAVAILABLE, as it should)
    with psycopg.connect(postgres_url) as conn:
        stored = {r[0] for r in conn.execute("SELECT event_id FROM decisions")}
    assert set(acknowledged) <= stored  # no acknowledged write lost


def test_a_log_of_schema_2_is_upgraded(new_postgres_url):
    url = new_postgres_url(migrated=False)
    assert migrate_url(url, create=True, target=2) == 2
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO offer_sets (id, offers) VALUES ('s', '[]')")
        conn.execute("INSERT INTO decisions (event_id, campaign, decided_at, user_key, probability, policy_version, "
                     "exploration, deferred, offer_set, context, numeric, formats, time_slots) "
                     "VALUES ('old', 'default', 1.0, 'u', 1.0, 'bootstrap', 'no_contact', 0, 's', '{}', '{}', "
                     "'[]', '[]')")
    with open_log(url) as log:  # a reader upgrades it too
        assert log.find_decision("old").exploration == "no_contact"
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT max(version) FROM offerbandit_schema").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT to_regclass('log_keys')").fetchone()[0] is not None


def test_printed_urls_mask_the_password():
    assert mask_url("postgresql://ana:s3cret@db.example:5432/log") == "postgresql://ana:***@db.example:5432/log"
    assert mask_url("postgres://ana@db/log") == "postgres://ana@db/log"


def test_an_unreachable_log_is_unavailable_after_the_connect_timeout_without_its_password():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(LogUnavailable) as err:
        open_log(f"postgresql://ana:s3cret@127.0.0.1:{port}/log", writable=True,
                 options=LogOptions(connect_timeout_s=1.0))
    assert 0.9 <= time.monotonic() - started < 15
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    assert "refused" in str(err.value)  # libpq's reason, in the one line


def test_expected_postgres_faults_become_log_unavailable():
    assert isinstance(as_log_fault(psycopg.OperationalError("server closed the connection unexpectedly")),
                      LogUnavailable)
    assert isinstance(as_log_fault(psycopg.errors.AdminShutdown("terminating connection")), LogUnavailable)
    integrity = psycopg.errors.UniqueViolation("duplicate key")
    assert as_log_fault(integrity) is integrity


def test_a_group_whose_connection_dropped_is_never_reported_committed(postgres_url):
    log = open_log(postgres_url, writable=True)
    try:
        log.insert_decisions([_row("before")]).result(10)
        inside = threading.Event()
        release = threading.Event()
        log.backend.writer.submit(lambda conn: (inside.set(), release.wait(30)))
        lost = log.insert_decisions([_row("lost")])
        assert inside.wait(10)
        with psycopg.connect(postgres_url, autocommit=True) as admin:  # the writer's backend dies mid-group
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = current_database() AND state = 'idle in transaction'").fetchone()[0]
        assert killed == 1
        release.set()
        with pytest.raises(LogUnavailable):
            lost.result(10)
        assert log.find_decision("lost") is None
        assert log.insert_decisions([_row("after")]).result(10).written == 1  # a fresh connection, no reopening
    finally:
        log.close()

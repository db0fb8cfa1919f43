"""The single log writer (group commit, merged inserts, failure isolation, durability on close), the
versioned schema and the one opener — on both backends (``log_place``: SQLite and PostgreSQL)."""
from __future__ import annotations

import sqlite3
import threading

import psycopg
import pytest

from decision_log import SCHEMA_VERSION, DecisionRow, InsertOutcome, open_log
from offerbandit.errors import InvalidInput, LogNotFound


def _row(event_id: str, user_key: str = "u", decided_at: float = 1.0, **changes) -> DecisionRow:
    fields = dict(event_id=event_id, campaign="default", decided_at=decided_at, user_key=user_key, context_json="{}",
                  numeric_json="{}", offer_set_id="s", offer_set_json="[]", formats_json="[]",
                  time_slots_json="[]", eligible=b"", pmf=b"", policy_pmf=b"", chosen_index=0,
                  offer_id="o", format="sms", time_slot="m", probability=0.5, policy_version="bootstrap",
                  exploration="exploit", beta=0.0, deferred=False, learn_due_at=None, baseline_json=None,
                  no_contact_reason="", removed="{}")
    fields.update(changes)
    return DecisionRow(**fields)


def _paused(writer) -> threading.Event:
    release = threading.Event()
    writer.submit(lambda conn: release.wait(30))
    return release


def test_queued_inserts_share_one_commit(log_place):
    log = open_log(log_place.where, writable=True)
    writer = log.backend.writer
    release = _paused(writer)
    futures = [log.insert_decisions([_row(f"e{i}")]) for i in range(50)]
    commits_before = writer.commits
    release.set()
    assert [f.result(10) for f in futures] == [InsertOutcome(1)] * 50
    assert writer.commits - commits_before <= 2  # the paused op's group, then one for all 50
    log.close()
    with open_log(log_place.where) as again:
        assert again.count() == 50


def test_a_failing_insert_fails_alone_in_its_group(log_place):
    log = open_log(log_place.where, writable=True)
    writer = log.backend.writer
    log.insert_decisions([_row("taken")]).result(10)
    release = _paused(writer)
    before = log.insert_decisions([_row("a"), _row("b")])
    clash = log.insert_decisions([_row("c"), _row("taken")])
    broken = writer.submit(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
    after = log.insert_decisions([_row("d")])
    release.set()
    assert before.result(10).written == 2 and after.result(10).written == 1
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.UndefinedTable)):
        broken.result(10)
    if log_place.kind == "sqlite":  # one writer: a duplicate is a bug of the caller, and fails its call
        with pytest.raises(sqlite3.IntegrityError):
            clash.result(10)
        expected = {"taken", "a", "b", "d"}  # nothing of the clashing call, all of its neighbours
    else:  # several writers: another replica's earlier commit is a repeat, the rest of the call is written
        assert clash.result(10) == InsertOutcome(1, repeated=("taken",))
        expected = {"taken", "a", "b", "c", "d"}
    log.close()
    assert {r[0] for r in log_place.sql("SELECT event_id FROM decisions")} == expected


def test_close_writes_everything_queued(log_place):
    log = open_log(log_place.where, writable=True)
    futures = [log.insert_decisions([_row(f"q{i}")]) for i in range(200)]
    log.close()
    assert all(f.result(0).written == 1 for f in futures)
    if log_place.kind == "sqlite":
        wal = log_place.where / "decisions.db-wal"
        assert not wal.exists() or wal.stat().st_size == 0
    assert log_place.sql("SELECT count(*) FROM decisions")[0][0] == 200


def test_schema_version_is_recorded(log_place):
    open_log(log_place.where, writable=True).close()
    assert log_place.schema_version() == SCHEMA_VERSION >= 3


def test_a_log_from_before_versioning_is_upgraded_in_place(log_place):
    with open_log(log_place.where, writable=True) as log:
        log.insert_decisions([_row("old")]).result(10)
    log_place.set_schema_version(0)  # what the code before versioning left behind
    with open_log(log_place.where) as log:
        assert log.count() == 1 and log.find_decision("old") is not None
    assert log_place.schema_version() == SCHEMA_VERSION


def test_a_log_newer_than_the_code_is_refused(log_place):
    open_log(log_place.where, writable=True).close()
    log_place.set_schema_version(SCHEMA_VERSION + 1)
    for writable in (False, True):
        with pytest.raises(InvalidInput, match="newer than this code") as err:
            open_log(log_place.where, writable=writable)
        assert err.value.field == ("data-dir" if log_place.kind == "sqlite" else "log-url")


def test_the_opener_names_what_is_missing_or_foreign(tmp_path, new_postgres_url):
    with pytest.raises(LogNotFound, match="no decision log at"):
        open_log(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()  # reading never creates a log
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / "decisions.db").execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(InvalidInput, match="not a decision log"):
        open_log(foreign)
    empty = new_postgres_url(migrated=False)
    with pytest.raises(InvalidInput, match="not a decision log") as err:
        open_log(empty)  # reading never creates a log there either
    assert err.value.field == "log-url"
    with pytest.raises(InvalidInput, match="unsupported decision log URL"):
        open_log("mysql://localhost/log")


def test_a_url_and_a_data_dir_open_the_same_log(log_place):
    with open_log(log_place.where, writable=True) as log:
        log.insert_decisions([_row("e1")]).result(10)
        location = log.location
        assert log.shared is (log_place.kind == "postgres")  # several processes write a PostgreSQL log
    if log_place.kind == "sqlite":
        assert location == f"sqlite:///{(log_place.where / 'decisions.db').resolve()}"
    else:
        assert location == log_place.where  # no password in it to mask
    with open_log(location) as log:
        assert log.find_decision("e1").event_id == "e1"
        assert log.last_seq() == 1 and log.campaigns() == ("default",)


def test_a_call_cancelled_before_the_writer_took_it_is_never_written(log_place):
    with open_log(log_place.where, writable=True) as log:
        release = _paused(log.backend.writer)
        kept, dropped = log.insert_decisions([_row("kept")]), log.insert_decisions([_row("dropped")])
        assert dropped.cancel()
        release.set()
        assert kept.result(10).written == 1
        assert log.find_decision("dropped") is None and log.count() == 1

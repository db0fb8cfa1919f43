"""The single log writer (group commit, merged inserts, failure isolation, durability on close), the
versioned schema and the one opener."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from decision_log import SCHEMA_VERSION, DecisionRow, open_log
from decision_log.sqlite.queries import LogReader
from decision_log.sqlite.write_ops import insert_decisions
from decision_log.sqlite.writer import LogWriter
from offerbandit.errors import InvalidInput, LogNotFound


def _row(event_id: str) -> DecisionRow:
    return DecisionRow(event_id=event_id, campaign="default", decided_at=1.0, user_key="u", context_json="{}",
                       numeric_json="{}", offer_set_id="s", offer_set_json="[]", formats_json="[]",
                       time_slots_json="[]", eligible=b"", pmf=b"", policy_pmf=b"", chosen_index=0,
                       offer_id="o", format="sms", time_slot="m", probability=0.5, policy_version="bootstrap",
                       exploration="exploit", beta=0.0, deferred=False, learn_due_at=None, baseline_json=None,
                       no_contact_reason="", removed_json="{}")


def _paused(writer: LogWriter) -> threading.Event:
    release = threading.Event()
    writer.submit(lambda conn: release.wait(30))
    return release


def test_queued_inserts_share_one_commit(tmp_path):
    writer = LogWriter(tmp_path / "log.db")
    release = _paused(writer)
    futures = [writer.submit(insert_decisions([_row(f"e{i}")])) for i in range(50)]
    commits_before = writer.commits
    release.set()
    assert [f.result(10) for f in futures] == [1] * 50
    assert writer.commits - commits_before <= 2  # the paused op's group, then one for all 50
    writer.close()
    assert LogReader(tmp_path / "log.db").count() == 50


def test_a_failing_insert_fails_alone_in_its_group(tmp_path):
    writer = LogWriter(tmp_path / "log.db")
    writer.write(insert_decisions([_row("taken")]))
    release = _paused(writer)
    before = writer.submit(insert_decisions([_row("a"), _row("b")]))
    clash = writer.submit(insert_decisions([_row("c"), _row("taken")]))
    broken = writer.submit(lambda conn: conn.execute("INSERT INTO no_such_table VALUES (1)"))
    after = writer.submit(insert_decisions([_row("d")]))
    release.set()
    assert before.result(10) == 2 and after.result(10) == 1
    with pytest.raises(sqlite3.IntegrityError):
        clash.result(10)
    with pytest.raises(sqlite3.OperationalError):
        broken.result(10)
    writer.close()
    ids = {r[0] for r in sqlite3.connect(tmp_path / "log.db").execute("SELECT event_id FROM decisions")}
    assert ids == {"taken", "a", "b", "d"}  # nothing of the clashing call, all of its neighbours


def test_close_writes_everything_queued(tmp_path):
    writer = LogWriter(tmp_path / "log.db")
    futures = [writer.submit(insert_decisions([_row(f"q{i}")])) for i in range(200)]
    writer.close()
    assert all(f.result(0) == 1 for f in futures)
    assert not (tmp_path / "log.db-wal").exists() or (tmp_path / "log.db-wal").stat().st_size == 0
    assert LogReader(tmp_path / "log.db").count() == 200


def test_schema_version_is_recorded(tmp_path):
    open_log(tmp_path, writable=True).close()
    version, = sqlite3.connect(tmp_path / "decisions.db").execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION >= 1


def test_a_log_from_before_versioning_is_upgraded_in_place(tmp_path):
    writer = LogWriter(tmp_path / "decisions.db")
    writer.write(insert_decisions([_row("old")]))
    writer.close()
    con = sqlite3.connect(tmp_path / "decisions.db")
    con.execute("PRAGMA user_version = 0")  # what the code before versioning left behind
    con.close()
    with open_log(tmp_path) as log:
        assert log.count() == 1 and log.find_decision("old") is not None
    version, = sqlite3.connect(tmp_path / "decisions.db").execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION


def test_a_log_newer_than_the_code_is_refused(tmp_path):
    open_log(tmp_path, writable=True).close()
    con = sqlite3.connect(tmp_path / "decisions.db")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    for writable in (False, True):
        with pytest.raises(InvalidInput, match="newer than this code") as err:
            open_log(tmp_path, writable=writable)
        assert err.value.field == "data-dir"


def test_the_opener_names_what_is_missing_or_foreign(tmp_path):
    with pytest.raises(LogNotFound, match="no decision log at"):
        open_log(tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()  # reading never creates a log
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    sqlite3.connect(foreign / "decisions.db").execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(InvalidInput, match="not a decision log"):
        open_log(foreign)
    with pytest.raises(InvalidInput, match="unsupported decision log URL"):
        open_log("postgresql://localhost/log")


def test_a_url_and_a_data_dir_open_the_same_log(tmp_path):
    with open_log(tmp_path, writable=True) as log:
        log.insert_decisions([_row("e1")]).result(10)
        location = log.location
    assert location == f"sqlite:///{(tmp_path / 'decisions.db').resolve()}"
    with open_log(location) as log:
        assert log.find_decision("e1").event_id == "e1"
        assert log.last_seq() == 1 and log.campaigns() == ("default",)

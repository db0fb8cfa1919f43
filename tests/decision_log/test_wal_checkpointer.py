"""The SQLite log's WAL is copied into the main file by a thread of the writer, never inside a commit (an
automatic checkpoint in the COMMIT that crossed 4,000 pages held every queued decision ~200 ms)."""
import sqlite3
import time

import pytest

from decision_log.sqlite.writer import LogWriter
from offerbandit.errors import InvalidInput
from service.config import parse_config

PAYLOAD = b"x" * 8000


def _fill(writer: LogWriter, rows: int) -> None:
    writer.write(lambda conn: conn.execute("CREATE TABLE IF NOT EXISTS scratch (id INTEGER PRIMARY KEY, b BLOB)"))
    for _ in range(rows):
        writer.write(lambda conn: conn.execute("INSERT INTO scratch (b) VALUES (?)", (PAYLOAD,)))


def _autocheckpoint(writer: LogWriter) -> int:
    return int(writer._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def test_the_writer_never_checkpoints_in_a_commit_and_its_thread_copies_the_wal(tmp_path):
    path = tmp_path / "decisions.db"
    writer = LogWriter(path, autocheckpoint_pages=4, wal_checkpoint_s=0.05)
    try:
        assert _autocheckpoint(writer) == 0  # not the 4 pages asked for: the commits must not checkpoint
        assert writer.checkpointer is not None
        writer.checkpointer._stop.set()  # hold the thread still: its interval ends at once, and it stops
        writer.checkpointer._thread.join(timeout=10)
        size_before = path.stat().st_size
        _fill(writer, 200)  # ~1.6 MB: far past 4 pages, so an automatic checkpoint would have grown the file
        assert path.stat().st_size == size_before  # the rows are in the WAL only: no commit copied them
        assert writer.checkpointer.checkpoint_now()
        assert path.stat().st_size > size_before + 200 * len(PAYLOAD) // 2
        assert not writer.checkpointer.checkpoint_now()  # nothing committed since: nothing to do
        check = sqlite3.connect(path)
        assert check.execute("SELECT count(*) FROM scratch").fetchone()[0] == 200
        check.close()
    finally:
        writer.close()


def test_the_checkpointer_thread_runs_on_its_own_and_stops_with_the_writer(tmp_path):
    path = tmp_path / "decisions.db"
    writer = LogWriter(path, wal_checkpoint_s=0.05)
    checkpointer = writer.checkpointer
    try:
        size_before = path.stat().st_size
        _fill(writer, 50)
        deadline = time.monotonic() + 30
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpointer.checkpoints >= 1 and checkpointer.failures == 0
        assert path.stat().st_size > size_before
    finally:
        writer.close()
    assert not checkpointer._thread.is_alive()


def test_zero_seconds_leaves_checkpoints_to_the_commits_as_sqlite_does(tmp_path):
    writer = LogWriter(tmp_path / "decisions.db", autocheckpoint_pages=123, wal_checkpoint_s=0)
    try:
        assert writer.checkpointer is None
        assert _autocheckpoint(writer) == 123
    finally:
        writer.close()


@pytest.mark.parametrize("key, value", [("wal_checkpoint_seconds", "-1"), ("wal_autocheckpoint_pages", "-5")])
def test_a_negative_checkpoint_setting_is_refused_naming_its_key(key, value):
    with pytest.raises(InvalidInput) as refused:
        parse_config(f"[log]\n{key} = {value}\n")
    assert refused.value.field == f"log.{key}"

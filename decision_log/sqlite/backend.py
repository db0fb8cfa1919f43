"""`SqliteBackend`: the decision log in one SQLite file (WAL), written by one group-committing thread."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from decision_log.sqlite.shared_ops import SharedOperations
from decision_log.records import AliasMove, DecisionRow, LogOptions, ShadowScore
from decision_log.write_outcomes import InsertOutcome
from decision_log.sqlite import alias_ops
from decision_log.sqlite.connection import connect, reclaim_space, run_in_own_transaction
from decision_log.sqlite.faults import log_faults
from decision_log.sqlite.learner_lock import FileLock, learner_lock
from decision_log.sqlite.queries import LogReader
from decision_log.sqlite.schema import migrate
from decision_log.sqlite.write_ops import insert_decisions, insert_shadow_scores
from decision_log.sqlite.writer import LogWriter
from offerbandit.errors import InvalidInput, LogNotFound

LOG_FILE = "decisions.db"


def log_path(data_dir: Path) -> Path:
    """The log file of a data directory."""
    return Path(data_dir) / LOG_FILE


class SqliteBackend(SharedOperations, LogReader):
    """The named queries of `LogReader` plus the writes. ``writable``: a `LogWriter` thread (it creates
    and migrates the file); else the file must already hold a log (migrated if it is older)."""

    shared = False  # one process writes this log

    def __init__(self, path: Path, options: LogOptions = LogOptions(), *, writable: bool = True,
                 on_queue_depth: Callable[[int], None] | None = None) -> None:
        path = Path(path)
        self.writer: LogWriter | None = None
        if writable:
            self.writer = LogWriter(path, synchronous=options.synchronous, max_group=options.max_group,
                                    max_queue=options.max_queue, busy_timeout_ms=options.busy_timeout_ms,
                                    autocheckpoint_pages=options.wal_autocheckpoint_pages,
                                    wal_checkpoint_s=options.wal_checkpoint_seconds,
                                    on_queue_depth=on_queue_depth)
        else:
            _upgrade_existing(path, options.busy_timeout_ms)
        super().__init__(path, options.busy_timeout_ms)
        self._busy_timeout_ms = options.busy_timeout_ms

    @property
    def location(self) -> str:
        return f"sqlite:///{self.path.resolve()}"

    # --- writes ---------------------------------------------------------------------------------
    def insert_decisions(self, rows: Sequence[DecisionRow]) -> Future[InsertOutcome]:
        return self._submit(insert_decisions(rows))

    def insert_shadow_scores(self, scores: Sequence[ShadowScore]) -> Future[int]:
        return self._submit(insert_shadow_scores(scores))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        super().close()

    # --- the order of learning (learn_seq) and alias moves ---------------------------------------
    @log_faults
    def alias_move(self, campaign: str, alias: str, kind: str, who: str, why: str,
                   move: alias_ops.Mover) -> AliasMove | None:
        """``move`` under the alias lock beside the log (never the log's write lock: decisions commit
        meanwhile); the ``alias_moves`` row in a short transaction of the log while that lock is held."""
        def write(op: Callable[[sqlite3.Connection], Any]) -> Any:
            if self.writer is not None:  # the server: one operation of its writer's next group
                return self.writer.write(op, timeout=60)
            return self._own_transaction(op)

        return alias_ops.move_under_alias_lock(self.path, campaign, alias, kind, who, why, move, write)

    @log_faults
    def _own_transaction(self, op: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run one write operation in a ``BEGIN IMMEDIATE`` of its own connection (never in the writer's queue)."""
        return run_in_own_transaction(self.path, self._busy_timeout_ms, op)

    @log_faults
    def reclaim_space(self) -> bool:
        return reclaim_space(self.path, self._busy_timeout_ms)

    def alias_moves(self, campaign: str, alias: str, kinds: Sequence[str]) -> list[AliasMove]:
        return alias_ops.alias_moves(self._conn(), campaign, alias, kinds)

    def newest_alias_move_id(self) -> int:
        return alias_ops.newest_alias_move_id(self._conn())

    def learner_lock(self) -> AbstractContextManager[FileLock]:
        return learner_lock(self.path)


def _upgrade_existing(path: Path, busy_timeout_ms: int) -> None:
    """Refuse a missing file or one that holds no log; bring an older log up to this code's schema."""
    if not path.is_file():
        raise LogNotFound(path)
    try:
        conn = connect(path, synchronous="NORMAL", busy_timeout_ms=busy_timeout_ms)
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path} is not a decision log: {exc}", field="data-dir") from exc
    try:
        migrate(conn, path, create=False)
    finally:
        conn.close()

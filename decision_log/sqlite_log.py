"""The decision log: one SQLite file in WAL mode, one writer thread with group commit.

The request path never opens a transaction: it hands a *write operation* to :class:`LogWriter` and
waits on the returned future. The writer thread takes every operation queued at that moment, runs
them in one ``BEGIN IMMEDIATE`` transaction (each inside its own SAVEPOINT, so one failing operation
does not undo its neighbours) and commits once, so many decisions share one fsync. A future resolves
only after COMMIT returned: an acknowledged decision or reward is on disk (``synchronous=FULL``).

Readers use their own connections (:class:`LogReader`, one per thread).

Tables:
- ``decisions``: one row per decision, as it was decided (candidates, eligible arms, full pmf,
  the chosen arm and its exact probability as REAL, policy version, exploration kind,
  deferred/activation state, reward-window deadline, the joined reward). The pmf is a float64 blob
  so a repeated event_id returns the original decision bit for bit.
- ``rewards``: every reward call that named a known event, with its status (counted, duplicate, late).
- ``offer_sets``: content-addressed snapshots of the candidate offers with their features.
- ``shadow_scores``: the challenger's pmf on the same requests (off the request path).
"""
from __future__ import annotations

import hashlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from offerbandit.errors import LogClosed, NotFound, Overloaded
from policies.types import Offer

LOG_FILE = "decisions.db"

WriteOp = Callable[[sqlite3.Connection], Any]


def log_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOG_FILE


def encode_offers(offers: Sequence[Offer]) -> tuple[str, str]:
    """Canonical JSON of an offer list and its content hash (the offer-set id)."""
    text = json.dumps([[o.id, dict(sorted(o.features.items()))] for o in offers], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32], text


def decode_offers(text: str) -> tuple[Offer, ...]:
    return tuple(Offer(oid, feats) for oid, feats in json.loads(text))


def pmf_to_blob(pmf: np.ndarray) -> bytes:
    return np.asarray(pmf, dtype="<f8").tobytes()


def blob_to_pmf(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros(0, dtype=np.float64)
    return np.frombuffer(blob, dtype="<f8").copy()


def indices_to_blob(indices: Sequence[int]) -> bytes:
    return np.asarray(indices, dtype="<u4").tobytes()


def blob_to_indices(blob: bytes | None) -> np.ndarray:
    if not blob:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(blob, dtype="<u4").astype(np.int64)


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One decision exactly as it was made; the unit the request path hands to the writer."""

    event_id: str
    campaign: str
    decided_at: float
    user_key: str
    context_json: str
    numeric_json: str
    offer_set_id: str
    offer_set_json: str
    formats_json: str
    time_slots_json: str
    eligible: bytes
    pmf: bytes
    policy_pmf: bytes
    chosen_index: int | None
    offer_id: str
    format: str
    time_slot: str
    probability: float
    policy_version: str
    exploration: str
    beta: float
    deferred: bool
    learn_due_at: float | None
    baseline_json: str | None
    no_contact_reason: str
    removed_json: str


def create_schema(conn: sqlite3.Connection) -> None:
    db = sqlite_utils.Database(conn)
    db["decisions"].create({
        "seq": int, "event_id": str, "campaign": str, "decided_at": float, "user_key": str,
        "context": str, "numeric": str, "offer_set": str, "formats": str, "time_slots": str,
        "eligible": bytes, "pmf": bytes, "policy_pmf": bytes, "chosen_index": int,
        "offer_id": str, "format": str, "time_slot": str, "probability": float,
        "policy_version": str, "exploration": str, "beta": float, "deferred": int,
        "activated_at": float, "learn_due_at": float, "learned_at": float,
        "reward": float, "reward_count": int, "baseline": str, "no_contact_reason": str, "removed": str,
    }, pk="seq", not_null={"event_id", "campaign", "decided_at", "user_key", "probability",
                           "policy_version", "exploration", "deferred"},
        defaults={"reward_count": 0}, if_not_exists=True)
    db["rewards"].create({
        "id": int, "event_id": str, "reward_id": str, "value": float, "received_at": float, "status": str,
    }, pk="id", not_null={"event_id", "value", "received_at", "status"}, if_not_exists=True)
    db["offer_sets"].create({"id": str, "offers": str}, pk="id", not_null={"offers"}, if_not_exists=True)
    db["shadow_scores"].create({
        "event_id": str, "policy_version": str, "pmf": bytes, "chosen_probability": float, "scored_at": float,
    }, pk=("event_id", "policy_version"), if_not_exists=True)
    db["decisions"].create_index(["event_id"], unique=True, if_not_exists=True)
    db["decisions"].create_index(["learned_at", "learn_due_at"], if_not_exists=True)
    db["decisions"].create_index(["user_key", "decided_at"], if_not_exists=True)
    db["decisions"].create_index(["campaign", "decided_at"], if_not_exists=True)
    db["rewards"].create_index(["event_id"], if_not_exists=True)


def _connect(path: Path, *, synchronous: str, busy_timeout_ms: int, autocheckpoint: int = 1000,
             readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    else:
        conn.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
    return conn


_INSERT_DECISION = """
INSERT INTO decisions (event_id, campaign, decided_at, user_key, context, numeric, offer_set, formats,
  time_slots, eligible, pmf, policy_pmf, chosen_index, offer_id, format, time_slot, probability,
  policy_version, exploration, beta, deferred, learn_due_at, baseline, no_contact_reason, removed)
VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
"""


@dataclass(frozen=True)
class InsertDecisions:
    """A write operation inserting decisions (all or none of them).

    The writer merges consecutive InsertDecisions of one group into a single ``executemany`` (one
    SAVEPOINT instead of one per call); if the merged insert fails, it retries them one by one so
    only the offending call fails.
    """

    rows: tuple[DecisionRow, ...]

    def __call__(self, conn: sqlite3.Connection) -> int:
        return _insert_rows(conn, self.rows)


def insert_decisions(rows: Sequence[DecisionRow]) -> InsertDecisions:
    return InsertDecisions(tuple(rows))


def _insert_rows(conn: sqlite3.Connection, rows: Sequence[DecisionRow]) -> int:
    conn.executemany("INSERT OR IGNORE INTO offer_sets (id, offers) VALUES (?, ?)",
                     {(r.offer_set_id, r.offer_set_json) for r in rows})
    conn.executemany(_INSERT_DECISION, [
        (r.event_id, r.campaign, r.decided_at, r.user_key, r.context_json, r.numeric_json, r.offer_set_id,
         r.formats_json, r.time_slots_json, r.eligible, r.pmf, r.policy_pmf, r.chosen_index,
         r.offer_id or None, r.format or None, r.time_slot or None, r.probability, r.policy_version,
         r.exploration, r.beta, int(r.deferred), r.learn_due_at, r.baseline_json, r.no_contact_reason or None,
         r.removed_json)
        for r in rows])
    return len(rows)


def _runs_of_inserts(batch: list[tuple[WriteOp, Future]]) -> list[list[tuple[WriteOp, Future]]]:
    """Split a group into runs: consecutive InsertDecisions together, every other op alone."""
    runs: list[list[tuple[WriteOp, Future]]] = []
    for item in batch:
        if isinstance(item[0], InsertDecisions) and runs and isinstance(runs[-1][0][0], InsertDecisions):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


class LogWriter:
    """The only writer of the decision log. Thread-safe ``submit``; one thread does all writes."""

    def __init__(self, path: Path, *, synchronous: str = "FULL", max_group: int = 512, max_queue: int = 20000,
                 busy_timeout_ms: int = 5000, autocheckpoint_pages: int = 4000,
                 on_queue_depth: Callable[[int], None] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                              autocheckpoint=autocheckpoint_pages)
        create_schema(self._conn)
        self._conn.row_factory = sqlite3.Row
        self._max_group = max_group
        self._queue: queue.Queue[tuple[WriteOp, Future] | None] = queue.Queue(maxsize=max_queue)
        self._on_queue_depth = on_queue_depth
        self._closed = threading.Event()
        self.commits = 0
        self.ops_written = 0
        self._thread = threading.Thread(target=self._run, name="decision-log-writer", daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, op: WriteOp) -> Future:
        """Queue ``op``; the future resolves with its result after the COMMIT that contains it."""
        if self._closed.is_set():
            raise LogClosed("the decision log is closed")
        future: Future = Future()
        try:
            self._queue.put_nowait((op, future))
        except queue.Full:
            raise Overloaded("decision log queue is full; retry later") from None
        return future

    def write(self, op: WriteOp, timeout: float | None = None) -> Any:
        """Submit and wait for the commit."""
        return self.submit(op).result(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while len(batch) < self._max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit(batch)
            if self._on_queue_depth is not None:
                self._on_queue_depth(self._queue.qsize())
            if stop:
                break
        self._drain_after_close()

    def _drain_after_close(self) -> None:
        leftovers = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                leftovers.append(item)
        if leftovers:
            self._commit(leftovers)

    def _commit(self, batch: list[tuple[WriteOp, Future]]) -> None:
        results: list[tuple[Future, Any, BaseException | None]] = []
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            for run in _runs_of_inserts(batch):
                if len(run) > 1 and self._merged_insert(conn, run, results):
                    continue
                for op, future in run:
                    results.append(self._one(conn, op, future))
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - the whole group failed: every caller learns it
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.commits += 1
        self.ops_written += len(batch)
        for future, value, exc in results:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(value)

    @staticmethod
    def _one(conn: sqlite3.Connection, op: WriteOp, future: Future) -> tuple[Future, Any, BaseException | None]:
        conn.execute("SAVEPOINT op")
        try:
            value = op(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            return future, None, exc
        conn.execute("RELEASE op")
        return future, value, None

    @staticmethod
    def _merged_insert(conn: sqlite3.Connection, run: list[tuple[WriteOp, Future]],
                       results: list[tuple[Future, Any, BaseException | None]]) -> bool:
        """Insert a run of InsertDecisions with one executemany; False (nothing written) if it fails."""
        conn.execute("SAVEPOINT merged")
        try:
            _insert_rows(conn, [row for op, _ in run for row in op.rows])
        except sqlite3.Error:
            conn.execute("ROLLBACK TO merged")
            conn.execute("RELEASE merged")
            return False
        conn.execute("RELEASE merged")
        results.extend((future, len(op.rows), None) for op, future in run)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, checkpoint the WAL into the main file, close."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()


class LogReader:
    """Read-only access to the log; each thread gets its own connection."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, synchronous="NORMAL", busy_timeout_ms=self._busy, readonly=True)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def find_decision(self, event_id: str) -> sqlite3.Row | None:
        return self.conn().execute("SELECT * FROM decisions WHERE event_id = ?", (event_id,)).fetchone()

    def offer_set(self, offer_set_id: str) -> tuple[Offer, ...]:
        row = self.conn().execute("SELECT offers FROM offer_sets WHERE id = ?", (offer_set_id,)).fetchone()
        if row is None:
            raise NotFound(f"unknown offer set {offer_set_id!r}")
        return decode_offers(row["offers"])

    def due_for_learning(self, now: float, limit: int = 1000) -> list[sqlite3.Row]:
        return self.conn().execute(
            "SELECT * FROM decisions WHERE learned_at IS NULL AND learn_due_at IS NOT NULL "
            "AND learn_due_at <= ? ORDER BY learn_due_at LIMIT ?", (now, limit)).fetchall()

    def iter_decisions(self, *, since: float | None = None, campaign: str | None = None,
                       chunk: int = 5000) -> Iterator[sqlite3.Row]:
        """All decisions in log order, streamed in chunks (safe for logs larger than memory)."""
        last = 0
        where = ["seq > ?"]
        params: list[Any] = []
        if since is not None:
            where.append("decided_at >= ?")
            params.append(since)
        if campaign is not None:
            where.append("campaign = ?")
            params.append(campaign)
        sql = f"SELECT * FROM decisions WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        while True:
            rows = self.conn().execute(sql, (last, *params, chunk)).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1]["seq"]

    def count(self, table: str = "decisions") -> int:
        if table not in ("decisions", "rewards", "shadow_scores", "offer_sets"):
            raise ValueError(f"unknown table {table}")
        return int(self.conn().execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()

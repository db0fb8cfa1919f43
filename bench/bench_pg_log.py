"""The PostgreSQL decision log's insert throughput against raw psycopg on the same rows and settings.

    python bench/bench_pg_log.py [--quick | --tiny] [--json PATH]

Starts a throwaway PostgreSQL cluster (tests/postgres.py: initdb + pg_ctl on 127.0.0.1, fsync on, as the
``postgres`` user when root) and, each on a fresh database with the log's schema, inserts the same
128-arm compact rows (~1.4 KB: float32 pmf and policy pmf) with ``synchronous_commit = on``:
  - raw psycopg ``executemany`` (pipelined) of the log's INSERT, one connection, 512 rows per transaction;
  - raw binary ``COPY decisions FROM STDIN``, one connection, 512 rows per transaction;
  - ``DecisionLog.insert_decisions`` with 8 threads submitting one-row calls (as Decide does) and with 4
    threads submitting 16-row calls (as DecideBatch does): the group-committing writer, savepoints,
    ``ON CONFLICT (event_id) DO NOTHING RETURNING``, futures.
Best of two alternated runs (the disk and cores are shared). Goal: the log's one-row rows/s >= 0.7 x raw
executemany's.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.common import Report, decision_rows, parse_flags  # noqa: E402
from decision_log import DecisionRow, open_log  # noqa: E402
from decision_log.postgres.write_ops import COLUMN_TYPES  # noqa: E402
from decision_log.sqlite.write_ops import DECISION_COLUMNS, decision_values  # noqa: E402
from tests.postgres import PostgresCluster, find_postgres_bin  # noqa: E402

ROWS = {"full": 20_000, "quick": 6_000, "tiny": 600}
PER_COMMIT = 512
BATCH = 16
_INSERT = f"INSERT INTO decisions ({DECISION_COLUMNS}) VALUES ({','.join(['%s'] * len(DECISION_COLUMNS.split(',')))})"


def _raw(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=False)
    conn.execute("SET synchronous_commit = on")
    conn.commit()
    return conn


def raw_executemany(url: str, rows: Sequence[DecisionRow]) -> float:
    conn = _raw(url)
    values = [decision_values(r) for r in rows]
    start = time.perf_counter()
    for i in range(0, len(values), PER_COMMIT):
        with conn.cursor() as cursor:
            cursor.executemany(_INSERT, values[i:i + PER_COMMIT])
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def raw_copy(url: str, rows: Sequence[DecisionRow]) -> float:
    conn = _raw(url)
    values = [decision_values(r) for r in rows]
    start = time.perf_counter()
    for i in range(0, len(values), PER_COMMIT):
        with conn.cursor() as cursor, cursor.copy(
                f"COPY decisions ({DECISION_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(COLUMN_TYPES))
            for row in values[i:i + PER_COMMIT]:
                copy.write_row(row)
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return len(rows) / elapsed


def through_log(url: str, rows: Sequence[DecisionRow], threads: int, rows_per_call: int,
                window: int) -> tuple[float, float]:
    """``threads`` callers of ``insert_decisions`` with up to ``window`` calls unacknowledged each;
    rows/s and rows per COMMIT."""
    log = open_log(url, writable=True)
    calls = [rows[i:i + rows_per_call] for i in range(0, len(rows), rows_per_call)]

    def submit(part: Sequence[Sequence[DecisionRow]]) -> None:
        pending = []
        for call in part:
            pending.append(log.insert_decisions(call))
            if len(pending) >= window:
                assert pending.pop(0).result().written
        for future in pending:
            assert future.result().written

    workers = [threading.Thread(target=submit, args=(calls[i::threads],)) for i in range(threads)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    writer = log.backend.writer
    per_commit = writer.ops_written * rows_per_call / max(1, writer.commits)
    log.close()
    return len(rows) / elapsed, per_commit


def main() -> None:
    args = parse_flags(__doc__.splitlines()[0])
    report = Report("bench_pg_log", args.mode)
    n_rows = ROWS[args.mode]
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        sys.exit("pg_log: PostgreSQL is not installed (no initdb on PATH or under /usr/lib/postgresql/*/bin)")
    cluster = PostgresCluster(bin_dir)
    best: dict[str, tuple[float, float]] = {}
    try:
        for attempt in range(2):
            def fresh(seed: int) -> tuple[str, list[DecisionRow]]:
                return cluster.new_database(), decision_rows(n_rows, seed=10 * attempt + seed)

            for name, run in (("executemany", lambda: (raw_executemany(*fresh(1)), PER_COMMIT)),
                              ("copy", lambda: (raw_copy(*fresh(2)), PER_COMMIT)),
                              ("one_row", lambda: through_log(*fresh(3), threads=8, rows_per_call=1, window=256)),
                              ("batch", lambda: through_log(*fresh(4), threads=4, rows_per_call=BATCH, window=8))):
                best[name] = max(best.get(name, (0.0, 0.0)), run())
                print(f"  {name} (run {attempt + 1}): {best[name][0]:,.0f} rows/s", flush=True)
    finally:
        cluster.close()
    raw, copy = best["executemany"][0], best["copy"][0]
    report.table(f"PostgreSQL decision-log rows/s, 128-arm rows, synchronous_commit=on, fsync on, {n_rows:,} rows, "
                 "best of 2 alternated runs",
                 ["writer", "rows/s", "rows per commit", "x raw executemany", "x raw COPY"],
                 [["raw psycopg executemany, one connection, 512 rows per transaction", raw, PER_COMMIT, 1.0,
                   raw / copy],
                  ["raw binary COPY FROM STDIN, one connection, 512 rows per transaction", copy, PER_COMMIT,
                   copy / raw, 1.0],
                  ["DecisionLog.insert_decisions, 8 threads, 1-row calls (as Decide)", *best["one_row"],
                   best["one_row"][0] / raw, best["one_row"][0] / copy],
                  [f"DecisionLog.insert_decisions, 4 threads, {BATCH}-row calls (as DecideBatch)", *best["batch"],
                   best["batch"][0] / raw, best["batch"][0] / copy]])
    same = "same rows, schema, synchronous_commit=on and cluster, same run"
    report.goal("pg_log_vs_raw_executemany",
                "DecisionLog.insert_decisions rows/s with 8 threads submitting one-row calls / raw psycopg executemany "
                f"rows/s (one connection, 512 rows per transaction); {same}", best["one_row"][0] / raw, 0.7)
    report.goal("pg_log_batch_vs_raw_executemany",
                f"as above with {BATCH}-row calls from 4 threads; {same}", best["batch"][0] / raw, 0.7)
    report.write(args.json)


if __name__ == "__main__":
    main()

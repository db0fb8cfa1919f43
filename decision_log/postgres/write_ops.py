"""Write operations on a PostgreSQL log's decisions and shadow scores (inside the writer's transaction).

Decisions are inserted ``ON CONFLICT (event_id) DO NOTHING RETURNING event_id``: an event id another
replica committed first is not an error but a *repeat* (`InsertOutcome.repeated`), and one duplicate never
aborts its neighbours. Caps are checked in the same transaction (`decision_log.caps`), after the writer
locked the group's capped customers (`lock_customers`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from decision_log.caps import apply_caps
from decision_log.dialect import POSTGRES
from decision_log.postgres.connection import PgConn
from decision_log.records import DecisionRow, ShadowScore
from decision_log.write_outcomes import InsertOutcome
from decision_log.sqlite.write_ops import DECISION_COLUMNS, WriteOp, arm_sets_of, decision_values, \
                                         key_arm_sets, keyed_rows

__all__ = ["COLUMN_TYPES", "InsertDecisions", "insert_decisions", "insert_rows", "insert_shadow_scores",
           "lock_customers", "outcomes_of"]

#: The PostgreSQL types of `DECISION_COLUMNS`, in order: the rows go in as one array per column and
#: come out of ``unnest`` in their order (one statement, one round trip, whatever the number of rows).
COLUMN_TYPES = ("text", "text", "float8", "text", "text", "text", "text", "text", "text", "bytea", "bytea", "bytea",
                "int4", "text", "text", "text", "float8", "text", "text", "float8", "int4", "float8", "text", "text",
                "text", "text", "text", "text", "text", "int8", "bytea")
_INSERT_DECISIONS = (f"INSERT INTO decisions ({DECISION_COLUMNS}) SELECT * FROM unnest("
                     + ", ".join(f"%b::{kind}[]" for kind in COLUMN_TYPES)  # binary: no text escaping of blobs
                     + ") ON CONFLICT (event_id) DO NOTHING RETURNING event_id")
_MAX_ROWS_PER_STATEMENT = 2000
_INSERT_OFFER_SET = "INSERT INTO offer_sets (id, offers) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"
_INSERT_ARM_SET = "INSERT INTO arm_sets (id, arms) VALUES (?, ?) ON CONFLICT (id) DO NOTHING"


def lock_customers(conn: PgConn, user_keys: Sequence[str]) -> None:
    """Hold a transaction lock on each customer (sorted) until COMMIT: caps are decided one writer at a time."""
    POSTGRES.lock_users(conn, user_keys)


@dataclass(frozen=True)
class InsertDecisions:
    """A write operation inserting decisions; resolves to an `InsertOutcome`. The writer merges
    consecutive ones of a group into one statement batch (see `decision_log.postgres.writer`)."""

    rows: tuple[DecisionRow, ...]

    def __call__(self, conn: PgConn) -> InsertOutcome:
        return outcomes_of([self], *insert_rows(conn, self.rows))[0]


def insert_decisions(rows: Sequence[DecisionRow]) -> InsertDecisions:
    return InsertDecisions(tuple(rows))


def insert_rows(conn: PgConn, rows: Sequence[DecisionRow]) -> tuple[list[bool], frozenset[str]]:
    """Insert the rows (caps checked here); for each row whether it was written (False: a repeat), and the
    event ids written as capped no_contacts."""
    written, capped = apply_caps(conn, rows)
    conn.executemany(_INSERT_OFFER_SET, sorted({(r.offer_set_id, r.offer_set_json) for r in written}))
    sets = arm_sets_of(written)
    conn.executemany(_INSERT_ARM_SET, [s[:2] for s in sets])
    key_arm_sets(conn, sets)
    inserted: list[bool] = []
    for start in range(0, len(written), _MAX_ROWS_PER_STATEMENT):
        part = written[start:start + _MAX_ROWS_PER_STATEMENT]
        columns = [list(column) for column in zip(*(decision_values(r) for r in keyed_rows(conn, part)))]
        new_ids = {row[0] for row in conn.raw.execute(_INSERT_DECISIONS, columns).fetchall()}
        for row in part:  # the first of the same id in the statement is the one written
            inserted.append(row.event_id in new_ids)
            new_ids.discard(row.event_id)
    return inserted, frozenset(capped)


def outcomes_of(ops: Sequence[InsertDecisions], inserted: Sequence[bool],
                capped: frozenset[str]) -> list[InsertOutcome]:
    """Split one batch's results back into each operation's `InsertOutcome` (rows in operation order)."""
    outcomes = []
    position = 0
    for op in ops:
        flags = inserted[position:position + len(op.rows)]
        position += len(op.rows)
        repeated = tuple(row.event_id for row, new in zip(op.rows, flags) if not new)
        mine_capped = tuple(row.event_id for row, new in zip(op.rows, flags) if new and row.event_id in capped)
        outcomes.append(InsertOutcome(sum(flags), repeated, mine_capped))
    return outcomes


def insert_shadow_scores(scores: Sequence[ShadowScore]) -> WriteOp:
    rows = [(s.event_id, s.policy_version, s.pmf, s.chosen_probability, s.scored_at, s.event_id) for s in scores]

    def op(conn: PgConn) -> int:
        # only for a decision still logged: a score computed while its customer was erased is dropped
        conn.executemany("INSERT INTO shadow_scores (event_id, policy_version, pmf, chosen_probability, scored_at) "
                         "SELECT ?, ?, ?::bytea, ?::double precision, ?::double precision "
                         "WHERE EXISTS (SELECT 1 FROM decisions WHERE event_id = ?) "
                         "ON CONFLICT (event_id, policy_version) DO UPDATE SET "
                         "pmf = excluded.pmf, chosen_probability = excluded.chosen_probability, "
                         "scored_at = excluded.scored_at", rows)
        return len(rows)

    return op

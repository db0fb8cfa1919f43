"""The write that takes events out of learning for good: quarantine.

An event is quarantined when learning it made a model unusable (non-finite or degenerate
predictions; see ``service.model_guard``). Its row keeps everything it logged (it still counts for
caps, history, OPE and export); only ``quarantined_at`` is set, and every learning read of the log
(`decision_log.counting.learnable`: the online learner, catch-up after a load, offline targets,
the demo) leaves it out, so it is never learned or replayed again.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from decision_log.dialect import dialect_of
from decision_log.sqlite.write_ops import WriteOp


def quarantine(seqs: Sequence[int], when: float) -> WriteOp:
    """Set ``quarantined_at = when`` on these decisions (those already quarantined keep their time);
    the op returns how many rows it newly quarantined."""
    wanted = sorted({int(seq) for seq in seqs})

    def op(conn: sqlite3.Connection) -> int:
        condition, param = dialect_of(conn).seqs_in("seq", wanted)
        cursor = conn.execute(f"UPDATE decisions SET quarantined_at = ? WHERE quarantined_at IS NULL AND {condition}",
                              (float(when), param))
        return int(cursor.rowcount)

    return op

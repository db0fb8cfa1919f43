"""Where alias moves are serialised and remembered.

MLflow sets an alias unconditionally, so a compare-and-set needs a lock around "read, compare, set,
re-read". The server and the CLI pass the decision log (`decision_log.DecisionLog` satisfies
:class:`AliasLedger`: the move runs under the log's alias lock and is recorded in ``alias_moves``);
without one, :class:`InProcessLedger` serialises the moves of one process and remembers them in memory.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from decision_log import AliasMove

__all__ = ["OPERATOR_MOVES", "AliasLedger", "InProcessLedger", "Mover"]

#: The moves an operator makes (rollback returns to what the last of them replaced).
OPERATOR_MOVES = ("promote", "rollback")

Mover = Callable[[], "tuple[str | None, str] | None"]


class AliasLedger(Protocol):
    def alias_move(self, campaign: str, alias: str, kind: str, *, who: str, why: str,
                   move: Mover) -> AliasMove | None:
        """Run ``move`` under the lock; when it returns ``(from, to)`` record the move and return it."""
        ...

    def alias_moves(self, campaign: str, alias: str, kinds: Sequence[str] = ...) -> list[AliasMove]:
        """The recorded moves of ``alias`` of these kinds, newest first."""
        ...


class InProcessLedger:
    """Moves serialised by a lock of this process and remembered in memory (no decision log at hand)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._moves: list[AliasMove] = []

    def alias_move(self, campaign: str, alias: str, kind: str, *, who: str, why: str,
                   move: Mover) -> AliasMove | None:
        with self._lock:
            moved = move()
            if moved is None:
                return None
            record = AliasMove(campaign, alias, moved[0], moved[1], kind, who, why, time.time())
            self._moves.append(record)
            return record

    def alias_moves(self, campaign: str, alias: str,
                    kinds: Sequence[str] = ("checkpoint", "promote", "rollback")) -> list[AliasMove]:
        with self._lock:
            return [m for m in reversed(self._moves) if m.campaign == campaign and m.alias == alias
                    and m.kind in kinds]

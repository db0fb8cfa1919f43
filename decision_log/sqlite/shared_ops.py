"""The write operations and learn-order reads both backends run alike (PostgreSQL runs the SQLite package's SQL through its dialect).

Their SQL lives once, in `decision_log.sqlite` (reward_ops, learn_ops, quarantine_ops; `dialect` says
what differs on PostgreSQL); a backend mixes `SharedOperations` in and supplies its ``writer`` (futures
resolve after the commit) and ``_conn`` (its reader connection).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from decision_log.group_writer import GroupCommitWriter
from decision_log.records import unit_range
from decision_log.write_outcomes import ActivationOutcome, RewardOutcome
from decision_log.privacy_records import AuditEntry, ErasureCounts, RetentionPass
from decision_log.sqlite import learn_ops, privacy_ops, quarantine_ops, reward_ops
from offerbandit.errors import LogClosed

__all__ = ["SharedOperations"]


class SharedOperations:
    """Rewards, activation, claims, quarantine and the order of learning, for any backend."""

    # Supplied by the backend: ``writer`` (its GroupCommitWriter, None when opened read-only),
    # ``location`` and ``_conn() -> connection`` (its reader; not defined here, so the backend's own
    # takes precedence in the MRO).
    writer: GroupCommitWriter | None
    location: str
    _conn: Callable[[], Any]
    _own_transaction: Callable[[Callable[[Any], Any]], Any]  # one operation, committed alone (never queued)

    @property
    def queue_depth(self) -> int:
        """Writes accepted but not yet committed."""
        return self.writer.queue_depth if self.writer is not None else 0

    def _submit(self, op: Callable[[Any], Any]) -> Future:
        if self.writer is None:
            raise LogClosed(f"the decision log {self.location} was opened read-only")
        return self.writer.submit(op)

    def record_reward(self, event_id: str, value: float, reward_id: str, received_at: float,
                      aggregation_of: Callable[[str], str],
                      range_of: Callable[[str], tuple[float, float]] = unit_range) -> Future[RewardOutcome]:
        return self._submit(reward_ops.record_reward(event_id, value, reward_id, received_at, aggregation_of,
                                                     range_of))

    def activate(self, event_id: str, now: float, window_of: Callable[[str, str | None], float],
                 aggregation_of: Callable[[str], str]) -> Future[ActivationOutcome]:
        return self._submit(reward_ops.activate(event_id, now, window_of, aggregation_of))

    def claim_due(self, seqs: Sequence[int], now: float,
                  default_reward_of: Callable[[str], float]) -> Future[list[int]]:
        return self._submit(reward_ops.claim_due(seqs, now, default_reward_of))

    def quarantine(self, seqs: Sequence[int], when: float) -> Future[int]:
        return self._submit(quarantine_ops.quarantine(seqs, when))

    def assign_learn_seq(self, seqs: Sequence[int]) -> Future[dict[int, int]]:
        return self._submit(learn_ops.assign_learn_seq(seqs))

    def backfill_learn_seq(self) -> Future[int]:
        return self._submit(learn_ops.backfill_learn_seq())

    def learned_after_seq(self, campaign: str, after: int, chunk: int = 1000) -> Iterator[Any]:
        return learn_ops.learned_after_seq(self._conn, campaign, after, chunk)

    def unlearned_final(self, chunk: int = 1000) -> Iterator[int]:
        return learn_ops.unlearned_final(self._conn, chunk)

    def max_learn_seq(self, campaign: str | None = None) -> int:
        return learn_ops.max_learn_seq(self._conn(), campaign)

    def learn_seq_through(self, campaign: str, learned_at: float) -> int:
        return learn_ops.learn_seq_through(self._conn(), campaign, learned_at)

    # --- privacy: erasure, access requests, the audit trail, keys, retention ------------------------------
    def erase_users(self, user_keys: Sequence[str], who: str, at: float) -> ErasureCounts:
        return self._own_transaction(privacy_ops.erase_users(user_keys, who, at))

    def held_rows(self, user_keys: Sequence[str]) -> tuple[list[Any], list[Any], list[Any]]:
        return privacy_ops.held_rows(self._conn(), user_keys)

    def audit_after(self, after_id: int, limit: int = 1000) -> list[AuditEntry]:
        return privacy_ops.audit_after(self._conn(), after_id, limit)

    def last_audit_id(self) -> int:
        return privacy_ops.last_audit_id(self._conn())

    def registered_keys(self) -> list[tuple[str, str]]:
        return privacy_ops.registered_keys(self._conn())

    def register_keys(self, checks: Sequence[tuple[str, str]], who: str, at: float) -> list[tuple[str, str]]:
        return self._own_transaction(privacy_ops.register_keys(checks, who, at))

    def retention_batch(self, cutoff: float, batch: int) -> RetentionPass:
        return self._own_transaction(privacy_ops.retention_batch(cutoff, batch))

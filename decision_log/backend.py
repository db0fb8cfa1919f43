"""The seam between `DecisionLog` and a storage engine (SQLite, embedded; PostgreSQL, shared).

A backend owns the connections, the write path (group commit, exactly-once reward joins) and the named
queries. Its read queries return *rows*: objects indexable by column name with the columns of the
``decisions`` table; only `DecisionLog` sees them, and it decodes them through `RowDecoder`.
Write methods return futures that resolve after the commit that contains the write.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Protocol

from decision_log.counting import Row
from decision_log.privacy_records import AuditEntry, ErasureCounts, RetentionPass
from decision_log.records import AliasMove, DecisionRow, LiveStats, LogFilter, ShadowScore, unit_range
from decision_log.write_outcomes import ActivationOutcome, InsertOutcome, RewardOutcome
from policies.types import Offer


class LearnerLock(Protocol):
    """A held learner lock: ``held()`` turns False once it is lost (its connection dropped)."""

    def held(self) -> bool: ...


class LogBackend(Protocol):
    """What `DecisionLog` needs from a storage engine."""

    @property
    def location(self) -> str:
        """Where the log lives, as a URL (``sqlite:///abs/path.db``)."""
        ...

    @property
    def queue_depth(self) -> int:
        """Writes accepted but not yet committed."""
        ...

    @property
    def shared(self) -> bool:
        """Whether several processes write this log (PostgreSQL: True; SQLite: False)."""
        ...

    # --- writes (resolve after commit) -------------------------------------------------------------
    def insert_decisions(self, rows: Sequence[DecisionRow]) -> Future[InsertOutcome]: ...

    def insert_shadow_scores(self, scores: Sequence[ShadowScore]) -> Future[int]: ...

    def record_reward(self, event_id: str, value: float, reward_id: str, received_at: float,
                      aggregation_of: Callable[[str], str],
                      range_of: Callable[[str], tuple[float, float]] = unit_range) -> Future[RewardOutcome]: ...

    def activate(self, event_id: str, now: float, window_of: Callable[[str, str | None], float],
                 aggregation_of: Callable[[str], str]) -> Future[ActivationOutcome]: ...

    def claim_due(self, seqs: Sequence[int], now: float,
                  default_reward_of: Callable[[str], float]) -> Future[list[int]]: ...

    def quarantine(self, seqs: Sequence[int], when: float) -> Future[int]:
        """Take these decisions out of learning for good (``quarantined_at``); how many were newly taken."""
        ...

    # --- named queries -------------------------------------------------------------------------------
    def find_decision(self, event_id: str) -> Row | None: ...

    def rewards_of(self, event_id: str) -> list[Row]:
        """The reward calls stored for ``event_id`` (reward_id, value, received_at, status), in arrival order."""
        ...

    def offer_set(self, offer_set_id: str) -> tuple[Offer, ...]: ...

    def arm_set(self, ref: int | str) -> tuple[str, str]: ...

    def user_decisions(self, user_key: str, since: float, limit: int) -> list[Row]:
        """One customer's newest ``limit`` decisions at or after ``since``, oldest first."""
        ...

    def due_for_learning(self, now: float, limit: int) -> list[int]: ...

    def decisions(self, log_filter: LogFilter, *, up_to_seq: int | None = None,
                  chunk: int = 5000) -> Iterator[Row]: ...

    def feedback_rows(self, log_filter: LogFilter, chunk: int = 5000) -> Iterator[Row]:
        """Rows with at least the columns `decoder.final_decision` and `counting.exclusion` read."""
        ...

    def exposure_rows(self, since: float | None, chunk: int = 5000) -> Iterator[Row]:
        """Rows with at least the columns `decoder.shown_decision` and `counting.shown` read."""
        ...

    def decisions_by_seq(self, seqs: Sequence[int]) -> list[Row]: ...

    def learned_after(self, campaign: str, when: float) -> Iterator[Row]: ...

    def learned_of_campaign(self, campaign: str) -> list[Row]: ...

    def lift_rows(self, campaign: str, chunk: int = 5000) -> Iterator[Row]:
        """Rows with the columns `counting.lift_reward` reads, every decision of ``campaign``."""
        ...

    def live_stats(self, campaign: str, version: str) -> LiveStats: ...

    def campaigns(self) -> tuple[str, ...]: ...

    def last_seq(self) -> int | None: ...

    def count(self, table: str) -> int: ...

    def close(self) -> None: ...

    # --- the order of learning (learn_seq) and alias moves -----------------------------------------
    def assign_learn_seq(self, seqs: Sequence[int]) -> Future[dict[int, int]]:
        """Give the final, unlearned events among ``seqs`` the next learn_seqs in that order."""
        ...

    def backfill_learn_seq(self) -> Future[int]:
        """Number the final events of a log from before learn_seq, in claim order (only if none has one)."""
        ...

    def learned_after_seq(self, campaign: str, after: int, chunk: int = 1000) -> Iterator[Row]:
        """Whole rows of ``campaign`` with learn_seq above ``after``, in learn_seq order, streamed."""
        ...

    def unlearned_final(self, chunk: int = 1000) -> Iterator[int]:
        """Seqs of claimed events without a learn_seq (and not quarantined), in claim order."""
        ...

    def max_learn_seq(self, campaign: str | None = None) -> int: ...

    def learn_seq_through(self, campaign: str, learned_at: float) -> int:
        """The highest learn_seq of the campaign's events claimed at or before ``learned_at`` (0: none)."""
        ...

    def alias_move(self, campaign: str, alias: str, kind: str, who: str, why: str,
                   move: Callable[[], tuple[str | None, str] | None]) -> AliasMove | None:
        """Run ``move`` under the log's write lock and record what it moved (None: it did not)."""
        ...

    def alias_moves(self, campaign: str, alias: str, kinds: Sequence[str]) -> list[AliasMove]: ...

    def newest_alias_move_id(self) -> int:
        """The id of the newest row of ``alias_moves`` (0 when none)."""
        ...

    def learner_lock(self) -> AbstractContextManager[LearnerLock]:
        """The log's one-learner lock for a ``with`` block; refuses (InvalidInput) when another holds it."""
        ...

    # --- privacy (`decision_log.sqlite.privacy_ops`; writes commit alone, never in the writer's queue) ------
    def erase_users(self, user_keys: Sequence[str], who: str, at: float) -> ErasureCounts: ...

    def held_rows(self, user_keys: Sequence[str]) -> tuple[list[Row], list[Row], list[Row]]:
        """The customer's decision, reward and shadow-score rows."""
        ...

    def audit_after(self, after_id: int, limit: int = 1000) -> list[AuditEntry]: ...

    def last_audit_id(self) -> int: ...

    def registered_keys(self) -> list[tuple[str, str]]: ...

    def register_keys(self, checks: Sequence[tuple[str, str]], who: str, at: float) -> list[tuple[str, str]]: ...

    def retention_batch(self, cutoff: float, batch: int) -> RetentionPass: ...

    def reclaim_space(self) -> bool:
        """Give space freed by deletes back to the file system where the backend can (SQLite); whether it did."""
        ...

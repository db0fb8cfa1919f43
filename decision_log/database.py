"""`DecisionLog`: the one object callers hold (shaped like datasette's ``Database``). It owns the
backend's writer and readers, the offer-set cache and the row decoder, and `close`; every read answers
with records, never rows or connections.

    log = open_log(data_dir)                      # an existing log, or LogNotFound
    log = open_log("sqlite:///abs/decisions.db", writable=True)   # the server: creates and writes
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from decision_log import counting
from decision_log.backend import LearnerLock, LogBackend
from decision_log.decoder import (ARM_SET_CACHE_BYTES, OFFER_SET_CACHE_BYTES, OfferSetCache, RowDecoder, final_decision,
                                  learning_event, served_outcome)
from decision_log.records import (AliasMove, DecisionRow, Exclusions, FeedbackChunk, FinalDecision, LearnedEvent,
                                  LiftOutcome, LiveStats, LogFilter, LogOptions, LoggedDecision, RewardDefaults,
                                  ServedOutcome, ShadowScore, ShownDecision, StoredDecision, unit_range)
from decision_log.write_outcomes import ActivationOutcome, InsertOutcome, RewardOutcome
from decision_log.privacy_records import (AuditEntry, ErasureCounts, HeldDecision, HeldReward, HeldShadowScore,
                                          RetentionPass, UserData)
from decision_log.postgres.backend import PostgresBackend
from decision_log.reward_calls import RewardCall, reward_call
from decision_log.postgres.connection import is_postgres_url, mask_url
from decision_log.sqlite.backend import SqliteBackend, log_path
from offerbandit.errors import InvalidInput
from policies.history import HistoryRecord
from policies.types import LearningEvent, Offer

SQLITE_SCHEME = "sqlite:///"


def open_log(where: Path | str, *, writable: bool = False, options: LogOptions = LogOptions(),
             on_queue_depth: Callable[[int], None] | None = None) -> DecisionLog:
    """The log at ``where``: a data directory (its ``decisions.db``), a ``sqlite:///ABS/PATH.db`` URL or a
    ``postgresql://`` (``postgres://``) URL of a log several processes share.

    ``writable`` (the server) creates the log if needed and starts its writer; otherwise the log must
    exist (`LogNotFound`) and hold a log this code can read (InvalidInput otherwise).
    """
    text = str(where)
    if is_postgres_url(text):
        return DecisionLog(PostgresBackend(text, options, writable=writable, on_queue_depth=on_queue_depth))
    if text.startswith(SQLITE_SCHEME):
        path = Path(text[len(SQLITE_SCHEME) - 1:])  # the URL's path is absolute
    elif "://" in text:
        raise InvalidInput(f"unsupported decision log URL {mask_url(text)!r}: use a data directory, "
                           "sqlite:///ABS/PATH.db or postgresql://USER@HOST:PORT/DB", field="log-url")
    else:
        path = log_path(Path(where))
    return DecisionLog(SqliteBackend(path, options, writable=writable, on_queue_depth=on_queue_depth))


class DecisionLog:
    """The decision log behind one boundary. Thread-safe."""

    def __init__(self, backend: LogBackend, *, offer_set_bytes: int = OFFER_SET_CACHE_BYTES,
                 arm_set_bytes: int = ARM_SET_CACHE_BYTES) -> None:
        self.backend = backend
        self.offer_sets = OfferSetCache(backend.offer_set, offer_set_bytes)
        self.decoder = RowDecoder(self.offer_sets, arm_set_bytes, backend.arm_set)

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def queue_depth(self) -> int:
        return self.backend.queue_depth

    @property
    def shared(self) -> bool:
        """True when several processes write this log (PostgreSQL): replicas, one learner."""
        return bool(self.backend.shared)

    def close(self) -> None:
        """Write everything queued, then release the connections."""
        self.backend.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- writes: each future resolves after the commit that holds it ---------------------------
    def insert_decisions(self, rows: Sequence[DecisionRow]) -> Future[InsertOutcome]:
        """Write decisions; the `InsertOutcome` says how many were written, which event ids another
        writer had committed first (``repeated``: nothing written, answer the stored decision) and which
        were written as ``no_contact`` because a cap (``DecisionRow.caps``) was reached (``capped``)."""
        return self.backend.insert_decisions(rows)

    def insert_shadow_scores(self, scores: Sequence[ShadowScore]) -> Future[int]:
        return self.backend.insert_shadow_scores(scores)

    def record_reward(self, event_id: str, value: float, reward_id: str, received_at: float,
                      aggregation_of: Callable[[str], str],
                      range_of: Callable[[str], tuple[float, float]] = unit_range) -> Future[RewardOutcome]:
        """Join one reward onto its decision. ``aggregation_of(campaign)`` gives 'first' or 'sum';
        ``range_of(campaign)`` the reward range (a value outside it: InvalidInput, nothing stored)."""
        return self.backend.record_reward(event_id, value, reward_id, received_at, aggregation_of, range_of)

    def activate(self, event_id: str, now: float, window_of: Callable[[str, str | None], float],
                 aggregation_of: Callable[[str], str]) -> Future[ActivationOutcome]:
        """Mark a deferred decision as shown; its reward window starts now."""
        return self.backend.activate(event_id, now, window_of, aggregation_of)

    def claim_due(self, seqs: Sequence[int], now: float, defaults: RewardDefaults) -> Future[list[int]]:
        """Claim events whose window closed (the default reward for those without one); the seqs claimed."""
        return self.backend.claim_due(seqs, now, defaults.of)

    def quarantine(self, seqs: Sequence[int], when: float) -> Future[int]:
        """Never learn or replay these decisions again (learning them broke a model); resolves to how
        many were newly quarantined. Their rows stay (caps, history, OPE and export still see them)."""
        return self.backend.quarantine(seqs, when)

    # --- reads ----------------------------------------------------------------------------------
    def find_decision(self, event_id: str) -> LoggedDecision | None:
        row = self.backend.find_decision(event_id)
        return None if row is None else self.decoder.decision(row)

    def stored_decision(self, event_id: str) -> StoredDecision | None:
        """Every stored field of the decision of ``event_id``, decoded (None: no such decision)."""
        row = self.backend.find_decision(event_id)
        return None if row is None else self.decoder.stored(row)

    def rewards_of(self, event_id: str) -> list[RewardCall]:
        """The reward calls stored for ``event_id``, in arrival order (none for an unknown event)."""
        return [reward_call(row) for row in self.backend.rewards_of(event_id)]

    def stored_decisions(self, log_filter: LogFilter = LogFilter(), *, chunk: int = 5000) -> Iterator[StoredDecision]:
        """Every stored field of the decisions matching ``log_filter``, decoded, in log order, streamed
        (the guardrail reads the policy component and the window's end beside the decision)."""
        for row in self.backend.decisions(log_filter, chunk=chunk):
            yield self.decoder.stored(row)

    def settled_rewards(self, seqs: Sequence[int], defaults: RewardDefaults, now: float) -> dict[int, float]:
        """``{seq: reward}`` of these decisions whose reward is settled at ``now`` (`counting.lift_reward`;
        the default once a window closed without one), clipped to the campaign's range. Call it only for
        decisions whose window closed: under ``first`` a received reward settles earlier, and selecting
        decisions by whether their reward came would bias whatever reads them."""
        settled = {}
        for row in self.backend.decisions_by_seq(seqs):
            campaign = row["campaign"]
            reward = counting.lift_reward(row, defaults.of(campaign), 0.0, now)
            if reward is not None:
                settled[int(row["seq"])] = defaults.clip(campaign, reward)
        return settled

    def offers(self, offer_set_id: str) -> tuple[Offer, ...]:
        """The offer snapshot logged under ``offer_set_id`` (NotFound if none)."""
        return self.offer_sets.get(offer_set_id)

    def due_for_learning(self, now: float, limit: int = 1000) -> list[int]:
        """Seqs of events whose reward window closed unclaimed, oldest deadline first."""
        return self.backend.due_for_learning(now, limit)

    def decisions(self, log_filter: LogFilter = LogFilter(), *, up_to_seq: int | None = None,
                  chunk: int = 5000) -> Iterator[LoggedDecision]:
        """Every decision matching ``log_filter`` (and ``seq <= up_to_seq``) in log order, streamed."""
        for row in self.backend.decisions(log_filter, up_to_seq=up_to_seq, chunk=chunk):
            yield self.decoder.decision(row)

    def decisions_by_seq(self, seqs: Sequence[int]) -> list[LoggedDecision]:
        """The decisions with these seqs, in the order given (unknown seqs are left out)."""
        by_seq = {row["seq"]: row for row in self.backend.decisions_by_seq(seqs)}
        return [self.decoder.decision(by_seq[int(s)]) for s in seqs if int(s) in by_seq]

    def learned_decisions(self, seqs: Sequence[int]) -> list[LoggedDecision]:
        """Of these seqs, the decisions to learn (shown, reward final, not quarantined), in log order."""
        return [self.decoder.decision(row) for row in self.backend.decisions_by_seq(seqs)
                if counting.learnable(row)]

    def learning_events(self, defaults: RewardDefaults, *, campaign: str | None = None,
                        up_to_seq: int | None = None, learned_after: float | None = None) -> Iterator[LearningEvent]:
        """The learned events, as policies learn them: in log order (``seq <= up_to_seq``), or with
        ``learned_after`` (needs ``campaign``) those claimed after that time, in the order they were.
        Quarantined events are left out; rewards come clipped to the campaign's range."""
        if learned_after is not None:
            if campaign is None:
                raise InvalidInput("learned_after needs a campaign", field="campaign")
            rows = self.backend.learned_after(campaign, learned_after)
        else:
            rows = self.backend.decisions(LogFilter(campaign=campaign), up_to_seq=up_to_seq)
        for row in rows:
            if counting.learnable(row):
                decision = self.decoder.decision(row)
                campaign_name = decision.campaign
                event = learning_event(decision, defaults.of(campaign_name), defaults.range_of(campaign_name))
                if event is not None:
                    yield event

    def history_since(self, since: float) -> Iterator[HistoryRecord]:
        """What the per-user store rebuilds from: every contact decided at or after ``since``."""
        for row in self.backend.decisions(LogFilter(since=since)):
            record = self.decoder.history_record(row)
            if record is not None:
                yield record

    def user_history(self, user_key: str, since: float, limit: int = 1000, *,
                     previous_keys: Sequence[str] = ()) -> list[HistoryRecord]:
        """One customer's committed contacts (with their rewards) decided at or after ``since``, the
        newest ``limit`` of them, oldest first: the per-user store loads a customer it does not hold
        from here, so an evicted (or never loaded) customer's caps still count every committed contact.
        ``previous_keys``: the customer's hashes under older listed keys (a rotation), read too."""
        rows = [row for key in (user_key, *previous_keys) for row in self.backend.user_decisions(key, since, limit)]
        if previous_keys:  # the newest ``limit`` of all of them, oldest first
            rows = sorted(rows, key=lambda r: (r["decided_at"], r["seq"]))[-limit:]
        records = (self.decoder.history_record(row) for row in rows)
        return [record for record in records if record is not None]

    def exposures(self, since: float | None = None) -> Iterator[ShownDecision]:
        """Every shown decision decided at or after ``since`` (None: all), in log order."""
        for row in self.backend.exposure_rows(since):
            if counting.shown(row):
                yield self.decoder.shown_decision(row)

    def feedback(self, log_filter: LogFilter, defaults: RewardDefaults, *,
                 chunk: int = 5000) -> Iterator[FeedbackChunk]:
        """The decisions that count for evaluation, ``chunk`` rows read at a time, with what was left out."""
        kept: list[FinalDecision] = []
        left_out = Exclusions()
        read = 0
        for row in self.backend.feedback_rows(log_filter, chunk):
            reason = counting.exclusion(row)
            if reason is None:
                kept.append(final_decision(row, defaults.of(row["campaign"]), defaults.range_of(row["campaign"])))
            else:
                left_out = left_out + reason
            read += 1
            if read == chunk:
                yield FeedbackChunk(tuple(kept), left_out)
                kept, left_out, read = [], Exclusions(), 0
        if read:
            yield FeedbackChunk(tuple(kept), left_out)

    def served_outcomes(self, campaign: str) -> list[ServedOutcome]:
        """The learned decisions of ``campaign`` (policy version, time, reward, format, slot), in log order."""
        return [served_outcome(row) for row in self.backend.learned_of_campaign(campaign)]

    def lift_outcomes(self, campaign: str, defaults: RewardDefaults, window_s: float, now: float, *,
                      format_windows: Mapping[str, float] | None = None) -> Iterator[LiftOutcome]:
        """Every decision of ``campaign`` whose reward window closed by ``now`` (`counting.lift_reward`;
        ``window_s``: the campaign's reward window, for decisions without a format; ``format_windows``: each
        format's, for deferred decisions never activated), holdout or not, its reward clipped to the range."""
        default = defaults.of(campaign)
        low, high = defaults.range_of(campaign)
        for row in self.backend.lift_rows(campaign):
            reward = counting.lift_reward(row, default, window_s, now, format_windows)
            if reward is not None:
                yield LiftOutcome(row["user_key"], counting.held_out(row), min(max(reward, low), high),
                                  row["policy_version"] or "", float(row["decided_at"]))

    def live_stats(self, campaign: str, version: str) -> LiveStats:
        return self.backend.live_stats(campaign, version)

    def campaigns(self) -> tuple[str, ...]:
        return self.backend.campaigns()

    def last_seq(self) -> int | None:
        """The newest decision's seq (None for an empty log)."""
        return self.backend.last_seq()

    def count(self, table: str = "decisions") -> int:
        return self.backend.count(table)

    # --- the order of learning (learn_seq) -------------------------------------------------------
    def assign_learn_seq(self, seqs: Sequence[int]) -> Future[dict[int, int]]:
        """The learner learns these events now: give the final, not yet learned ones the next learn_seqs,
        in the order given; ``{seq: learn_seq}`` of those it gave one (never an event twice)."""
        return self.backend.assign_learn_seq(seqs)

    def backfill_learn_seq(self) -> Future[int]:
        """A log from before learn_seq: number its learned events in claim order (no-op once any has one)."""
        return self.backend.backfill_learn_seq()

    def learned_events_after(self, defaults: RewardDefaults, campaign: str, after_learn_seq: int, *,
                             chunk: int = 1000) -> Iterator[LearnedEvent]:
        """The events of ``campaign`` learned after ``after_learn_seq``, in learn_seq order, streamed:
        what a model that includes learn_seqs up to ``after_learn_seq`` has not learned yet."""
        for row in self.backend.learned_after_seq(campaign, int(after_learn_seq), chunk):
            if counting.learned(row):
                decision = self.decoder.decision(row)
                event = learning_event(decision, defaults.of(decision.campaign))
                if event is not None:
                    yield LearnedEvent(int(row["learn_seq"]), int(row["seq"]), event)

    def unlearned_final(self, *, chunk: int = 1000) -> Iterator[int]:
        """Seqs of events claimed for learning but never given a learn_seq (queued when a server
        stopped), in claim order."""
        return self.backend.unlearned_final(chunk)

    def max_learn_seq(self, campaign: str | None = None) -> int:
        """The highest learn_seq given (to ``campaign``'s events, or any); 0 when none."""
        return self.backend.max_learn_seq(campaign)

    def learn_seq_through(self, campaign: str, learned_at: float) -> int:
        """Where a checkpoint from before learn_seq (it recorded only the end of its log window) stands in
        the order of learning: the highest learn_seq of ``campaign``'s events claimed by then (0: none)."""
        return self.backend.learn_seq_through(campaign, learned_at)

    # --- registry alias moves under the log's alias lock -------------------------------------------
    def alias_move(self, campaign: str, alias: str, kind: str, *, who: str, why: str,
                   move: Callable[[], tuple[str | None, str] | None]) -> AliasMove | None:
        """Run ``move`` (read the alias, compare, set, re-read) under the log's alias lock (SQLite: a file
        beside the log; PostgreSQL: an advisory lock; never the lock decisions commit under); when it returns
        ``(from_version, to_version)`` the move is recorded in ``alias_moves`` (``kind``: checkpoint,
        promote, rollback) before the lock is released, and returned. Two movers on one log never interleave."""
        return self.backend.alias_move(campaign, alias, kind, who, why, move)

    def learner_lock(self) -> AbstractContextManager[LearnerLock]:
        """Be the one learner of this log for a ``with`` block (a PostgreSQL session advisory lock on a
        connection of its own, or a ``flock`` beside a SQLite file); another learner's lock refuses at once
        with InvalidInput. The handle's ``held()`` turns False if the lock is lost."""
        return self.backend.learner_lock()

    def alias_moves(self, campaign: str, alias: str,
                    kinds: Sequence[str] = ("checkpoint", "promote", "rollback")) -> list[AliasMove]:
        """The recorded moves of ``alias`` of ``campaign`` of these kinds, newest first."""
        return self.backend.alias_moves(campaign, alias, kinds)

    def alias_move_mark(self) -> int:
        """A mark that changes whenever any alias move is recorded in this log (by any process sharing it):
        a registry follower asks MLflow only when it changed (one indexed read on a reader connection)."""
        return self.backend.newest_alias_move_id()

    # --- privacy: erasure, access requests, the audit trail, keys, retention ------------------------
    def erase_users(self, user_keys: Sequence[str], *, who: str = "", at: float | None = None) -> ErasureCounts:
        """Delete every decision, reward and shadow score of the customer hashed to ``user_keys`` (one hash
        per listed user-hash key) in one transaction, with an ``audit`` row (time, who, the hashes, the counts;
        never the id). A customer with nothing logged gets zero counts (and an audit row all the same)."""
        return self.backend.erase_users(user_keys, who, time.time() if at is None else at)

    def user_data(self, user_keys: Sequence[str]) -> UserData:
        """Everything held about the customer hashed to ``user_keys``: what `erase_users` would delete."""
        decisions, rewards, shadows = self.backend.held_rows(user_keys)
        contacts = tuple(record for record in (self.decoder.history_record(row) for row in decisions)
                         if record is not None)
        return UserData(tuple(sorted(set(user_keys))), tuple(HeldDecision.of_row(row, *self.decoder.features(row))
                                                                for row in decisions),
                        tuple(HeldReward(r["event_id"], r["reward_id"], float(r["value"]), float(r["received_at"]),
                                         r["status"]) for r in rewards),
                        tuple(HeldShadowScore(r["event_id"], r["policy_version"], r["chosen_probability"],
                                              r["scored_at"]) for r in shadows),
                        contacts)

    def audit_after(self, after_id: int, limit: int = 1000) -> list[AuditEntry]:
        """The audit rows after ``after_id``, oldest first (servers follow erasures through this)."""
        return self.backend.audit_after(after_id, limit)

    def last_audit_id(self) -> int:
        return self.backend.last_audit_id()

    def registered_keys(self) -> list[tuple[str, str]]:
        """``(key_id, key_check)`` of the user-hash keys registered with this log, oldest first."""
        return self.backend.registered_keys()

    def register_keys(self, checks: Sequence[tuple[str, str]], *, who: str = "") -> list[tuple[str, str]]:
        """Check (and register) a process's user-hash keys, current first (see `privacy_ops.register_keys`):
        InvalidInput when none of them is this log's."""
        if not checks:
            raise InvalidInput("no user-hash key to register", field="privacy.user_hash_key")
        return self.backend.register_keys(checks, who, time.time())

    def delete_older_than(self, cutoff: float, *, batch: int = 1000, pause_s: float = 0.0,
                          max_batches: int | None = None) -> RetentionPass:
        """Retention: delete decisions decided before ``cutoff`` (with their rewards and shadow scores) in
        transactions of at most ``batch`` decisions, pausing ``pause_s`` between them (the writer is never held
        long). Returns the totals."""
        total = RetentionPass(cutoff, 0, 0, 0, 0)
        while max_batches is None or total.batches < max_batches:
            done = self.backend.retention_batch(cutoff, batch)
            if not done.batches:
                break
            total = RetentionPass(cutoff, total.decisions + done.decisions, total.rewards + done.rewards,
                                  total.shadow_scores + done.shadow_scores, total.batches + 1)
            if done.decisions < batch:
                break
            if pause_s > 0:
                time.sleep(pause_s)
        return total

    def reclaim_space(self) -> bool:
        """After deletes: a SQLite log created with ``auto_vacuum=INCREMENTAL`` shrinks (True); PostgreSQL's
        space is reused after its (auto)VACUUM, and an older SQLite log needs a full VACUUM (False)."""
        return self.backend.reclaim_space()

    def oldest_decided_at(self) -> float | None:
        """When the oldest decision still held was made (None: empty): where the log's window starts."""
        return next((d.decided_at for d in self.decisions(chunk=1)), None)

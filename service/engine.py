"""The decision engine: one decision, in the order the design notes fix.

1. resolve campaign, candidates and joint arms (validated input in);
2. contact rules remove ineligible arms (empty: a logged ``no_contact`` decision);
3. the serving policy scores the eligible arms -> ``p_policy`` (never recomputed);
4. the novelty mixture ``p = (1 - β)·p_policy + β·q_novel``;
5. the two-stage seeded draw; its probability is ``p(arm)``;
6. the exploration label;
7. per-user state updated under the user's lock, the row handed to the log writer; the answer
   returns only after the writer's group commit.

The engine never opens a transaction and never touches MLflow.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from offerbandit.errors import AlreadyExists, InvalidInput, LogUnavailable, NotFound
from policies.history import HistoryConfig, HistoryRecord, UserHistoryStore
from policies.types import DecisionContext, JointArm
from policies.vw.double_buffer import DoubleBuffer
from decision_log import ActivationOutcome, InsertOutcome, RewardOutcome, open_log
from service.campaigns import CampaignRuntime, build_runtimes
from service.claims import EventClaims
from service.config import ServiceConfig
from service.fingerprint import request_fingerprint
from service.key_aliases import KeyAliases
from service.keys import ServerKeys, load_keys
from service.handoffs import DISCARD, LearnableSink, ShadowItem, ShadowSink
from service.log_records import PreparedRequest, capped_record, log_options, record_of, write_failure
from service.outcomes import DecisionOutcome, RepeatRecord, ranking_of
from service.waves import Decided, decide_waves
from service.validation import DecideInput, RewardInput

__all__ = ["DecisionEngine", "DecisionOutcome", "LearnableSink", "ShadowItem", "ShadowSink", "ranking_of"]


class DecisionEngine:
    """Decide, reward, activate. Thread-safe; owns the decision log and the per-user store.

    Learnable events go to ``learnable`` right after their reward's commit, committed decisions with a
    challenger to ``shadow``; without them (a bare engine) both are discarded.

    Exactness (issue 14): a contact counts once its decision is committed (pending until then, dropped if
    the commit fails); a customer the per-user store does not hold is read from the log first; a repeated
    ``event_id`` is answered only if its request has the same fingerprint (else `AlreadyExists`); the
    answer's size is checked (``respond``) before anything is handed to the writer.
    """

    def __init__(self, config: ServiceConfig, data_dir: Path, *, log_url: str | None = None,
                 keys: ServerKeys | None = None, on_queue_depth: Callable[[int], None] | None = None,
                 learnable: LearnableSink | None = None, shadow: ShadowSink | None = None,
                 double_buffer: DoubleBuffer | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys = keys or load_keys(self.data_dir, config.privacy.user_hash_key,
                                      config.privacy.previous_user_hash_keys)
        self.log = open_log(log_url or self.data_dir, writable=True, on_queue_depth=on_queue_depth,
                            options=log_options(config))
        try:  # a process hashing with another key than the log's is refused (a rotation lists the old key too)
            self.log.register_keys(self.keys.key_checks(), who="serve")
        except BaseException:
            self.log.close()
            raise
        self.reward_defaults = config.reward_defaults()
        horizon = max(config.learning.history_horizon_seconds,
                      *(c.rules.longest_cap_window_s for c in config.campaigns.values()))
        history_config = HistoryConfig(max_users=config.learning.history_max_users, horizon_s=horizon)
        self.history = UserHistoryStore(history_config, loader=self._load_user)
        self._aliases = KeyAliases(2 * config.learning.history_max_users)
        self.campaigns: dict[str, CampaignRuntime] = build_runtimes(config, double_buffer)
        self.claims = EventClaims(config.server.idempotency_cache_bytes)
        self._learnable: LearnableSink = learnable or DISCARD
        self._shadow: ShadowSink = shadow or DISCARD
        self._rebuild_history()

    # --- start-up -----------------------------------------------------------------------------

    def _rebuild_history(self) -> None:
        if self.keys.previous_user_hash_keys:  # rows under older keys: every customer is loaded by all keys
            return
        since = time.time() - self.history.config.horizon_s
        # the only writer of an embedded log sees every contact: a customer the store lacks has none
        self.history.rebuild(self.log.history_since(since), complete=not self.log.shared)

    def _load_user(self, user_key: str) -> list[HistoryRecord]:
        """A customer's committed contacts within the horizon, from the log (the store does not hold them),
        under every listed user-hash key."""
        config = self.history.config
        return self.log.user_history(user_key, time.time() - config.horizon_s, 2 * config.max_entries_per_user,
                                     previous_keys=self._aliases.of(user_key))

    def runtime(self, campaign: str) -> CampaignRuntime:
        try:
            return self.campaigns[campaign or "default"]
        except KeyError:
            raise NotFound(f"unknown campaign {campaign!r} (configured: {', '.join(sorted(self.campaigns))})") from None

    # --- Decide -------------------------------------------------------------------------------

    def decide(self, inputs: Sequence[DecideInput], timeout: float | None = None, *, batch: bool = False,
               respond: Callable[[list[DecisionOutcome]], object] | None = None) -> list[DecisionOutcome]:
        """Decide every input; all of them are logged in one transaction, or none.

        ``respond(outcomes)`` is called once every answer is known and *before* the rows go to the writer
        (it builds the wire answer and raises, e.g. `Overloaded` for an answer over the transport limit,
        to refuse the call with nothing logged). ``batch`` names items ``requests[i]`` in errors.
        A timeout (``concurrent.futures.TimeoutError``) means nothing was committed, or the commit is
        under way and a retry with the same event ids returns what it committed.
        """
        prepared = [self._prepare(i, inp) for i, inp in enumerate(inputs)]
        results: list[DecisionOutcome | None] = [None] * len(prepared)
        check = lambda i, stored: _check_same(i, prepared[i], stored, batch)  # noqa: E731
        known, waiting, claimed = self.claims.claim([(p.event_id, p.fingerprint) for p in prepared], check)
        try:
            for i, record in known.items():
                results[i] = record.outcome(prepared[i].input.ranking_limit)
            fresh = [i for i, p in enumerate(prepared) if p.event_id in claimed]
            # server-made ids are new by construction: no earlier call can have logged them
            for i in [i for i in fresh if prepared[i].input.event_id and not prepared[i].input.server_made_id]:
                logged = self.log.find_decision(prepared[i].event_id)
                if logged is not None:
                    check(i, logged.fingerprint)
                    record = record_of(logged)
                    results[i] = record.outcome(prepared[i].input.ranking_limit)
                    self.claims.settle(claimed.pop(prepared[i].event_id), prepared[i].event_id, record)
            decided = self._decide_fresh(prepared, [i for i in fresh if results[i] is None], results)
        except BaseException as exc:
            self.claims.fail(claimed, exc)
            raise
        try:
            if respond is not None and not waiting:
                respond([r for r in results if r is not None])
            write = self.log.insert_decisions([d.row for d in decided]) if decided else None
        except BaseException as exc:
            self._undo(decided)
            self.claims.fail(claimed, exc)
            raise
        changed: dict[int, tuple[RepeatRecord, bool]] = {}
        if write is not None:
            try:
                write.result(timeout)
            except FutureTimeout:
                if not write.cancel():  # taken by the writer already: the commit settles the claims
                    write.add_done_callback(lambda done: self._settle(done, decided, claimed))
                    raise
                self._settle(write, decided, claimed)
                raise
            except BaseException:
                self._settle(write, decided, claimed)
                raise
            # here, not in the writer's thread: it never waits for a user
            changed = self._settle(write, decided, claimed)
            for i, (record, same) in changed.items():
                if not same:
                    check(i, record.fingerprint)
                results[i] = record.outcome(prepared[i].input.ranking_limit)
        for i, future in waiting.items():
            results[i] = future.result(timeout).outcome(prepared[i].input.ranking_limit)
        outcomes = [r for r in results if r is not None]
        if respond is not None and (waiting or changed):  # answers known only now: build the wire answer again
            respond(outcomes)
        return outcomes

    def _decide_fresh(self, prepared: list[PreparedRequest], fresh: list[int],
                      results: list[DecisionOutcome | None]) -> list[Decided]:
        decided: list[Decided] = []
        try:
            decide_waves(self.history, self.keys.seed_key, [(i, prepared[i]) for i in fresh], time.time(), decided)
        except BaseException:
            self._undo(decided)
            raise
        decided.sort(key=lambda d: d.index)  # rows in the call's order, whatever wave decided them
        for d in decided:
            results[d.index] = d.outcome
        return decided

    def _undo(self, decided: list[Decided]) -> None:
        """Drop the pending contacts of decisions that will not be committed."""
        for d in decided:
            if d.contact:
                self.history.discard(d.row.user_key, d.row.event_id)

    def _settle(self, write: Future, decided: list[Decided], claimed: dict[str, Future]
                ) -> dict[int, tuple[RepeatRecord, bool]]:
        """Once the write resolved: confirm or drop the pending contacts, settle or free the claims.

        Returns the decisions whose answer is not the one decided (by input index): on a shared log an
        event id another writer committed first is answered from its stored row (``same``: its fingerprint
        is this request's; else the caller refuses it), and a decision the log found over a cap by the time
        of its commit was written as ``no_contact`` (reason ``cap``) and is answered so."""
        failure = write_failure(write)
        if failure is not None:
            self._undo(decided)
            self.claims.fail(claimed, failure)
            return {}
        written = write.result()
        repeated = set(written.repeated) if isinstance(written, InsertOutcome) else set()
        capped = set(written.capped) if isinstance(written, InsertOutcome) else set()
        changed: dict[int, tuple[RepeatRecord, bool]] = {}
        scored: list[ShadowItem] = []
        for d in decided:
            event_id = d.row.event_id
            if event_id not in repeated and event_id not in capped:
                if d.contact:
                    self.history.confirm(d.row.user_key, event_id)
                self.claims.settle(claimed.get(event_id), event_id, d.record)
                if d.shadow is not None:
                    scored.append(d.shadow)
                continue
            if d.contact:  # the contact this call decided was not committed
                self.history.discard(d.row.user_key, event_id)
            record = self._stored_record(event_id) if event_id in repeated else capped_record(d.record)
            same = record.fingerprint is None or record.fingerprint == d.record.fingerprint
            if same:
                self.claims.settle(claimed.get(event_id), event_id, record)
            else:
                self.claims.fail({event_id: claimed[event_id]} if event_id in claimed else {},
                                 AlreadyExists(f"event_id {event_id!r} was already used for a different request",
                                               field="event_id"))
            changed[d.index] = (record, same)
        if scored:
            self._shadow.offer(scored)
        return changed

    def _stored_record(self, event_id: str) -> RepeatRecord:
        """The record of a decision another writer committed under ``event_id`` (read back from the log)."""
        logged = self.log.find_decision(event_id)
        if logged is None:  # the log reported it as committed by another writer: it must be there
            raise LogUnavailable(f"event {event_id!r} was reported as logged but cannot be read back; retry")
        return record_of(logged)

    def _prepare(self, index: int, inp: DecideInput) -> PreparedRequest:
        runtime = self.runtime(inp.campaign)
        catalog = runtime.config.catalog
        offer_list = inp.offers or catalog.offers
        formats = inp.formats or catalog.formats
        time_slots = inp.time_slots or catalog.time_slots
        n_arms = len(offer_list) * len(formats) * len(time_slots)
        if n_arms > self.config.limits.max_joint_arms:
            raise InvalidInput(f"offers x formats x time_slots gives {n_arms} joint arms, more than the limit of "
                               f"{self.config.limits.max_joint_arms}", field="offers")
        candidates = (runtime.catalog_arms if not (inp.offers or inp.formats or inp.time_slots)
                      else runtime.candidates(tuple(offer_list), tuple(formats), tuple(time_slots),
                                              inp.offers_key if inp.offers else b""))
        user_key, *previous = self.keys.user_keys(inp.user_id)
        self._aliases.remember(user_key, tuple(previous))
        context = DecisionContext(user_key=user_key, context=dict(inp.context), numeric=dict(inp.numeric),
                                  campaign=runtime.config.name)
        return PreparedRequest(inp, inp.event_id or uuid.uuid4().hex, runtime, context, candidates, tuple(offer_list),
                         tuple(formats), tuple(time_slots), request_fingerprint(inp, user_key), tuple(previous))

    # --- Reward / Activate --------------------------------------------------------------------

    def _aggregation_of(self, campaign: str) -> str:
        runtime = self.campaigns.get(campaign)
        return runtime.config.aggregation if runtime else "first"

    def _window_of(self, campaign: str, fmt: str | None) -> float:
        runtime = self.campaigns.get(campaign)
        return runtime.config.reward_window(fmt or "") if runtime else 86400.0

    def default_reward_of(self, campaign: str) -> float:
        return self.reward_defaults.of(campaign)

    def reward(self, inp: RewardInput, timeout: float | None = None) -> RewardOutcome:
        now = time.time()
        outcome = self.log.record_reward(inp.event_id, inp.value, inp.reward_id, now,
                                         self._aggregation_of, self.reward_defaults.range_of).result(timeout)
        if outcome.accepted and not outcome.retried and outcome.offer_id is not None and inp.value > 0:
            arm = JointArm(outcome.offer_id, outcome.format, outcome.time_slot)
            category = self._category_of(outcome.campaign, outcome.offer_id, inp.event_id)
            self.history.record_response(outcome.user_key, event_id=inp.event_id, when=now, arm=arm,
                                         category=category, reward=inp.value)
        if outcome.learn_seq is not None:
            self._learnable.enqueue([outcome.learn_seq])
        return outcome

    def _category_of(self, campaign: str, offer_id: str, event_id: str) -> str:
        """The category of a decided offer: the campaign's (bounded) cache, else the logged offer snapshot."""
        runtime = self.campaigns.get(campaign)
        category = runtime.category_of(offer_id) if runtime else None
        if category is None:
            logged = self.log.find_decision(event_id)
            offer = logged.arm_set.offers.get(offer_id) if logged is not None else None
            category = offer.category if offer is not None else ""
        return category

    def activate(self, event_id: str, timeout: float | None = None) -> ActivationOutcome:
        now = time.time()
        outcome = self.log.activate(event_id, now, self._window_of, self._aggregation_of).result(timeout)
        if outcome.activated and outcome.offer_id is not None:
            self.history.activate(outcome.user_key, event_id, now)
        if outcome.learn_seq is not None:
            self._learnable.enqueue([outcome.learn_seq])
        return outcome

    def close(self) -> None:
        self.log.close()


def _check_same(index: int, item: PreparedRequest, fingerprint: str | None, batch: bool) -> None:
    """A repeated event id must carry the same request (rows without a fingerprint predate the check)."""
    if fingerprint is not None and fingerprint != item.fingerprint:
        where = f"requests[{index}]: " if batch else ""
        raise AlreadyExists(f"{where}event_id {item.event_id!r} was already used for a different request "
                            "(another user, campaign, context or candidate set); use a new event_id",
                            field=f"requests[{index}].event_id" if batch else "event_id")

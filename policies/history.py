"""Per-user contact history: what each customer was shown and answered, for caps and novelty.

One in-memory store for all campaigns (caps and fatigue are global: one customer, one inbox), keyed by
the hashed user key. It is bounded twice: at most ``max_users`` users (least recently used dropped
first) and, per user, only entries newer than ``horizon_s`` (and at most ``max_entries_per_user``).

Updates are incremental: each user keeps its entries sorted by time plus reference counts per shown
value, so a snapshot costs O(distinct values), never a scan of the log.

Concurrency: every user has its own re-entrant lock. ``with store.locked(key) as user:`` holds it for
a read-modify-write (snapshot, decide, record) so concurrent calls and the items of one batch for the
same user see each other; the store-wide lock is held only for the LRU bookkeeping.

Timing: a contact counts from ``when``; a deferred contact (``counts=False``) counts from its
activation time instead, and not at all until it is activated.
"""
from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import islice
from dataclasses import dataclass, field
from types import MappingProxyType

from offerbandit.errors import InvalidInput
from policies.types import JointArm

#: Dimensions over which "shown" and "responded" sets are kept (see `UserHistory.shown`).
HISTORY_DIMENSIONS: tuple[str, ...] = ("category", "format", "time_slot", "offer")


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    """Memory bounds of the store. ``horizon_s`` must cover the longest frequency-cap window."""

    max_users: int = 1_000_000
    horizon_s: float = 90 * 24 * 3600.0
    max_entries_per_user: int = 1_000

    def __post_init__(self) -> None:
        if isinstance(self.max_users, bool) or not isinstance(self.max_users, int) or self.max_users < 1:
            raise InvalidInput(f"max_users must be an integer >= 1, got {self.max_users!r}", field="max_users")
        if not _is_positive_finite(self.horizon_s):
            raise InvalidInput(f"horizon_s must be a finite number > 0, got {self.horizon_s!r}", field="horizon_s")
        entries = self.max_entries_per_user
        if isinstance(entries, bool) or not isinstance(entries, int) or entries < 1:
            raise InvalidInput(
                f"max_entries_per_user must be an integer >= 1, got {entries!r}", field="max_entries_per_user"
            )


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One logged decision as the store needs it to rebuild at start.

    ``when`` is the time the contact counts from (decision time, or activation time when the decision
    was deferred and activated); ``counted`` is False for a deferred decision never activated;
    ``reward`` is the (aggregated) reward if one arrived, else None, and ``reward_when`` its time
    (default: ``when``).
    """

    user_key: str
    event_id: str
    when: float
    arm: JointArm
    category: str
    counted: bool
    reward: float | None = None
    reward_when: float | None = None


@dataclass(frozen=True, slots=True)
class UserHistory:
    """A frozen view of one user's history within the horizon at ``as_of``.

    ``shown_*`` come from counted contacts; ``responded_*`` from contacts with a positive reward.
    ``contact_times`` maps each format to the sorted times of its counted contacts.
    ``shown_value_counts`` maps a dimension to how many counted contacts showed each value (dimensions
    with no contacts are left out); a dimension missing from it counts each shown value once.
    """

    as_of: float
    n_contacts: int = 0
    shown_categories: frozenset[str] = frozenset()
    shown_formats: frozenset[str] = frozenset()
    shown_time_slots: frozenset[str] = frozenset()
    shown_offers: frozenset[str] = frozenset()
    responded_categories: frozenset[str] = frozenset()
    responded_formats: frozenset[str] = frozenset()
    responded_time_slots: frozenset[str] = frozenset()
    responded_offers: frozenset[str] = frozenset()
    contact_times: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    shown_value_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "contact_times", MappingProxyType(dict(self.contact_times)))
        counts = {_check_dimension(dim): MappingProxyType(dict(values))
                  for dim, values in self.shown_value_counts.items() if values}
        object.__setattr__(self, "shown_value_counts", MappingProxyType(counts))

    @classmethod
    def empty(cls, as_of: float = 0.0) -> "UserHistory":
        """The history of a customer never contacted (within the horizon)."""
        return cls(as_of=as_of)

    @property
    def is_new(self) -> bool:
        return self.n_contacts == 0

    def shown(self, dimension: str) -> frozenset[str]:
        """Values of ``dimension`` (one of `HISTORY_DIMENSIONS`) shown within the horizon."""
        return getattr(self, _SHOWN_FIELD[_check_dimension(dimension)])

    def shown_counts(self, dimension: str) -> Mapping[str, int]:
        """How many counted contacts within the horizon showed each value of ``dimension``."""
        counts = self.shown_value_counts.get(_check_dimension(dimension))
        if counts is None:
            return MappingProxyType(dict.fromkeys(self.shown(dimension), 1))
        return counts

    def responded(self, dimension: str) -> frozenset[str]:
        """Values of ``dimension`` the customer answered positively within the horizon."""
        return getattr(self, _RESPONDED_FIELD[_check_dimension(dimension)])

    def contacts_since(self, format: str, since: float) -> int:
        """Counted contacts strictly after ``since`` through ``format`` (``'*'``: any format)."""
        if format == "*":
            return sum(len(t) - bisect_right(t, since) for t in self.contact_times.values())
        times = self.contact_times.get(format, ())
        return len(times) - bisect_right(times, since)


_SHOWN_FIELD = {d: f"shown_{d}s" if d != "category" else "shown_categories" for d in HISTORY_DIMENSIONS}
_RESPONDED_FIELD = {d: f"responded_{d}s" if d != "category" else "responded_categories" for d in HISTORY_DIMENSIONS}


def _check_dimension(dimension: str) -> str:
    if dimension not in HISTORY_DIMENSIONS:
        raise InvalidInput(f"unknown history dimension {dimension!r}; known: {HISTORY_DIMENSIONS}", field="dimension")
    return dimension


def _is_positive_finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _values(arm: JointArm, category: str) -> tuple[str, str, str, str]:
    """The arm's value in each of `HISTORY_DIMENSIONS`, in that order."""
    return (category, arm.format, arm.time_slot, arm.offer_id)


@dataclass(slots=True)
class _Entry:
    when: float
    seq: int
    event_id: str
    values: tuple[str, str, str, str]

    @property
    def key(self) -> tuple[float, int]:
        return (self.when, self.seq)


class _TimedCounts:
    """Entries sorted by time, with reference counts of their values per dimension and per format."""

    def __init__(self) -> None:
        self.keys: list[tuple[float, int]] = []
        self.entries: dict[tuple[float, int], _Entry] = {}
        self.counts: tuple[Counter, ...] = tuple(Counter() for _ in HISTORY_DIMENSIONS)
        self.times_by_format: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, entry: _Entry) -> None:
        insort(self.keys, entry.key)
        self.entries[entry.key] = entry
        for counter, value in zip(self.counts, entry.values):
            counter[value] += 1
        insort(self.times_by_format.setdefault(entry.values[1], []), entry.when)

    def drop_oldest(self, n: int) -> list[_Entry]:
        dropped = [self.entries.pop(k) for k in self.keys[:n]]
        del self.keys[:n]
        for entry in dropped:
            for counter, value in zip(self.counts, entry.values):
                counter[value] -= 1
                if counter[value] == 0:
                    del counter[value]
            times = self.times_by_format[entry.values[1]]
            del times[bisect_left(times, entry.when)]
            if not times:
                del self.times_by_format[entry.values[1]]
        return dropped

    def drop_before(self, cutoff: float) -> list[_Entry]:
        return self.drop_oldest(bisect_left(self.keys, (cutoff, -1)))

    def shown_sets(self) -> tuple[frozenset[str], ...]:
        return tuple(frozenset(c) for c in self.counts)


class _UserState:
    """Everything the store keeps about one user. Guarded by ``lock``; ``pins`` protect it from eviction."""

    __slots__ = ("lock", "pins", "contacts", "contact_events", "pending", "responses", "responded_events", "seq")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pins = 0
        self.contacts = _TimedCounts()  # counted contacts
        self.contact_events: dict[str, _Entry] = {}
        self.pending: OrderedDict[str, _Entry] = OrderedDict()  # deferred, not yet activated
        self.responses = _TimedCounts()  # positive responses
        self.responded_events: set[str] = set()
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class UserHandle:
    """Operations on one user whose lock is held (from `UserHistoryStore.locked`)."""

    __slots__ = ("_state", "_config")

    def __init__(self, state: _UserState, config: HistoryConfig) -> None:
        self._state = state
        self._config = config

    def record_contact(self, *, event_id: str, when: float, arm: JointArm, category: str, counts: bool) -> None:
        """Record a decision; ``counts=False`` for a deferred one that counts only after `activate`."""
        state = self._state
        if event_id in state.contact_events or event_id in state.pending:
            return  # idempotent: a repeated event id is the same decision
        entry = _Entry(float(when), state.next_seq(), event_id, _values(arm, category))
        if counts:
            self._add_contact(entry)
        else:
            state.pending[event_id] = entry
            while len(state.pending) > self._config.max_entries_per_user:
                state.pending.popitem(last=False)

    def activate(self, event_id: str, when: float) -> bool:
        """Start counting a deferred contact from ``when``. False if the event is unknown here."""
        entry = self._state.pending.pop(event_id, None)
        if entry is None:
            return False
        entry.when = float(when)
        entry.seq = self._state.next_seq()
        self._add_contact(entry)
        return True

    def record_response(self, *, event_id: str, when: float, arm: JointArm, category: str, reward: float) -> None:
        """Record a reward; only positive rewards make a value "responded" (once per event), and not
        for a deferred decision still waiting for activation."""
        state = self._state
        if reward <= 0 or event_id in state.responded_events or event_id in state.pending:
            return  # a deferred decision never activated is not part of the history
        state.responded_events.add(event_id)
        state.responses.add(_Entry(float(when), state.next_seq(), event_id, _values(arm, category)))
        self._trim(state.responses, on_drop=lambda e: state.responded_events.discard(e.event_id))

    def snapshot(self, now: float) -> UserHistory:
        """The frozen history within the horizon as of ``now`` (older entries are dropped here)."""
        state = self._state
        self.expire(now)
        shown = state.contacts.shown_sets()
        responded = state.responses.shown_sets()
        return UserHistory(
            as_of=float(now),
            n_contacts=len(state.contacts),
            shown_categories=shown[0],
            shown_formats=shown[1],
            shown_time_slots=shown[2],
            shown_offers=shown[3],
            responded_categories=responded[0],
            responded_formats=responded[1],
            responded_time_slots=responded[2],
            responded_offers=responded[3],
            contact_times={f: tuple(t) for f, t in state.contacts.times_by_format.items()},
            shown_value_counts=dict(zip(HISTORY_DIMENSIONS, state.contacts.counts)),
        )

    def expire(self, now: float) -> None:
        """Drop entries older than the horizon (pending deferred ones by their decision time)."""
        state = self._state
        cutoff = float(now) - self._config.horizon_s
        for entry in state.contacts.drop_before(cutoff):
            state.contact_events.pop(entry.event_id, None)
        for entry in state.responses.drop_before(cutoff):
            state.responded_events.discard(entry.event_id)
        while state.pending and next(iter(state.pending.values())).when < cutoff:
            state.pending.popitem(last=False)

    @property
    def is_empty(self) -> bool:
        state = self._state
        return not (state.contacts or state.pending or state.responses)

    def _add_contact(self, entry: _Entry) -> None:
        state = self._state
        state.contacts.add(entry)
        state.contact_events[entry.event_id] = entry
        self._trim(state.contacts, on_drop=lambda e: state.contact_events.pop(e.event_id, None))

    def _trim(self, timed: _TimedCounts, on_drop) -> None:
        excess = len(timed) - self._config.max_entries_per_user
        if excess > 0:
            for entry in timed.drop_oldest(excess):
                on_drop(entry)


class UserHistoryStore:
    """Per-user contacts and history, bounded by LRU over users and a time horizon."""

    def __init__(self, config: HistoryConfig | None = None) -> None:
        self.config = config or HistoryConfig()
        self._users: OrderedDict[str, _UserState] = OrderedDict()
        self._lock = threading.Lock()  # guards _users only, never held while a user lock is awaited

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)

    def __contains__(self, user_key: str) -> bool:
        with self._lock:
            return user_key in self._users

    @contextmanager
    def locked(self, user_key: str) -> Iterator[UserHandle]:
        """Hold ``user_key``'s lock for a read-modify-write; yields a `UserHandle`."""
        state = self._pin(user_key)
        try:
            with state.lock:
                yield UserHandle(state, self.config)
        finally:
            self._unpin(state)

    def record_contact(self, user_key: str, *, event_id: str, when: float, arm: JointArm, category: str,
                       counts: bool) -> None:
        with self.locked(user_key) as user:
            user.record_contact(event_id=event_id, when=when, arm=arm, category=category, counts=counts)

    def activate(self, user_key: str, event_id: str, when: float) -> bool:
        with self.locked(user_key) as user:
            return user.activate(event_id, when)

    def record_response(self, user_key: str, *, event_id: str, when: float, arm: JointArm, category: str,
                        reward: float) -> None:
        with self.locked(user_key) as user:
            user.record_response(event_id=event_id, when=when, arm=arm, category=category, reward=reward)

    def snapshot(self, user_key: str, now: float) -> UserHistory:
        """The user's frozen history; an unknown user gets an empty one (and is not added)."""
        with self._lock:
            known = user_key in self._users
        if not known:
            return UserHistory.empty(float(now))
        with self.locked(user_key) as user:
            return user.snapshot(now)

    def rebuild(self, records: Iterable[HistoryRecord]) -> None:
        """Replace the contents with the history the records describe (e.g. the log at start).

        Records are applied in time order; the result equals recording the same decisions one by one.
        """
        with self._lock:
            self._users.clear()
        for record in sorted(records, key=lambda r: r.when):
            with self.locked(record.user_key) as user:
                user.record_contact(event_id=record.event_id, when=record.when, arm=record.arm,
                                    category=record.category, counts=record.counted)
                if record.reward is not None:
                    reward_when = record.when if record.reward_when is None else record.reward_when
                    user.record_response(event_id=record.event_id, when=reward_when, arm=record.arm,
                                         category=record.category, reward=record.reward)

    def _pin(self, user_key: str) -> _UserState:
        with self._lock:
            state = self._users.get(user_key)
            if state is None:
                state = self._users[user_key] = _UserState()
            else:
                self._users.move_to_end(user_key)
            state.pins += 1
            self._evict_locked()
            return state

    def _unpin(self, state: _UserState) -> None:
        with self._lock:
            state.pins -= 1
            self._evict_locked()

    def _evict_locked(self) -> None:
        """Drop least recently used users beyond ``max_users``, skipping users in use right now."""
        excess = len(self._users) - self.config.max_users
        if excess <= 0:
            return
        # Oldest first; stops as soon as enough are found (pinned users are rare and short-lived).
        victims = list(islice((k for k, s in self._users.items() if s.pins == 0), excess))
        for key in victims:
            del self._users[key]

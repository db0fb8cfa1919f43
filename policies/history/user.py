"""One user's entries, kept sorted by time with reference counts per shown value, so a snapshot costs
O(distinct values), never a scan; :class:`UserHandle` is the read-modify-write API on one user whose
lock is held.

Timing: a contact counts from ``when``; a deferred contact (``counts=False``) counts from its
activation time instead, and not at all until it is activated.

Commit: a contact recorded with ``committed=False`` is *pending*: it counts at once (so the items of
one DecideBatch and concurrent calls see it) until :meth:`UserHandle.confirm` keeps it (its decision was
committed) or :meth:`UserHandle.discard` removes it as if it had never been recorded (the commit failed).
"""
from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from policies.history.records import COUNTED_DIMENSIONS, HISTORY_DIMENSIONS, HistoryConfig, UserHistory
from policies.types import JointArm, cell_key

__all__ = ["UserHandle", "UserState"]


def _values(arm: JointArm, category: str) -> tuple[str, str, str, str, str]:
    """The arm's value in each of `COUNTED_DIMENSIONS`, in that order."""
    return (category, arm.format, arm.time_slot, arm.offer_id, cell_key(category, arm.format, arm.time_slot))


@dataclass(slots=True)
class _Entry:
    when: float
    seq: int
    event_id: str
    values: tuple[str, str, str, str, str]

    @property
    def key(self) -> tuple[float, int]:
        return (self.when, self.seq)


class _TimedCounts:
    """Entries sorted by time, with reference counts of their values per dimension and per format."""

    def __init__(self) -> None:
        self.keys: list[tuple[float, int]] = []
        self.entries: dict[tuple[float, int], _Entry] = {}
        # plain dicts (value -> count), one per dimension: a Counter costs ~5 µs to build, and every new
        # customer's state builds eight
        self.counts: tuple[dict[str, int], ...] = tuple({} for _ in COUNTED_DIMENSIONS)
        self.times_by_format: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, entry: _Entry) -> None:
        insort(self.keys, entry.key)
        self.entries[entry.key] = entry
        for counter, value in zip(self.counts, entry.values):
            counter[value] = counter.get(value, 0) + 1
        insort(self.times_by_format.setdefault(entry.values[1], []), entry.when)

    def drop_oldest(self, n: int) -> list[_Entry]:
        dropped = [self.entries.pop(k) for k in self.keys[:n]]
        del self.keys[:n]
        for entry in dropped:
            self._uncount(entry)
        return dropped

    def remove(self, entry: _Entry) -> bool:
        """Take one entry out (False if it is no longer held: trimmed or expired meanwhile)."""
        if self.entries.pop(entry.key, None) is None:
            return False
        del self.keys[bisect_left(self.keys, entry.key)]
        self._uncount(entry)
        return True

    def _uncount(self, entry: _Entry) -> None:
        """Take a removed entry out of the counts and the per-format contact times."""
        for counter, value in zip(self.counts, entry.values):
            counter[value] -= 1
            if counter[value] == 0:
                del counter[value]
        times = self.times_by_format[entry.values[1]]
        del times[bisect_left(times, entry.when)]
        if not times:
            del self.times_by_format[entry.values[1]]

    def drop_before(self, cutoff: float) -> list[_Entry]:
        return self.drop_oldest(bisect_left(self.keys, (cutoff, -1)))

    def shown_sets(self) -> tuple[frozenset[str], ...]:
        """The values held per dimension of `HISTORY_DIMENSIONS` (cells are only counted)."""
        return tuple(frozenset(c) for c in self.counts[:len(HISTORY_DIMENSIONS)])


class UserState:
    """Everything the store keeps about one user. Guarded by ``lock``; ``pins`` protect it from eviction."""

    __slots__ = ("lock", "pins", "contacts", "contact_events", "pending", "responses", "responded_events", "seq",
                 "uncommitted", "loaded")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pins = 0
        self.uncommitted: set[str] = set()  # recorded, decision not committed yet (kept from eviction)
        self.loaded = False  # the committed past was read in (from the log, or the start-up rebuild)
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

    def __init__(self, state: UserState, config: HistoryConfig) -> None:
        self._state = state
        self._config = config

    def record_contact(self, *, event_id: str, when: float, arm: JointArm, category: str, counts: bool,
                       committed: bool = True) -> None:
        """Record a decision; ``counts=False`` for a deferred one that counts only after `activate`;
        ``committed=False`` while its decision is not committed yet (then `confirm` or `discard` it)."""
        state = self._state
        if event_id in state.contact_events or event_id in state.pending:
            return  # idempotent: a repeated event id is the same decision
        if not committed:
            state.uncommitted.add(event_id)
        entry = _Entry(float(when), state.next_seq(), event_id, _values(arm, category))
        if counts:
            self._add_contact(entry)
        else:
            state.pending[event_id] = entry
            while len(state.pending) > self._config.max_entries_per_user:
                state.pending.popitem(last=False)

    def confirm(self, event_id: str) -> None:
        """The decision of a pending contact was committed: it stays."""
        self._state.uncommitted.discard(event_id)

    def discard(self, event_id: str) -> None:
        """The decision of a pending contact was not committed: remove the contact as if never recorded."""
        state = self._state
        if event_id not in state.uncommitted:
            return
        state.uncommitted.discard(event_id)
        entry = state.contact_events.pop(event_id, None)
        if entry is not None:
            state.contacts.remove(entry)
        state.pending.pop(event_id, None)

    def clear_committed(self) -> None:
        """Forget every committed entry (an erasure); contacts whose decision is not committed yet stay."""
        state = self._state
        keep = [e for e in state.contacts.entries.values() if e.event_id in state.uncommitted]
        keep_pending = [(k, e) for k, e in state.pending.items() if k in state.uncommitted]
        state.contacts, state.contact_events = _TimedCounts(), {}
        state.responses, state.responded_events = _TimedCounts(), set()
        state.pending = OrderedDict(keep_pending)
        for entry in keep:
            self._add_contact(entry)

    @property
    def has_uncommitted(self) -> bool:
        return bool(self._state.uncommitted)

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
        if not state.contacts and not state.responses:  # nothing shown or answered (a new customer)
            return UserHistory(as_of=float(now))
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
            shown_value_counts=dict(zip(COUNTED_DIMENSIONS, state.contacts.counts)),
            responded_value_counts=dict(zip(COUNTED_DIMENSIONS, state.responses.counts)),
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

    def _trim(self, timed: _TimedCounts, on_drop: Callable[[_Entry], object]) -> None:
        excess = len(timed) - self._config.max_entries_per_user
        if excess > 0:
            for entry in timed.drop_oldest(excess):
                on_drop(entry)


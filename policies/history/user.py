"""One user's entries, kept sorted by time with reference counts per shown value, so a snapshot costs
O(distinct values) plus one pass over the user's entries for the contact times; :class:`UserHandle` is the
read-modify-write API on one user whose lock is held.

Timing: a contact counts from ``when``; a deferred contact (``counts=False``) counts from its
activation time instead, and not at all until it is activated.

Commit: a contact recorded with ``committed=False`` is *pending*: it counts at once (so the items of
one DecideBatch and concurrent calls see it) until :meth:`UserHandle.confirm` keeps it (its decision was
committed) or :meth:`UserHandle.discard` removes it as if it had never been recorded (the commit failed).

Layout: the store holds up to a million users, and a full collection of CPython's garbage collector walks
every container object it tracks, stopping every thread: ~0.5 µs an object on the machines we bench on.
So a user is three tracked objects (its state, its lock, its contact timeline; a fourth once it responded):
an entry is a tuple of strings and numbers and a timeline keeps them in one tuple, its counts and event
times in dicts of strings and numbers, all of which the collector stops tracking. The layout before (an
object per entry, lists and sets per user) was ~23 tracked objects a user: a full collection took ~1 s at
100k users and stalled the serving process for ~55 ms at the bench's ~4,000.
"""
from __future__ import annotations

import threading
from bisect import bisect_left

from policies.history.records import COUNTED_DIMENSIONS, HISTORY_DIMENSIONS, HistoryConfig, UserHistory
from policies.types import JointArm, cell_key

__all__ = ["UserHandle", "UserState"]

#: One entry: (when, seq, event id, then its value in each of `COUNTED_DIMENSIONS`, in that order). Ordered by
#: (when, seq): ``seq`` is unique within a user, so the rest never decides an order.
_Entry = tuple[float, int, str, str, str, str, str, str]
_WHEN, _EVENT = 0, 2
_VALUES = slice(3, 3 + len(COUNTED_DIMENSIONS))
_FORMAT = 3 + COUNTED_DIMENSIONS.index("format")


def _entry(when: float, seq: int, event_id: str, arm: JointArm, category: str) -> _Entry:
    return (float(when), seq, event_id, category, arm.format, arm.time_slot, arm.offer_id,
            cell_key(category, arm.format, arm.time_slot))


class _Timeline:
    """Entries sorted by time, the reference counts of their values per dimension, and the time of each
    entry's event (an event id is held at most once)."""

    # the counts are one dict per dimension, each in its own slot: the collector never stops tracking a
    # tuple that holds dicts (it cannot tell whether they stay free of references to tracked objects)
    __slots__ = ("entries", "category_counts", "format_counts", "time_slot_counts", "offer_counts", "cell_counts",
                 "when_of")

    def __init__(self) -> None:
        self.entries: tuple[_Entry, ...] = ()
        self.category_counts: dict[str, int] = {}
        self.format_counts: dict[str, int] = {}
        self.time_slot_counts: dict[str, int] = {}
        self.offer_counts: dict[str, int] = {}
        self.cell_counts: dict[str, int] = {}
        self.when_of: dict[str, float] = {}

    @property
    def counts(self) -> tuple[dict[str, int], ...]:
        """The value counts per dimension of `COUNTED_DIMENSIONS`, in that order."""
        return (self.category_counts, self.format_counts, self.time_slot_counts, self.offer_counts, self.cell_counts)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.when_of

    def add(self, entry: _Entry) -> None:
        entries = self.entries
        at = len(entries) if not entries or entries[-1] < entry else bisect_left(entries, entry)
        self.entries = entries[:at] + (entry,) + entries[at:]
        for counter, value in zip(self.counts, entry[_VALUES]):
            counter[value] = counter.get(value, 0) + 1
        self.when_of[entry[_EVENT]] = entry[_WHEN]

    def drop_oldest(self, n: int) -> None:
        if n <= 0:
            return
        dropped, self.entries = self.entries[:n], self.entries[n:]
        for entry in dropped:
            self._uncount(entry)

    def drop_before(self, cutoff: float) -> None:
        self.drop_oldest(bisect_left(self.entries, (cutoff,)))

    def remove(self, event_id: str) -> bool:
        """Take the event's entry out (False if it is no longer held: trimmed or expired meanwhile)."""
        when = self.when_of.get(event_id)
        if when is None:
            return False
        entries = self.entries
        at = bisect_left(entries, (when,))
        while entries[at][_EVENT] != event_id:
            at += 1
        self.entries = entries[:at] + entries[at + 1:]
        self._uncount(entries[at])
        return True

    def _uncount(self, entry: _Entry) -> None:
        for counter, value in zip(self.counts, entry[_VALUES]):
            counter[value] -= 1
            if counter[value] == 0:
                del counter[value]
        del self.when_of[entry[_EVENT]]

    def shown_sets(self) -> tuple[frozenset[str], ...]:
        """The values held per dimension of `HISTORY_DIMENSIONS` (cells are only counted)."""
        return tuple(frozenset(c) for c in self.counts[:len(HISTORY_DIMENSIONS)])

    def times_by_format(self) -> dict[str, tuple[float, ...]]:
        """The sorted times of the entries, per format."""
        times: dict[str, list[float]] = {}
        for entry in self.entries:
            times.setdefault(entry[_FORMAT], []).append(entry[_WHEN])
        return {fmt: tuple(values) for fmt, values in times.items()}


class UserState:
    """Everything the store keeps about one user. Guarded by ``lock``; ``pins`` protect it from eviction."""

    __slots__ = ("lock", "pins", "contacts", "pending", "responses", "seq", "uncommitted", "loaded")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pins = 0
        self.uncommitted: dict[str, None] = {}  # recorded, decision not committed yet (kept from eviction)
        self.loaded = False  # the committed past was read in (from the log, or the start-up rebuild)
        self.contacts = _Timeline()  # counted contacts
        self.pending: dict[str, _Entry] | None = None  # deferred, not yet activated, oldest first
        self.responses: _Timeline | None = None  # positive responses (None: none held)
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
        if event_id in state.contacts or (state.pending is not None and event_id in state.pending):
            return  # idempotent: a repeated event id is the same decision
        if not committed:
            state.uncommitted[event_id] = None
        entry = _entry(when, state.next_seq(), event_id, arm, category)
        if counts:
            self._add_contact(entry)
            return
        if state.pending is None:
            state.pending = {}
        state.pending[event_id] = entry
        while len(state.pending) > self._config.max_entries_per_user:
            del state.pending[next(iter(state.pending))]

    def confirm(self, event_id: str) -> None:
        """The decision of a pending contact was committed: it stays."""
        self._state.uncommitted.pop(event_id, None)

    def discard(self, event_id: str) -> None:
        """The decision of a pending contact was not committed: remove the contact as if never recorded."""
        state = self._state
        if event_id not in state.uncommitted:
            return
        del state.uncommitted[event_id]
        state.contacts.remove(event_id)
        self._pop_pending(event_id)

    def clear_committed(self) -> None:
        """Forget every committed entry (an erasure); contacts whose decision is not committed yet stay."""
        state = self._state
        keep = [e for e in state.contacts.entries if e[_EVENT] in state.uncommitted]
        keep_pending = {k: e for k, e in (state.pending or {}).items() if k in state.uncommitted}
        state.contacts, state.responses = _Timeline(), None
        state.pending = keep_pending or None
        for entry in keep:
            self._add_contact(entry)

    @property
    def has_uncommitted(self) -> bool:
        return bool(self._state.uncommitted)

    def activate(self, event_id: str, when: float) -> bool:
        """Start counting a deferred contact from ``when``. False if the event is unknown here."""
        entry = self._pop_pending(event_id)
        if entry is None:
            return False
        self._add_contact((float(when), self._state.next_seq(), *entry[_EVENT:]))
        return True

    def record_response(self, *, event_id: str, when: float, arm: JointArm, category: str, reward: float) -> None:
        """Record a reward; only positive rewards make a value "responded" (once per event), and not
        for a deferred decision still waiting for activation."""
        state = self._state
        if reward <= 0 or (state.responses is not None and event_id in state.responses) or (
                state.pending is not None and event_id in state.pending):
            return  # a deferred decision never activated is not part of the history
        if state.responses is None:
            state.responses = _Timeline()
        state.responses.add(_entry(when, state.next_seq(), event_id, arm, category))
        self._trim(state.responses)

    def snapshot(self, now: float) -> UserHistory:
        """The frozen history within the horizon as of ``now`` (older entries are dropped here)."""
        state = self._state
        self.expire(now)
        contacts, responses = state.contacts, state.responses
        if not contacts and responses is None:  # nothing shown or answered (a new customer)
            return UserHistory(as_of=float(now))
        shown = contacts.shown_sets()
        responded = responses.shown_sets() if responses is not None else (frozenset(),) * len(HISTORY_DIMENSIONS)
        return UserHistory(
            as_of=float(now),
            n_contacts=len(contacts),
            shown_categories=shown[0],
            shown_formats=shown[1],
            shown_time_slots=shown[2],
            shown_offers=shown[3],
            responded_categories=responded[0],
            responded_formats=responded[1],
            responded_time_slots=responded[2],
            responded_offers=responded[3],
            contact_times=contacts.times_by_format(),
            shown_value_counts=dict(zip(COUNTED_DIMENSIONS, contacts.counts)),
            responded_value_counts=dict(zip(COUNTED_DIMENSIONS, responses.counts)) if responses is not None else {},
        )

    def expire(self, now: float) -> None:
        """Drop entries older than the horizon (pending deferred ones by their decision time)."""
        state = self._state
        cutoff = float(now) - self._config.horizon_s
        state.contacts.drop_before(cutoff)
        if state.responses is not None:
            state.responses.drop_before(cutoff)
            if not state.responses:
                state.responses = None
        while state.pending and next(iter(state.pending.values()))[_WHEN] < cutoff:
            del state.pending[next(iter(state.pending))]
        if not state.pending:
            state.pending = None

    @property
    def is_empty(self) -> bool:
        state = self._state
        return not (state.contacts or state.pending or state.responses)

    def _pop_pending(self, event_id: str) -> _Entry | None:
        state = self._state
        if state.pending is None:
            return None
        entry = state.pending.pop(event_id, None)
        if not state.pending:
            state.pending = None
        return entry

    def _add_contact(self, entry: _Entry) -> None:
        self._state.contacts.add(entry)
        self._trim(self._state.contacts)

    def _trim(self, timeline: _Timeline) -> None:
        timeline.drop_oldest(len(timeline) - self._config.max_entries_per_user)

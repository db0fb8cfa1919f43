"""The in-memory store of every user's contact history, bounded by LRU over users and a time horizon.

One store for all campaigns (caps and fatigue are global: one customer, one inbox), keyed by the
hashed user key: at most ``max_users`` users (least recently used dropped first) and, per user, only
entries newer than ``horizon_s`` (and at most ``max_entries_per_user``).

Truth is the log: a user the store does not hold (never seen, or evicted) is *loaded* through
``loader(user_key)`` (the committed contacts within the horizon) under its lock before anything reads
it, so eviction never lifts a cap; a user with pending (uncommitted) contacts is never evicted. Without
a loader (tests, tools) an unknown user starts empty.

Concurrency: every user has its own re-entrant lock. ``with store.locked(key) as user:`` holds it for
a read-modify-write (snapshot, decide, record) so concurrent calls and the items of one batch for the
same user see each other; the store-wide lock is held only for the LRU bookkeeping.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import islice

from policies.history.records import HistoryConfig, HistoryRecord, UserHistory
from policies.history.user import UserHandle, UserState
from policies.types import JointArm

__all__ = ["HistoryLoader", "UserHistoryStore"]

#: Reads one user's committed history (e.g. from the decision log) when the store does not hold it.
HistoryLoader = Callable[[str], Iterable[HistoryRecord]]


class UserHistoryStore:
    """Per-user contacts and history, bounded by LRU over users and a time horizon."""

    def __init__(self, config: HistoryConfig | None = None, loader: HistoryLoader | None = None) -> None:
        self.config = config or HistoryConfig()
        self._loader = loader
        self._users: OrderedDict[str, UserState] = OrderedDict()
        self._lock = threading.Lock()  # guards _users only, never held while a user lock is awaited
        self.loads = 0  # users read in through the loader
        #: the store holds every committed contact within the horizon (a `rebuild` with ``complete``, the
        #: only writer of its log, nobody evicted since): a user it does not hold has none, so no load
        self.complete = False

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
                handle = UserHandle(state, self.config)
                if not state.loaded:
                    if self.complete:  # not held, so nothing committed within the horizon
                        state.loaded = True
                    else:
                        self._load(user_key, state, handle)
                yield handle
        finally:
            self._unpin(state)

    def _load(self, user_key: str, state: UserState, user: UserHandle) -> None:
        """Read a user's committed past in (once per resident state, its lock held). If the loader
        fails, the state stays unloaded (and the caller sees the error): a cap is never decided blind."""
        if self._loader is not None:
            for record in sorted(self._loader(user_key), key=lambda r: r.when):
                _apply(user, record)
            self.loads += 1
        state.loaded = True

    def confirm(self, user_key: str, event_id: str) -> None:
        """The decision behind a pending contact was committed (no-op if the user is not held)."""
        state = self._resident(user_key)
        if state is not None:
            with state.lock:
                UserHandle(state, self.config).confirm(event_id)

    def discard(self, user_key: str, event_id: str) -> None:
        """The decision behind a pending contact was not committed: forget the contact."""
        state = self._resident(user_key)
        if state is not None:
            with state.lock:
                UserHandle(state, self.config).discard(event_id)

    def forget(self, user_key: str) -> bool:
        """The customer's logged rows were erased: drop what the store holds of them and read back what the
        log still has (decisions committed since), keeping contacts whose commit is still under way (their
        decisions come after the erasure). False when the store did not hold the customer."""
        state = self._resident(user_key)
        if state is None:
            return False
        with state.lock:
            user = UserHandle(state, self.config)
            user.clear_committed()
            if self._loader is not None:
                for record in sorted(self._loader(user_key), key=lambda r: r.when):
                    _apply(user, record)
            state.loaded = True
        return True

    def _resident(self, user_key: str) -> UserState | None:
        with self._lock:
            return self._users.get(user_key)

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
        """The user's frozen history (loaded through the loader if the store does not hold the user;
        without a loader an unknown user gets an empty one and is not added)."""
        if self._loader is None:
            with self._lock:
                known = user_key in self._users
            if not known:
                return UserHistory.empty(float(now))
        with self.locked(user_key) as user:
            return user.snapshot(now)

    def rebuild(self, records: Iterable[HistoryRecord], *, complete: bool = False) -> None:
        """Replace the contents with the history the records describe (e.g. the log at start).

        Records are applied in time order; the result equals recording the same decisions one by one.
        ``complete``: the records are every committed contact within the horizon and this store's owner is
        the only writer of them (the embedded log): customers it does not hold are then not loaded, until
        the first eviction.
        """
        with self._lock:
            self._users.clear()
            self.complete = complete
        for record in sorted(records, key=lambda r: r.when):
            state = self._pin(record.user_key)
            try:
                with state.lock:
                    state.loaded = True  # the rebuild reads every committed record of the horizon
                    _apply(UserHandle(state, self.config), record)
            finally:
                self._unpin(state)

    def _pin(self, user_key: str) -> UserState:
        with self._lock:
            state = self._users.get(user_key)
            if state is None:
                state = self._users[user_key] = UserState()
            else:
                self._users.move_to_end(user_key)
            state.pins += 1
            self._evict_locked()
            return state

    def _unpin(self, state: UserState) -> None:
        with self._lock:
            state.pins -= 1
            self._evict_locked()

    def _evict_locked(self) -> None:
        """Drop least recently used users beyond ``max_users``, skipping users in use right now."""
        excess = len(self._users) - self.config.max_users
        if excess <= 0:
            return
        # Oldest first; stops as soon as enough are found (pinned users are rare and short-lived).
        victims = list(islice((k for k, s in self._users.items() if s.pins == 0 and not s.uncommitted), excess))
        for key in victims:
            del self._users[key]
        if victims:
            self.complete = False  # an evicted customer's contacts are in the log only now


def _apply(user: UserHandle, record: HistoryRecord) -> None:
    """Replay one committed record onto a locked user."""
    user.record_contact(event_id=record.event_id, when=record.when, arm=record.arm, category=record.category,
                        counts=record.counted)
    if record.reward is not None:
        reward_when = record.when if record.reward_when is None else record.reward_when
        user.record_response(event_id=record.event_id, when=reward_when, arm=record.arm, category=record.category,
                             reward=record.reward)

"""Privacy operations on a decision log, as the server and the CLI run them: erase a customer, list what is
held about one, and — in every running server — forget an erased customer's in-memory state.

A customer is named by the clear ``user_id`` only here, where it is hashed under every listed user-hash key
(`service.keys.ServerKeys.user_keys`); the log sees the hashes alone. A tool's key must be one the log
registered (`check_registered`): an erasure that silently matches nothing because of a wrong key is a failure.

Servers follow erasures through the log's audit trail (`ErasureFollower`): every ``poll_seconds`` (the
registry poll interval) a server reads the audit rows after the newest it saw, and for each erasure drops the
customer from its per-user store (re-read from the log: only decisions committed since stay) and empties its
idempotency cache (a reused erased ``event_id`` then makes a new decision). A shared log reaches every replica.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from decision_log import DecisionLog
from decision_log.privacy_records import ERASURE_ACTION, ErasureCounts, UserData
from offerbandit.errors import InvalidInput, OfferBanditError
from policies.history import UserHistoryStore
from service.claims import EventClaims
from service.keys import ServerKeys

__all__ = ["ErasureFollower", "check_registered", "erase_customer", "held_about"]

_log = logging.getLogger("offerbandit.erasure")
_REREAD = 256


def check_registered(log: DecisionLog, keys: ServerKeys) -> None:
    """InvalidInput unless one of ``keys`` is registered with ``log`` (the key its servers hash with)."""
    registered = {check for _, check in log.registered_keys()}
    if not registered:
        raise InvalidInput(f"the decision log {log.location} has no registered user-hash key (no server has "
                           "started on it with this version); start `offerbandit serve` on it once",
                           field="privacy.user_hash_key")
    if not registered.intersection(check for _, check in keys.key_checks()):
        raise InvalidInput("the user-hash key given is not the one this decision log's servers use (check "
                           "[privacy] user_hash_key, $OFFERBANDIT_USER_HASH_KEY or --data-dir)",
                           field="privacy.user_hash_key")


def _user_keys(keys: ServerKeys, user_id: str) -> tuple[str, ...]:
    if not isinstance(user_id, str) or not user_id:
        raise InvalidInput("user_id must be a non-empty string", field="user_id")
    return keys.user_keys(user_id)


def erase_customer(log: DecisionLog, keys: ServerKeys, user_id: str, *, who: str = "") -> ErasureCounts:
    """Delete everything ``log`` holds about ``user_id`` (under every listed key) in one transaction."""
    check_registered(log, keys)
    return log.erase_users(_user_keys(keys, user_id), who=who)


def held_about(log: DecisionLog, keys: ServerKeys, user_id: str) -> UserData:
    """Everything ``log`` holds about ``user_id``: exactly what `erase_customer` would delete."""
    check_registered(log, keys)
    return log.user_data(_user_keys(keys, user_id))


class ErasureFollower:
    """A daemon thread: applies the log's new erasures to this server's in-memory state every ``poll_s``."""

    def __init__(self, log: DecisionLog, history: UserHistoryStore, claims: EventClaims, poll_s: float) -> None:
        self._log = log
        self._history = history
        self._claims = claims
        self._poll_s = max(0.05, float(poll_s))
        self._seen = log.last_audit_id()  # the per-user store was built from the log after these
        self._done: set[int] = set(range(max(1, self._seen - _REREAD + 1), self._seen + 1))
        self._stop = threading.Event()
        self._poll_lock = threading.Lock()  # the thread and an admin call may poll at once
        self._thread: threading.Thread | None = None
        self.forgotten = 0  # erasures applied (for tests and metrics)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="erasure-follower", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.poll_once()
            except OfferBanditError as exc:  # the log is unavailable for a moment: the next poll retries
                _log.warning("erasure follower: %s", exc)

    def poll_once(self) -> int:
        """Apply the erasures logged since the last poll; how many. On PostgreSQL audit ids are handed out
        before commit, so a smaller id can commit after a larger one was seen: the last `_REREAD` ids are
        read again and only the ones not applied yet are applied."""
        with self._poll_lock:
            return self._poll_locked()

    def _poll_locked(self) -> int:
        applied = 0
        while True:
            fresh = [e for e in self._log.audit_after(max(0, self._seen - _REREAD)) if e.id not in self._done]
            if not fresh:
                return applied
            for entry in fresh:
                if entry.action == ERASURE_ACTION:
                    self.forget(entry.user_keys)
                    applied += 1
                self._done.add(entry.id)
                self._seen = max(self._seen, entry.id)
            self._done = {i for i in self._done if i > self._seen - _REREAD}

    def forget(self, user_keys: Sequence[str]) -> None:
        """Drop one erased customer (all their keyed hashes) from the per-user store and the repeat cache."""
        for user_key in user_keys:
            self._history.forget(user_key)
        self._claims.forget_all()
        self.forgotten += 1

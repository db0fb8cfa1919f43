"""What a decision answers, and the compact record a repeated ``event_id`` is answered from.

:class:`DecisionOutcome` is the answer as the servicer turns it into a ``Decision``. The idempotency
cache does not keep outcomes (a 96-arm ranking is ~15 KB of Python objects; a 16 x 24-slot request
~370 KB): it keeps a :class:`RepeatRecord` — the chosen index, its exact probability, version, label,
the request fingerprint, the eligible arms as ``uint32`` indices into the campaign's shared candidate
:class:`ArmSet` and the served pmf as one float64 array rounded as the compact log stores it (float32
entries, the chosen one exact: an answer from the cache equals the answer from the log bit for bit) — and
:class:`RepeatCache` bounds them in bytes, charging each shared arm set once while any record refers to it.
"""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from decision_log import as_stored
from offerbandit.checks import check_scalar
from policies.bounded import text_bytes
from policies.types import ArmSet, JointArm

__all__ = ["NO_RANKING", "DecisionOutcome", "Ranking", "RepeatCache", "RepeatRecord", "arm_set_bytes", "ranking_of"]


class Ranking(Sequence):
    """The arms of an answer with non-zero probability, highest first, as ``(JointArm, probability)`` pairs.

    Held as two arrays into ``arms`` (the campaign's candidate set, shared): ``positions`` (int64) and
    ``probabilities`` (float64 holding float32 values, what the compact log stores; the chosen arm's entry
    is its exact probability). Pairs are built only when someone iterates; the wire encoder reads the arrays.
    """

    __slots__ = ("arms", "positions", "probabilities")

    def __init__(self, arms: ArmSet | None, positions: np.ndarray, probabilities: np.ndarray) -> None:
        self.arms = arms
        self.positions = positions
        self.probabilities = probabilities

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index):  # noqa: ANN001 - int or slice, as Sequence
        if isinstance(index, slice):
            return tuple(self)[index]
        return self.arms.arms[int(self.positions[index])], float(self.probabilities[index])

    def __iter__(self):  # noqa: ANN204
        if not len(self.positions):
            return iter(())
        return zip(map(self.arms.arms.__getitem__, self.positions.tolist()), self.probabilities.tolist())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ranking({tuple(self)!r})"


NO_RANKING = Ranking(None, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    event_id: str
    campaign: str
    arm: JointArm | None
    probability: float
    ranking: Ranking
    policy_version: str
    exploration: str
    no_contact_reason: str = ""


def ranking_of(arm_set: ArmSet, pmf: np.ndarray, limit: int = 0, index: np.ndarray | None = None, *,
               chosen: int | None = None, probability: float | None = None) -> Ranking:
    """Arms with non-zero probability, highest first (ties in arm order); the top ``limit`` if set.

    ``index`` maps pmf positions to positions in ``arm_set`` (eligible arms of a larger candidate set).
    Entries carry the pmf rounded to float32 — what the compact log stores, so a repeat answered from the
    log equals the first answer — and the chosen pmf position (``chosen``) its exact ``probability``."""
    values = np.asarray(pmf, dtype=np.float32).astype(np.float64)
    if chosen is not None and probability is not None:
        values[chosen] = probability
    order = np.argsort(-values, kind="stable")
    order = order[values[order] > 0]
    if limit:
        order = order[:limit]
    probabilities = values[order]
    positions = order if index is None else np.asarray(index, dtype=np.int64)[order]
    return Ranking(arm_set, positions, probabilities)


def arm_set_bytes(arm_set: ArmSet) -> int:
    """Estimated bytes of an arm set and its offers (measured: ~66 B per joint arm, ~450 B per offer
    with two features; ``tests/service/test_bounded_memory.py`` checks the estimate against tracemalloc)."""
    offers = sum(300 + sum(100 + text_bytes(k, v) for k, v in o.features.items()) + text_bytes(o.id)
                 for o in arm_set.offers.values())
    return 200 + 72 * len(arm_set.arms) + offers


@dataclass(frozen=True, slots=True)
class RepeatRecord:
    """What answering a repeat needs. ``arms`` is shared (the campaign's candidate set); ``eligible``
    indexes it, ``pmf`` is the served pmf over those eligible arms; ``chosen`` indexes ``pmf`` (-1: none)."""

    event_id: str
    campaign: str
    fingerprint: str | None
    arms: ArmSet
    eligible: np.ndarray
    pmf: np.ndarray
    chosen: int
    probability: float
    policy_version: str
    exploration: str
    no_contact_reason: str = ""

    @classmethod
    def of(cls, outcome: DecisionOutcome, fingerprint: str | None, arms: ArmSet, eligible: np.ndarray,
           pmf: np.ndarray, chosen: int | None) -> "RepeatRecord":
        # the pmf as the compact log stores and reads it, so a repeat answered from memory and one read back
        # from the log give the same answer
        pmf = as_stored(pmf, chosen, outcome.probability)
        return cls(outcome.event_id, outcome.campaign, fingerprint, arms, np.asarray(eligible, dtype=np.uint32),
                   pmf, -1 if chosen is None else int(chosen), outcome.probability,
                   outcome.policy_version, outcome.exploration, outcome.no_contact_reason)

    def outcome(self, ranking_limit: int = 0) -> DecisionOutcome:
        """The original answer, cut to this caller's ``ranking_limit``."""
        arm = None if self.chosen < 0 else self.arms.arms[int(self.eligible[self.chosen])]
        ranking = (ranking_of(self.arms, self.pmf, ranking_limit, self.eligible.astype(np.int64), chosen=self.chosen,
                              probability=self.probability) if len(self.pmf) else NO_RANKING)
        return DecisionOutcome(self.event_id, self.campaign, arm, self.probability, ranking, self.policy_version,
                               self.exploration, self.no_contact_reason)

    @property
    def nbytes(self) -> int:
        """Bytes of this record, not counting the shared ``arms``."""
        return (sys.getsizeof(self) + 2 * 112 + self.eligible.nbytes + self.pmf.nbytes
                + text_bytes(self.event_id, self.fingerprint or "") + 32)


#: A cached record as a plain tuple of strings, numbers and arrays, with its arm set by ``id`` (held in
#: ``RepeatCache._arm_sets``): CPython's collector stops tracking such a tuple, where a `RepeatRecord` per
#: recent decision (thousands) is walked by every full collection while every thread waits.
_Packed = tuple[str, str | None, int, np.ndarray, np.ndarray, int, float, str, str, str, int]
_ARMS_ID, _SIZE = 2, 10


def _packed(record: RepeatRecord, size: int) -> _Packed:
    return (record.campaign, record.fingerprint, id(record.arms), record.eligible, record.pmf, record.chosen,
            record.probability, record.policy_version, record.exploration, record.no_contact_reason, size)


class RepeatCache:
    """Recently decided events by ``event_id``, oldest dropped first once ``max_bytes`` is reached."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = check_scalar(max_bytes, "idempotency_cache_bytes", int, low=0)
        self._records: OrderedDict[str, _Packed] = OrderedDict()
        self._arm_sets: dict[int, list] = {}  # id(arms) -> [arms, references, bytes]
        self._lock = threading.Lock()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._records)

    def get(self, event_id: str) -> RepeatRecord | None:
        with self._lock:
            found = self._records.get(event_id)
            if found is None:
                return None
            campaign, fingerprint, arms_id, eligible, pmf, chosen, probability, version, exploration, reason, _ = found
            return RepeatRecord(event_id, campaign, fingerprint, self._arm_sets[arms_id][0], eligible, pmf, chosen,
                                probability, version, exploration, reason)

    def put(self, record: RepeatRecord) -> None:
        with self._lock:
            self._drop(record.event_id)
            shared = self._arm_sets.get(id(record.arms))
            extra = 0 if shared is not None else arm_set_bytes(record.arms)
            size = record.nbytes
            if size + extra > self.max_bytes:
                return  # bigger than the whole budget: answered from the log if repeated
            if shared is None:
                shared = self._arm_sets[id(record.arms)] = [record.arms, 0, extra]
                self.nbytes += extra
            shared[1] += 1
            self._records[record.event_id] = _packed(record, size)
            self.nbytes += size
            while self.nbytes > self.max_bytes and self._records:
                self._drop(next(iter(self._records)))

    def pop(self, event_id: str) -> None:
        with self._lock:
            self._drop(event_id)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._arm_sets.clear()
            self.nbytes = 0

    def _drop(self, event_id: str) -> None:
        found = self._records.pop(event_id, None)
        if found is None:
            return
        self.nbytes -= found[_SIZE]
        shared = self._arm_sets[found[_ARMS_ID]]
        shared[1] -= 1
        if shared[1] == 0:
            del self._arm_sets[found[_ARMS_ID]]
            self.nbytes -= shared[2]

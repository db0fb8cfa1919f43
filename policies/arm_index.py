"""Integer codes of an arm set's columns, computed once per arm set and reused by every decision on it.

The contact rules, the novelty mixture and the answer's ranking ask per arm "which offer, format, slot,
category?". Asking 128 ``JointArm`` objects in Python costs tens of µs per question per decision; with the
codes here each becomes a numpy gather over a handful of distinct values (rules decide per offer and per
(format, slot) pair, novelty per category). Callers keep sharing arm-set objects (the campaign's candidate
cache), so the codes are cached by identity, bounded in bytes.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from policies.bounded import IdentityLRU
from policies.types import ArmSet

__all__ = ["ArmIndex", "arm_index", "ARM_INDEX_CACHE_BYTES"]

#: the identity-keyed cache of `arm_index` holds at most this many bytes of codes
ARM_INDEX_CACHE_BYTES = 8 * 1024 * 1024


def _codes(values: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Distinct values in order of first appearance and each position's code."""
    code_of: dict[str, int] = {}
    codes = np.fromiter((code_of.setdefault(v, len(code_of)) for v in values), dtype=np.int64, count=len(values))
    codes.setflags(write=False)
    return tuple(code_of), codes


@dataclass(frozen=True, eq=False)
class ArmIndex:
    """Per arm (arm order): codes into the distinct offers, formats, (format, slot) pairs and categories."""

    offers: tuple[str, ...]
    offer_of_arm: np.ndarray
    formats: tuple[str, ...]
    format_of_arm: np.ndarray
    slots: tuple[str, ...]
    slot_of_arm: np.ndarray
    pairs: tuple[tuple[str, str], ...]
    pair_of_arm: np.ndarray
    categories: tuple[str, ...]
    category_of_arm: np.ndarray

    @classmethod
    def build(cls, arm_set: ArmSet) -> "ArmIndex":
        arms = arm_set.arms
        offers, offer_of_arm = _codes([a.offer_id for a in arms])
        formats, format_of_arm = _codes([a.format for a in arms])
        slots, slot_of_arm = _codes([a.time_slot for a in arms])
        pair_names, pair_of_arm = _codes([f"{a.format}\x00{a.time_slot}" for a in arms])
        pairs = tuple(tuple(name.split("\x00", 1)) for name in pair_names)
        categories, category_of_offer = _codes([arm_set.offers[o].category for o in offers])
        category_of_arm = category_of_offer[offer_of_arm]
        category_of_arm.setflags(write=False)
        return cls(offers, offer_of_arm, formats, format_of_arm, slots, slot_of_arm, pairs,  # type: ignore[arg-type]
                   pair_of_arm, categories, category_of_arm)

    @property
    def nbytes(self) -> int:
        arrays = (self.offer_of_arm, self.format_of_arm, self.slot_of_arm, self.pair_of_arm, self.category_of_arm)
        names = (*self.offers, *self.formats, *self.slots, *self.categories)
        return (400 + sum(a.nbytes + 112 for a in arrays) + sum(sys.getsizeof(n) + 8 for n in names)
                + 120 * len(self.pairs))


_CACHE: IdentityLRU[ArmSet, ArmIndex] = IdentityLRU(ARM_INDEX_CACHE_BYTES, ArmIndex.build, lambda index: index.nbytes)


def arm_index(arm_set: ArmSet) -> ArmIndex:
    """The codes of ``arm_set`` (cached by identity while within `ARM_INDEX_CACHE_BYTES`)."""
    return _CACHE.get(arm_set)

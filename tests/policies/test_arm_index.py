"""The per-arm-set codes the rules, the novelty mixture and the answers read: right, shared, bounded."""
from __future__ import annotations

import numpy as np

from policies.arm_index import ArmIndex, arm_index
from policies.bounded import IdentityLRU
from policies.types import ArmSet, Offer

OFFERS = (Offer("a", {"category": "food"}), Offer("b", {"category": "travel"}), Offer("c", {"category": "food"}),
          Offer("d"))
ARMS = ArmSet.product(OFFERS, ("sms", "email"), ("morning", "evening", "night"))


def test_codes_give_back_each_arms_columns():
    index = ArmIndex.build(ARMS)
    for i, arm in enumerate(ARMS.arms):
        assert index.offers[index.offer_of_arm[i]] == arm.offer_id
        assert index.formats[index.format_of_arm[i]] == arm.format
        assert index.slots[index.slot_of_arm[i]] == arm.time_slot
        assert index.pairs[index.pair_of_arm[i]] == (arm.format, arm.time_slot)
        assert index.categories[index.category_of_arm[i]] == ARMS.offers[arm.offer_id].category
    assert index.categories == ("food", "travel", "")
    assert len(index.pairs) == 6 and not index.offer_of_arm.flags.writeable


def test_the_same_arm_set_object_is_indexed_once_and_an_equal_copy_gets_its_own():
    first = arm_index(ARMS)
    assert arm_index(ARMS) is first
    copy = ArmSet(ARMS.arms, ARMS.offers)
    other = arm_index(copy)
    assert other is not first
    np.testing.assert_array_equal(other.pair_of_arm, first.pair_of_arm)


def test_the_cache_stays_within_its_byte_budget():
    budget = 3 * ArmIndex.build(ARMS).nbytes
    cache = IdentityLRU(budget, ArmIndex.build, lambda index: index.nbytes)
    sets = [ArmSet.product((Offer(f"o{i}"), Offer(f"p{i}")), ("sms", "email"), ("morning", "evening", "night"))
            for i in range(20)]
    for arm_set in sets:
        assert cache.get(arm_set).offers == (f"o{sets.index(arm_set)}", f"p{sets.index(arm_set)}")
        assert cache.nbytes <= budget
    assert len(cache) < len(sets)
    assert cache.get(sets[-1]) is cache.get(sets[-1])  # the newest stays

"""The compact row's encodings (decision_log.codec) round-trip, edge cases included."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from decision_log.caps import as_capped
from decision_log.codec import (arm_set_code, as_stored, decode_arm_set, eligible_to_mask, mask_to_indices,
                                pmf32_to_blob, policy_pmf_blob, removed_counts, removed_text, served_pmf)
from policies.rules import RemovalCounts
from tests.decision_log.test_compact_log import _old_row


@pytest.mark.parametrize("kept, n", [([], 0), ([], 9), ([0], 1), ([3], 9), ([0, 1, 2], 3), ([0, 2], 3),
                                     (list(range(128)), 128), (list(range(0, 128, 3)), 128), ([1, 2], 3)])
def test_eligible_masks_round_trip(kept, n):
    mask = eligible_to_mask(np.array(kept, dtype=np.int64), n)
    assert (mask is None) == (len(kept) == n)  # NULL exactly when every candidate is eligible
    assert mask is None or len(mask) == (0 if not kept else (n + 7) // 8)
    np.testing.assert_array_equal(mask_to_indices(mask, n), kept)


def test_arm_sets_are_content_addressed():
    first = arm_set_code("offers-a", ("sms", "email"), ("morning",))
    assert first == arm_set_code("offers-a", ("sms", "email"), ("morning",))
    assert first[0] != arm_set_code("offers-a", ("email", "sms"), ("morning",))[0]  # order is part of the set
    assert decode_arm_set(first[1]) == ("offers-a", ("sms", "email"), ("morning",))


def test_pmfs_are_float32_with_the_chosen_entry_exact():
    pmf = np.array([0.1, 0.2, 0.3, 0.4]) / 1.0000001
    read = served_pmf(pmf32_to_blob(pmf), True, 2, float(pmf[2]))
    assert read[2] == pmf[2] and np.all(np.abs(read - pmf) <= 2.0 ** -24 * pmf)
    np.testing.assert_array_equal(read, as_stored(pmf, 2, float(pmf[2])))  # memory and log agree
    assert policy_pmf_blob(pmf.copy(), pmf) is None and policy_pmf_blob(pmf[::-1], pmf) == pmf32_to_blob(pmf[::-1])


def test_removal_counts_of_both_formats():
    counts = RemovalCounts(exclusion=3, consent=0, cap=2, quiet_hours=1, suppression=0)
    assert removed_text(counts) == "3,0,2,1,0" and removed_counts("3,0,2,1,0") == counts
    assert removed_text(RemovalCounts()) == "" and removed_counts(None) == RemovalCounts()
    assert removed_counts('{"exclusion": 3, "cap": 2, "quiet_hours": 1, "other": 9}') == counts


def test_a_capped_compact_row_counts_its_eligible_arms_under_cap():
    pmf = np.full(5, 0.2)
    row = dataclasses.replace(_old_row("c", pmf, [0, 1, 2, 3, 4], 0), arm_set_id="a" * 32, arm_set_text="[]",
                              formats_json=None, time_slots_json=None, eligible=None, pmf=pmf32_to_blob(pmf),
                              removed="1,0,0,0,0")
    capped = as_capped(row)
    assert (capped.chosen_index, capped.pmf, capped.eligible, capped.no_contact_reason) == (None, b"", b"", "cap")
    assert removed_counts(capped.removed) == RemovalCounts(exclusion=1, cap=5)

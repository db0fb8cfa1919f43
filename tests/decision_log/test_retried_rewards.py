"""A retried Reward (the same ``(event_id, reward_id)``, its answer lost) gets the stored call's answer and writes
nothing (DESIGN-NOTES: "A repeated (event_id, reward_id) with the same value returns the stored ack"); the same
reward_id with another value is refused, naming ``reward_id``. Both backends."""
from __future__ import annotations

import pytest

from decision_log import RewardDefaults, open_log
from offerbandit.errors import AlreadyExists
from tests.decision_log.test_named_queries import _row

FIRST = lambda campaign: "first"  # noqa: E731
SUM = lambda campaign: "sum"  # noqa: E731
RANGE = RewardDefaults(ranges={"default": (0.0, 10.0)}).range_of


def _rewards(log_place, event_id: str) -> list[tuple]:
    return log_place.sql("SELECT reward_id, value, status FROM rewards WHERE event_id = ? ORDER BY id", (event_id,))


def test_a_retried_first_reward_answers_accepted_again_and_writes_nothing(log_place):
    with open_log(log_place.where, writable=True) as log:
        log.insert_decisions([_row("e0", 0.0)]).result(10)
        first = log.record_reward("e0", 1.0, "r1", 0.5, FIRST, RANGE).result(10)
        again = log.record_reward("e0", 1.0, "r1", 0.6, FIRST, RANGE).result(10)
        other = log.record_reward("e0", 1.0, "r2", 0.7, FIRST, RANGE).result(10)  # a second reward, new id
    assert (first.accepted, first.duplicate, first.retried) == (True, False, False) and first.learn_seq is not None
    assert (again.accepted, again.duplicate, again.late, again.retried) == (True, False, False, True)
    assert again.learn_seq is None  # the first call handed the event to learning; a retry must not hand it again
    assert (other.accepted, other.duplicate, other.retried) == (False, True, False)
    assert _rewards(log_place, "e0") == [("r1", 1.0, "counted"), ("r2", 1.0, "duplicate")]


def test_a_retried_duplicate_or_late_reward_answers_as_it_was_stored(log_place):
    with open_log(log_place.where, writable=True) as log:
        log.insert_decisions([_row("e0", 0.0), _row("e1", 1.0)]).result(10)
        log.record_reward("e0", 1.0, "r1", 0.5, FIRST, RANGE).result(10)
        log.record_reward("e0", 0.0, "r2", 0.6, FIRST, RANGE).result(10)  # stored as duplicate
        log.record_reward("e1", 1.0, "r3", 99.0, FIRST, RANGE).result(10)  # after the window (due at 2.0): late
        duplicate = log.record_reward("e0", 0.0, "r2", 0.7, FIRST, RANGE).result(10)
        late = log.record_reward("e1", 1.0, "r3", 99.5, FIRST, RANGE).result(10)
    assert (duplicate.accepted, duplicate.duplicate, duplicate.late, duplicate.retried) == (False, True, False, True)
    assert (late.accepted, late.duplicate, late.late, late.retried) == (False, False, True, True)
    assert len(_rewards(log_place, "e0")) == 2 and len(_rewards(log_place, "e1")) == 1


def test_under_sum_a_retry_is_not_added_twice_and_another_value_is_refused(log_place):
    with open_log(log_place.where, writable=True) as log:
        log.insert_decisions([_row("e0", 0.0)]).result(10)
        log.record_reward("e0", 2.0, "a", 0.1, SUM, RANGE).result(10)
        log.record_reward("e0", 1.5, "b", 0.2, SUM, RANGE).result(10)
        retried = log.record_reward("e0", 2.0, "a", 0.3, SUM, RANGE).result(10)
        with pytest.raises(AlreadyExists, match="reward_id 'a'") as refused:
            log.record_reward("e0", 3.0, "a", 0.4, SUM, RANGE).result(10)
        assert refused.value.field == "reward_id"
    assert retried.accepted and retried.retried
    assert log_place.sql("SELECT reward, reward_count FROM decisions WHERE event_id = ?", ("e0",)) == [(3.5, 2)]
    assert len(_rewards(log_place, "e0")) == 2

"""One learner per log (`DecisionLog.learner_lock`), on both backends; losing it is noticed."""
from __future__ import annotations

import pytest

from decision_log import open_log
from offerbandit.errors import InvalidInput, LogUnavailable


def test_a_second_learner_is_refused_until_the_first_lets_go(log_where):
    with open_log(log_where, writable=True) as first, open_log(log_where, writable=True) as second:
        with first.learner_lock() as held:
            assert held.held()
            with pytest.raises(InvalidInput, match="another offerbandit learn") as refused:
                with second.learner_lock():
                    pass
            assert refused.value.field == "log-url"
        with second.learner_lock() as taken_over:  # released at the end of the first block
            assert taken_over.held()


def test_the_postgres_lock_is_lost_with_its_connection_and_can_be_taken_again(postgres_url, postgres_cluster):
    with open_log(postgres_url, writable=True) as log:
        with log.learner_lock() as held:
            assert held.held()
            postgres_cluster.restart("immediate")  # the session, and its advisory lock, are gone
            assert not held.held(), "a learner must notice it no longer holds the lock"
            with log.learner_lock() as again:  # so a new learner can take it
                assert again.held()


def test_an_unreachable_postgres_log_is_unavailable_not_refused(postgres_url, postgres_cluster):
    with open_log(postgres_url, writable=True) as log:
        postgres_cluster.stop("fast")
        try:
            with pytest.raises(LogUnavailable):
                with log.learner_lock():
                    pass
        finally:
            postgres_cluster.start()

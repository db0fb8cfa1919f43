"""`learn_in_batches`: the one way a policy is trained on a stream of logged events."""
from __future__ import annotations

from collections.abc import Sequence

import pytest

from offerbandit.errors import InvalidInput
from policies.contract import learn_in_batches


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[list[object]] = []

    def learn(self, events: Sequence[object]) -> None:
        self.calls.append(list(events))


def test_learns_every_event_in_order_in_batches():
    policy = _Recorder()
    assert learn_in_batches(policy, iter(range(7)), 3) == 7
    assert policy.calls == [[0, 1, 2], [3, 4, 5], [6]]


def test_an_empty_stream_learns_nothing():
    policy = _Recorder()
    assert learn_in_batches(policy, iter(()), 3) == 0 and policy.calls == []


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_batch_size_is_checked(size):
    with pytest.raises(InvalidInput, match="batch_size"):
        learn_in_batches(_Recorder(), iter(range(3)), size)

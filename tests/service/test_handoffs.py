"""The hand-offs bootstrap builds before the components that share them."""
from __future__ import annotations

import threading

from service.learner import LearnedCounter, LearnQueue


def test_learn_queue_is_idle_only_when_every_handed_event_is_done():
    handed = LearnQueue()
    assert handed.wait_idle(0.01)
    handed.enqueue([1, 2, 3])
    handed.claimed(2)  # due events claimed from the log, not through the queue
    assert handed.take(batch_size=2, timeout=0.1) == [1, 2]
    assert handed.take(batch_size=2, timeout=0.1) == [3]
    assert handed.take(batch_size=2, timeout=0.01) == []
    handed.done(4)
    assert not handed.wait_idle(0.01)
    threading.Timer(0.05, handed.done, args=(1,)).start()
    assert handed.wait_idle(5)


def test_take_gathers_events_arriving_after_the_first_into_one_batch():
    handed = LearnQueue()
    handed.enqueue([1])
    threading.Timer(0.05, handed.enqueue, args=([2],)).start()
    assert handed.take(batch_size=8, timeout=1) == [1]  # no gathering: only what was there
    assert handed.take(batch_size=8, timeout=5) == [2]
    handed.enqueue([3])
    threading.Timer(0.05, handed.enqueue, args=([4],)).start()
    assert handed.take(batch_size=2, timeout=1, gather=30) == [3, 4]  # a full batch returns before 30 s
    handed.enqueue([5])
    threading.Timer(0.05, handed.wake).start()
    assert handed.take(batch_size=8, timeout=1, gather=30) == [5]  # woken (stop): what it has


def test_wake_releases_a_waiting_take_and_a_waiting_checkpointer():
    handed = LearnQueue()
    threading.Timer(0.05, handed.wake).start()
    assert handed.take(batch_size=8, timeout=5) == []
    counter = LearnedCounter(every_events=10)
    threading.Timer(0.05, counter.wake).start()
    assert counter.wait_due(5)


def test_learned_counter_is_due_at_the_threshold_and_forgets_what_was_published():
    counter = LearnedCounter(every_events=10)
    assert counter.since_checkpoint("c") == 0 and counter.window_start("c") is None
    counter.add("c", 4)
    started = counter.window_start("c")
    assert started is not None
    counter.add("c", 3)
    assert counter.window_start("c") == started  # the window starts at the first learned event
    assert not counter.wait_due(0)
    counter.add("c", 3)
    assert counter.wait_due(0)
    assert not counter.wait_due(0)  # waiting consumed it
    counter.add("c", 2)  # learned while the checkpoint was being published
    counter.checkpointed("c", 10)
    assert counter.since_checkpoint("c") == 2 and counter.window_start("c") is None
    counter.add("d", 1)
    counter.restart("d")
    assert counter.since_checkpoint("d") == 0 and counter.window_start("d") is None

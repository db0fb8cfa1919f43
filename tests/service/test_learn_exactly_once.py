"""Learning exactly once across checkpoints and restarts (issue 14, item 8), through a real server, a
real log and a real MLflow store. A recording policy saves the list of events it learned, so a
checkpoint's bytes say exactly which events it contains."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from policies import factory
from policies.types import ArmSet, DecisionContext, LearningEvent
from policy_registry import CHAMPION, PolicyRegistry
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store
from tests.waiting import wait_for

MANUAL_CHECKPOINTS = """
[learning]
registry_poll_seconds = 0.2
checkpoint_every_events = 1000000
checkpoint_every_seconds = 3600

[campaigns.default]
policy = "recording"
"""


class RecordingPolicy:
    """Uniform, and remembers the ``n`` context feature of every event it learned, in order."""

    name = "recording"

    def __init__(self, learned: list[str] | None = None) -> None:
        self.learned = list(learned or [])

    @property
    def params(self) -> dict[str, object]:
        return {"policy": self.name}

    def pmf(self, context: DecisionContext, arm_set: ArmSet) -> np.ndarray:
        return np.full(len(arm_set.arms), 1.0 / len(arm_set.arms))

    def pmf_batch(self, items):
        return [self.pmf(c, a) for c, a in items]

    def learn(self, events: list[LearningEvent]) -> None:
        self.learned.extend(event.context.context["n"] for event in events)

    def save(self) -> bytes:
        return json.dumps({"learned": self.learned}).encode()

    @classmethod
    def load(cls, data: bytes) -> "RecordingPolicy":
        return cls(json.loads(data)["learned"])


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setitem(factory._FACTORIES, "recording", lambda **params: RecordingPolicy())
    monkeypatch.setitem(factory.POLICY_CLASSES, "recording", RecordingPolicy)


def _decide_and_reward(stub, numbers) -> None:
    for n in numbers:
        decision = stub.Decide(make_request(user=f"u{n}", context={"n": str(n)}), timeout=10)
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)


def _contents(registry: PolicyRegistry, version: str) -> list[str]:
    return RecordingPolicy.load(registry.load("default", version).model).learned


def test_events_claimed_but_still_queued_at_a_stop_are_learned_after_the_restart(recording, start_server, tmp_path,
                                                                                mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data_dir))
    first = start_server(MANUAL_CHECKPOINTS, data_dir=data_dir, start_registry=True)
    _decide_and_reward(first.stub, range(30))
    assert first.server.learner.wait_idle(30)
    v1 = first.server.registry.checkpoint("default")
    assert sorted(_contents(registry, v1), key=int) == [str(n) for n in range(30)]
    first.server.learner.stop()  # from here on, rewards claim events that nobody learns: as if killed
    _decide_and_reward(first.stub, range(30, 50))
    first.server.stop(grace=1)

    second = start_server(MANUAL_CHECKPOINTS, data_dir=data_dir, start_registry=True)
    assert second.server.learner.wait_idle(30)
    wait_for(lambda: second.server.learner.learned == 20, what="the 20 claimed events to be learned")
    v2 = second.server.registry.checkpoint("default")
    assert registry.resolve("default", CHAMPION) == v2
    learned = _contents(registry, v2)
    assert Counter(learned) == Counter(str(n) for n in range(50)), "each event exactly once"
    assert registry.load("default", v2).lineage.learn_seq == 50


def test_events_learned_while_checkpoints_are_taken_are_never_learned_twice(recording, start_server, tmp_path,
                                                                           mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data_dir))
    first = start_server(MANUAL_CHECKPOINTS, data_dir=data_dir, start_registry=True)
    traffic = threading.Thread(target=_decide_and_reward, args=(first.stub, range(300)))
    traffic.start()
    checkpoints = []
    while traffic.is_alive():  # checkpoints race with learning, again and again
        version = first.server.registry.checkpoint("default")
        if version is not None:
            checkpoints.append(version)
        time.sleep(0.05)
    traffic.join()
    assert len(checkpoints) >= 3
    for version in checkpoints:  # what each checkpoint says it contains is exactly what it learned
        lineage = registry.load("default", version).lineage
        assert len(_contents(registry, version)) == lineage.learn_seq
    first.server.stop(grace=1)  # what was learned after the last checkpoint lives only in the log now

    second = start_server(MANUAL_CHECKPOINTS, data_dir=data_dir, start_registry=True)
    assert second.server.learner.wait_idle(30)
    final = second.server.registry.checkpoint("default")
    learned = _contents(registry, final)
    assert Counter(learned) == Counter(str(n) for n in range(300)), "each event exactly once"
    assert registry.load("default", final).lineage.learn_seq == 300

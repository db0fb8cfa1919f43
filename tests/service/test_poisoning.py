"""Issue 14 item 1 through a real server, MLflow store and SQLite log: the poisoning sequence.

``Reward(value=1e300)`` is refused; a model update that breaks the model anyway (forced in by a
test-only VW policy that learns a marked event with cost -1e300, what that reward used to do) is
rolled back, its event quarantined and counted, Decide keeps working, a checkpoint still publishes,
and after a restart the catch-up from the champion never learns the event again.
"""
from __future__ import annotations

import sqlite3

import grpc
import pytest

from offers.v1 import decision_pb2 as pb
from policies import factory
from policies.vw.policy import VWPolicy, VWPolicyConfig
from policies.vw.workspace import learn_multi
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store
from tests.waiting import wait_for

CONFIG = """
[learning]
registry_poll_seconds = 0.2
checkpoint_every_events = 100000
checkpoint_every_seconds = 3600
batch_size = 8
poll_seconds = 0.1
[campaigns.default]
policy = "poison_vw"
"""


class PoisonVW(VWPolicy):
    """Real VW; an event whose context has ``poison = yes`` is learned with cost -1e300."""

    name = "poison_vw"
    poisoned_learns = 0

    def learn(self, events):
        for event in events:
            if event.context.context.get("poison") != "yes":
                super().learn([event])
                continue
            type(self).poisoned_learns += 1
            learner = self._learner
            with learner._lock:
                learn_multi(learner._vw, learner._examples(event.context, event.arm_set, event.chosen, "0:-1e300:0.5"))


@pytest.fixture
def poison_policy(monkeypatch):
    monkeypatch.setitem(factory.POLICY_CLASSES, PoisonVW.name, PoisonVW)
    monkeypatch.setitem(factory._FACTORIES, PoisonVW.name, factory._with_config(PoisonVW, VWPolicyConfig))
    PoisonVW.poisoned_learns = 0
    return PoisonVW


def _quarantined(data_dir) -> list[str]:
    conn = sqlite3.connect(data_dir / "decisions.db")
    try:
        return [r[0] for r in conn.execute("SELECT event_id FROM decisions WHERE quarantined_at IS NOT NULL")]
    finally:
        conn.close()


def _metric(served, name: str) -> float:
    for line in served.server.metrics.render().decode().splitlines():
        if line.startswith(f"{name}{{") and 'campaign="default"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _rewarded(stub, user: str, context=None, value: float = 1.0) -> str:
    decision = stub.Decide(make_request(user=user, context=context), timeout=10)
    assert sum(a.probability for a in decision.ranking) == pytest.approx(1.0, abs=1e-6)
    stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value), timeout=10)
    return decision.event_id


def test_the_poisoning_sequence(start_server, tmp_path, mlflow_template_store, poison_policy):
    data_dir = tmp_path / "data"
    copy_store(mlflow_template_store, data_dir)
    served = start_server(CONFIG, data_dir=data_dir, start_registry=True)
    stub = served.stub

    # 1. the reward itself is refused, nothing stored
    decision = stub.Decide(make_request(user="mallory"), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1e300), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reward_range" in err.value.details()

    # 2. some learning, then a checkpoint (the champion a restart serves)
    for i in range(20):
        _rewarded(stub, f"good{i}", value=float(i % 2))
    wait_for(lambda: served.server.learner.learned >= 20, what="20 events learned")
    version = served.server.registry.checkpoint("default")

    # 3. more learning after it, then the poisoned update: rolled back, quarantined, counted
    for i in range(5):
        _rewarded(stub, f"later{i}")
    poisoned = _rewarded(stub, "mallory2", context={"segment": "young", "poison": "yes"})
    wait_for(lambda: _quarantined(data_dir) == [poisoned], what="the poisoned event to be quarantined")
    assert PoisonVW.poisoned_learns >= 1
    assert _metric(served, "offerbandit_quarantined_events_total") == 1
    assert _metric(served, "offerbandit_model_rollbacks_total") >= 1

    # 4. the campaign stays available, on every context, the poisoned one included
    for i in range(10):
        context = {"segment": "young", "poison": "yes"} if i % 2 else None
        answer = stub.Decide(make_request(user=f"after{i}", context=context), timeout=10)
        assert answer.offer_id and answer.policy_version == version
    _rewarded(stub, "after-reward")
    wait_for(lambda: served.server.learner.learned >= 26, what="learning to continue after the rollback")

    # 5. a restart serves the champion of step 2, whose catch-up covers everything learned after it
    #    (the poisoned event included) and never replays the quarantined event
    served.server.stop(grace=1)
    learns_before_restart = PoisonVW.poisoned_learns
    again = start_server(CONFIG, data_dir=data_dir, start_registry=True)
    wait_for(lambda: again.stub.Decide(make_request(user="x"), timeout=10).policy_version != "bootstrap",
              what="the champion to be served after the restart")
    for i in range(5):
        assert again.stub.Decide(make_request(user=f"restart{i}", context={"poison": "yes"}), timeout=10).offer_id
    assert PoisonVW.poisoned_learns == learns_before_restart  # caught up on the 6 others only
    assert _quarantined(data_dir) == [poisoned]
    assert again.server.registry.checkpoint("default") not in ("bootstrap", version)  # publishing works

"""`offerbandit promote` gates on an offline estimate from the log; `rollback` undoes a promotion."""
from __future__ import annotations

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from policies.factory import make_policy
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from service.config import default_campaign
from policy_registry import CHAMPION, Lineage, PolicyArtifact, PolicyRegistry
from service.config_toml import campaign_policy_toml
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store
from tests.cli.test_cli import run
from tests.service.test_learning_e2e import BEST, FORMATS, OFFERS, SLOTS, response_probability

UNIFORM_LOGGER = """
[campaigns.default]
policy = "uniform"
"""


def _trained(good: bool) -> bytes:
    """A VW policy that learned the world (good) or its opposite (bad), from uniform data."""
    campaign = default_campaign()
    policy = make_policy("vw", **campaign.policy_params)
    offers = [Offer(o, f) for o, f in OFFERS]
    arm_set = ArmSet.product(offers, FORMATS, SLOTS)
    rng = np.random.default_rng(3)
    events = []
    for _ in range(3000):
        segment = sorted(BEST)[rng.integers(4)]
        chosen = int(rng.integers(len(arm_set)))
        arm = arm_set.arms[chosen]
        p = response_probability(segment, (arm.offer_id, arm.format, arm.time_slot))
        reward = float(rng.random() < p)
        events.append(LearningEvent(DecisionContext("k", {"segment": segment}), arm_set, chosen, 1 / len(arm_set),
                                    reward if good else 1.0 - reward))
    policy.learn(events)
    return policy.save()


def _publish(registry: PolicyRegistry, model: bytes, aliases=()) -> str:
    campaign = default_campaign()
    return registry.publish(PolicyArtifact("default", "vw", model, campaign_policy_toml(campaign, {}),
                                           Lineage(None, None, None, 3000, "test")), aliases=aliases)


@pytest.mark.slow
def test_promote_is_gated_by_offline_estimate_and_rollback_undoes_it(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data_dir))
    served = start_server(UNIFORM_LOGGER, data_dir=data_dir)  # a uniform logger: full support for OPE
    rng = np.random.default_rng(11)
    for _ in range(30):
        users = [(f"u{rng.integers(500)}", sorted(BEST)[rng.integers(4)]) for _ in range(50)]
        decisions = served.stub.DecideBatch(pb.DecideBatchRequest(requests=[
            make_request(user=u, context={"segment": s}, offers=OFFERS, formats=FORMATS, slots=SLOTS)
            for u, s in users]), timeout=30).decisions
        for (user, segment), d in zip(users, decisions):
            p = response_probability(segment, (d.offer_id, d.format, d.time_slot))
            served.stub.Reward(pb.RewardRequest(event_id=d.event_id, value=float(rng.random() < p)), timeout=10)
    served.server.stop(grace=1)

    good = _publish(registry, _trained(good=True), aliases=(CHAMPION,))
    bad = _publish(registry, _trained(good=False))
    refused = run("promote", bad, "--data-dir", str(data_dir), "--why", "try the bad one", timeout=300)
    assert refused.returncode == 1, refused.stderr
    assert "not promoted" in refused.stderr and "does not beat" in refused.stderr
    assert registry.resolve("default", CHAMPION) == good

    forced = run("promote", bad, "--data-dir", str(data_dir), "--force", "--why", "override", timeout=300)
    assert forced.returncode == 0, forced.stderr
    assert registry.resolve("default", CHAMPION) == bad

    back = run("rollback", "--data-dir", str(data_dir), "--why", "it was bad", timeout=300)
    assert back.returncode == 0, back.stderr
    assert registry.resolve("default", CHAMPION) == good

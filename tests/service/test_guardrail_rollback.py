"""The rollback guardrail wired, through a real server, a real MLflow store and real VW, in a simulated world
with known response rates: a clearly degraded champion is rolled back (alias move, tags and metric in
MLflow, servers follow), an equally good one is left alone over a long run, across its checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from policies.factory import make_policy
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from policy_registry import CHAMPION, Lineage, PolicyArtifact, PolicyRegistry
from service.config import parse_config
from service.config_toml import campaign_policy_toml
from service.guardrail_watch import GuardrailWatch
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store
from tests.waiting import wait_for

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"}), ("o3", {"category": "tech"})]
RESPONSE = {"o1": 0.6, "o2": 0.3, "o3": 0.05}  # the world: known response rate of each offer
MIN_REWARDS = 100
TRAIN_EVENTS = 3000  # enough that online learning takes a while to undo a bad lineage

CONFIG = """
[learning]
registry_poll_seconds = 0.2
checkpoint_every_events = CHECKPOINT_EVERY
checkpoint_every_seconds = 3600

[guardrail]
enabled = true
margin = 0.05
alpha = 0.05
min_rewards = MIN_REWARDS
check_every_seconds = 0.5

[campaigns.default]
formats = ["sms"]
time_slots = ["morning"]
reward_window_seconds = 1.0
reward_windows = { sms = 1.0 }
offers = [{ id = "o1", features = { category = "travel" } },
          { id = "o2", features = { category = "food" } },
          { id = "o3", features = { category = "tech" } }]

[campaigns.default.policy_params]   # an exploration floor of 0.3 / 3 per arm: the IPW weights stay small
exploration = "epsilon"
epsilon = 0.3
learning_rate = 0.05                # online learning undoes a bad lineage slowly: it stays degraded a while
"""


def _config(checkpoint_every: int) -> str:
    return CONFIG.replace("CHECKPOINT_EVERY", str(checkpoint_every)).replace("MIN_REWARDS", str(MIN_REWARDS))


def _publish(registry: PolicyRegistry, config_text: str, *, favour: str, seed: int, aliases=()) -> str:
    """A VW policy trained on uniformly logged events where only ``favour`` answers, as a new lineage."""
    campaign = parse_config(config_text).campaigns["default"]
    policy = make_policy("vw", **campaign.policy_params)
    arm_set = ArmSet.product([Offer(o, f) for o, f in OFFERS], ["sms"], ["morning"])
    rng = np.random.default_rng(seed)
    events = [LearningEvent(DecisionContext("k", {"segment": "young"}), arm_set, int(chosen), 1 / len(arm_set),
                            float(arm_set.arms[int(chosen)].offer_id == favour))
              for chosen in rng.integers(0, len(arm_set), TRAIN_EVENTS)]
    policy.learn(events)
    artifact = PolicyArtifact(campaign="default", policy_name="vw", model=policy.save(),
                              config_toml=campaign_policy_toml(campaign, policy.params),
                              lineage=Lineage(None, None, None, len(events), "test"), metrics={})
    return registry.publish(artifact, aliases=aliases)


def _drive(served, rng, n: int, start: int = 0) -> list[str]:
    """``n`` customers decided and answered as the world says (no reward sent: the default 0 at window close)."""
    versions = []
    for i in range(start, start + n):
        decision = served.stub.Decide(make_request(user=f"c{i}", offers=OFFERS, formats=["sms"], slots=["morning"]),
                                      timeout=10)
        versions.append(decision.policy_version)
        if rng.random() < RESPONSE[decision.offer_id]:
            served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    return versions


def _served_version(served) -> str:
    return served.stub.Decide(make_request(user="probe", offers=OFFERS, formats=["sms"], slots=["morning"]),
                              timeout=10).policy_version


def _setup(start_server, tmp_path: Path, template: Path, checkpoint_every: int):
    data_dir = tmp_path / "data"
    text = _config(checkpoint_every)
    registry = PolicyRegistry(copy_store(template, data_dir))
    good = _publish(registry, text, favour="o1", seed=1, aliases=(CHAMPION,))
    served = start_server(text, data_dir=data_dir, start_registry=True)
    wait_for(lambda: _served_version(served) == good, what="the first champion served")
    operator = PolicyRegistry(registry.config, alias_ledger=served.engine.log)  # as `offerbandit promote` does
    return served, operator, good, text


def test_a_clearly_degraded_champion_is_rolled_back_within_a_bounded_number_of_rewards(
        start_server, tmp_path, mlflow_template_store):
    served, registry, good, text = _setup(start_server, tmp_path, mlflow_template_store, 100_000)
    bad = _publish(registry, text, favour="o3", seed=2)  # prefers the worst offer of the world
    assert registry.promote("default", bad, gate=None, force=True, who="test", why="degraded on purpose").promoted
    wait_for(lambda: _served_version(served) == bad, what="the degraded champion served")
    guardrail = served.server.registry.guardrail
    rng = np.random.default_rng(3)
    served_by_bad = 0
    for batch in range(15):  # at most 1500 decisions: it must trip long before
        served_by_bad += sum(v == bad for v in _drive(served, rng, 100, start=batch * 100))
        if registry.resolve("default", CHAMPION) == good:
            break
    status = wait_for(lambda: guardrail.last_rollback("default"), timeout=30, what="the guardrail's rollback")
    assert registry.resolve("default", CHAMPION) == good
    assert status is not None and status.rolled_back and status.judged == bad and status.against == good
    verdict = status.verdict
    assert MIN_REWARDS <= verdict.rewards <= 800, verdict  # held back by min_rewards, then soon
    assert verdict.upper_bound < -0.05 and verdict.estimate < -0.1  # the gap at first: 0.13 - 0.515
    assert served_by_bad >= verdict.rewards

    # servers follow, as for any rollback
    wait_for(lambda: _served_version(served) == good, what="the server to follow the rollback")
    # the alias move, its tags and the metric, in the log and in MLflow
    move = served.engine.log.alias_moves("default", CHAMPION, ("rollback",))[0]
    assert (move.kind, move.who, move.from_version, move.to_version) == ("rollback", "guardrail", bad, good)
    assert "IPW difference" in move.why and "e-value" in move.why
    client = registry._store.client()
    good_tags = client.get_model_version("offerbandit-default", good).tags
    assert good_tags["champion.set_by"] == "guardrail" and good_tags["champion.action"] == "guardrail_rollback"
    bad_version = client.get_model_version("offerbandit-default", bad)
    assert bad_version.tags["guardrail.verdict"] == "rolled_back" and bad_version.tags["guardrail.rolled_back_to"] == good
    metrics = client.get_run(bad_version.run_id).data.metrics
    assert metrics["guardrail_rollback"] == 1.0
    assert metrics["guardrail_upper_bound"] == verdict.upper_bound and metrics["guardrail_rewards"] == verdict.rewards
    audit = client.search_runs([client.get_experiment_by_name("offerbandit").experiment_id],
                               filter_string="tags.who = 'guardrail'")
    assert len(audit) == 1 and audit[0].data.metrics["guardrail_rollback"] == 1.0

    # the rollback is not judged, and an operator's rollback would undo it (it counts as the last move)
    guardrail.check_once()
    assert guardrail.status("default") is None
    assert registry.rollback_target("default") == bad


@pytest.mark.slow
def test_an_equally_good_champion_is_left_alone_over_a_long_run_across_its_checkpoints(
        start_server, tmp_path, mlflow_template_store):
    served, registry, good, text = _setup(start_server, tmp_path, mlflow_template_store, 300)
    same = _publish(registry, text, favour="o1", seed=4)  # another lineage, as good as the champion
    assert registry.promote("default", same, gate=None, force=True, who="test", why="retrained").promoted
    wait_for(lambda: _served_version(served) == same, what="the new champion served")
    guardrail = served.server.registry.guardrail
    versions = _drive(served, np.random.default_rng(5), 1500)
    wait_for(lambda: (s := guardrail.status("default")) is not None and s.verdict.rewards >= 1450, timeout=30,
             what="the guardrail to judge the run")
    status = guardrail.status("default")
    assert not status.rolled_back and not status.verdict.tripped and status.against == good
    assert len(set(versions)) > 1  # the lineage moved on through checkpoints, still judged as one
    lineage = registry.lineage_versions("default", same)
    assert set(versions) <= lineage and registry.resolve("default", CHAMPION) in lineage
    assert status.verdict.upper_bound > -0.05
    assert not served.engine.log.alias_moves("default", CHAMPION, ("rollback",))

    # a restarted process rebuilds the same judgement from the log and the registry alone
    rebuilt = GuardrailWatch(served.engine, served.server.registry.registry, guardrail.config)
    rebuilt.check_once()
    again = rebuilt.status("default").verdict
    assert again.rewards >= status.verdict.rewards
    assert again.estimate == pytest.approx(status.verdict.estimate, abs=0.02)


def test_only_the_process_that_publishes_runs_the_guardrail(start_server, tmp_path, monkeypatch):
    from dataclasses import replace

    from decision_log import open_log
    from service.bootstrap import build_learner

    enabled = parse_config("[guardrail]\nenabled = true\n")
    url = f"sqlite:///{tmp_path / 'shared' / 'decisions.db'}"
    (tmp_path / "shared").mkdir()
    open_log(url, writable=True).close()
    learner = build_learner(replace(enabled, log=replace(enabled.log, url=url)), tmp_path / "learner",
                            may_publish=lambda: True)
    try:
        assert learner.registry.guardrail is not None  # `offerbandit learn` judges
    finally:
        learner.log.close()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    replica = start_server('[guardrail]\nenabled = true\n[learning]\nrole = "decider"\n', start_registry=True)
    assert replica.server.registry is not None and replica.server.registry.guardrail is None  # never a replica
    assert start_server(start_registry=True).server.registry.guardrail is None  # off by default

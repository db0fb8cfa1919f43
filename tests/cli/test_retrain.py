"""``offerbandit retrain --from-log`` (issue 18, "What the model keeps"): after an erasure, a version rebuilt
from the remaining log is exactly a fresh policy trained on the other customers' learned events in learn
order — nothing of the erased customer — published as its own lineage with the last learn_seq it includes,
and with ``--promote`` followed by the running server."""
from __future__ import annotations

import json
import subprocess

from decision_log import open_log
from offers.v1 import decision_pb2 as pb
from policies.factory import make_policy
from policy_registry import CHAMPION, PolicyRegistry
from service.config import parse_config
from service.keys import ServerKeys
from tests.conftest import OFFERBANDIT, make_request
from tests.fixtures_mlflow import copy_store
from tests.waiting import wait_for

KEY = "retrain-test-key-0123456789"
CONFIG = f"""
[privacy]
user_hash_key = "{KEY}"

[learning]
registry_poll_seconds = 0.2
checkpoint_every_seconds = 3600
"""
LIKES = {"alice": "o1", "bob": "o3"}
EACH = 25


def _cli(config_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([OFFERBANDIT, *args, "--config", str(config_path)], capture_output=True, text=True,
                          timeout=180)


def _fresh_model(events) -> bytes:
    settings = parse_config(CONFIG).campaigns["default"]
    policy = make_policy(settings.policy, **settings.policy_params)
    policy.learn(list(events))
    return policy.save()


def test_retrain_after_an_erasure_learns_only_what_the_log_still_holds(start_server, tmp_path,
                                                                        mlflow_template_store):
    data = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data))
    config_path = tmp_path / "cli.toml"
    config_path.write_text(CONFIG)
    served = start_server(CONFIG, data_dir=data, start_registry=True)
    for i in range(EACH):
        for user, liked in LIKES.items():
            decision = served.stub.Decide(make_request(user=user, event_id=f"{user}-{i}"), timeout=10)
            value = 1.0 if decision.offer_id == liked else 0.0
            assert served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value), timeout=10).accepted
    with open_log(data) as log:
        wait_for(lambda: log.max_learn_seq("default") == 2 * EACH, what="every rewarded event learned")
        learned = list(log.learned_events_after(parse_config(CONFIG).reward_defaults(), "default", 0))
    bob = ServerKeys.from_secret(KEY.encode()).user_key("bob")
    bobs = [item for item in learned if item.event.context.user_key == bob]
    assert len(bobs) == EACH and len(learned) == 2 * EACH

    erased = _cli(config_path, "erase", "--user-id", "alice", "--data-dir", str(data))
    assert erased.returncode == 0, erased.stderr
    run = _cli(config_path, "retrain", "--from-log", "--promote", "--json", "--data-dir", str(data),
               "--why", "alice erased")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["events"] == EACH and result["learn_seq"] == max(item.learn_seq for item in bobs)
    assert result["promoted"] is True

    version = result["version"]
    loaded = registry.load("default", version)
    assert loaded.model == _fresh_model(item.event for item in bobs)  # bit for bit: bob's events, learn order
    assert loaded.model != _fresh_model(item.event for item in learned)  # alice's events would change it
    assert loaded.lineage.parent_version is None and loaded.lineage.learn_seq == result["learn_seq"]
    assert registry.resolve("default", CHAMPION) == version
    wait_for(lambda: served.stub.Decide(make_request(user="carol"), timeout=10).policy_version == version,
             what="the server to follow the retrained champion")


def test_retrain_refuses_without_from_log_and_names_an_unknown_campaign(tmp_path):
    config_path = tmp_path / "cli.toml"
    config_path.write_text(CONFIG)
    bare = _cli(config_path, "retrain", "--data-dir", str(tmp_path / "data"))
    assert bare.returncode == 2 and "--from-log" in bare.stderr
    unknown = _cli(config_path, "retrain", "--from-log", "--campaign", "nope", "--data-dir", str(tmp_path / "data"))
    assert unknown.returncode == 2 and "'nope'" in unknown.stderr

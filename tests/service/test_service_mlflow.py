"""The server and a real local MLflow store: champion serving, hot swap, checkpoints, rollback,
shadow scoring of the challenger, corrupt artefacts, and MLflow kept off the request path."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from offers.v1 import decision_pb2 as pb
from policies.factory import make_policy
from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from service.config import default_campaign
from decision_log import open_log
from policy_registry import CHALLENGER, CHAMPION, Lineage, PolicyArtifact, PolicyRegistry
from service.config_toml import campaign_policy_toml
from tests.conftest import OFFERS, make_request
from tests.waiting import wait_for
from tests.fixtures_mlflow import copy_store

FAST = """
[learning]
registry_poll_seconds = 0.2
checkpoint_every_events = 40
checkpoint_every_seconds = 3600
"""


def _publish(registry: PolicyRegistry, *, favour: str, aliases=(CHAMPION,), parent=None) -> str:
    """A VW policy that learned to like offer ``favour``, published as a new lineage."""
    campaign = default_campaign()
    policy = make_policy("vw", **campaign.policy_params)
    offers = [Offer(o, f) for o, f in OFFERS]
    arm_set = ArmSet.product(offers, ["sms", "email"], ["morning", "evening"])
    events = []
    for i in range(200):
        chosen = i % len(arm_set)
        reward = 1.0 if arm_set.arms[chosen].offer_id == favour else 0.0
        events.append(LearningEvent(DecisionContext("k", {"segment": "young"}), arm_set, chosen,
                                    1 / len(arm_set), reward))
    policy.learn(events)
    artifact = PolicyArtifact(campaign="default", policy_name="vw", model=policy.save(),
                              config_toml=campaign_policy_toml(campaign, policy.params),
                              lineage=Lineage(parent, None, None, 200, "test"), metrics={"train_events": 200.0})
    return registry.publish(artifact, aliases=aliases)


def _registry_for(data_dir: Path, template: Path) -> PolicyRegistry:
    return PolicyRegistry(copy_store(template, data_dir))


def _operator(registry: PolicyRegistry, data_dir: Path):
    """The registry as an operator's CLI opens it: the server's log as its alias ledger, so its moves are
    recorded there and the server follows them within ``registry_poll_seconds`` (without a ledger a move
    is like one made in the MLflow UI: followed within ``registry_full_poll_seconds``, 60 s here)."""
    return PolicyRegistry(registry.config, alias_ledger=open_log(data_dir))


def _version(stub) -> str:
    return stub.Decide(make_request(), timeout=10).policy_version


def test_champion_is_served_then_checkpoints_continue_its_lineage(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = _registry_for(data_dir, mlflow_template_store)
    first = _publish(registry, favour="o2")
    served = start_server(FAST, data_dir=data_dir, start_registry=True)
    wait_for(lambda: _version(served.stub) == first, what="champion to be served")
    for i in range(45):
        decision = served.stub.Decide(make_request(user=f"u{i}"), timeout=10)
        assert decision.policy_version in (first, str(int(first) + 1))
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    checkpoint = wait_for(lambda: (v := _version(served.stub)) != first and v, what="a checkpoint")
    assert registry.resolve("default", CHAMPION) == checkpoint
    lineage = registry.load("default", checkpoint).lineage
    assert lineage.parent_version == first and lineage.event_count >= 40
    assert lineage.log_window_end is not None


def test_alias_change_mid_traffic_swaps_without_failed_calls(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = _registry_for(data_dir, mlflow_template_store)
    old = _publish(registry, favour="o1")
    served = start_server(FAST, data_dir=data_dir, start_registry=True)
    wait_for(lambda: _version(served.stub) == old, what="old champion")
    seen: list[str] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                seen.append(served.stub.Decide(make_request(), timeout=10).policy_version)
            except grpc.RpcError as exc:
                errors.append(exc)

    thread = threading.Thread(target=traffic)
    thread.start()
    time.sleep(0.3)
    new = _publish(registry, favour="o3", aliases=())
    operator = _operator(registry, data_dir)
    result = operator.promote("default", new, gate=None, force=True, who="test", why="new lineage")
    assert result.promoted
    wait_for(lambda: seen and seen[-1] == new, what="new champion in traffic")
    time.sleep(0.2)
    stop.set()
    thread.join(10)
    assert not errors
    switch = seen.index(new)
    assert set(seen[:switch]) == {old} and set(seen[switch:]) == {new}, "versions must change once, in order"
    probabilities: dict[str, float] = {}
    ranking = served.stub.Decide(make_request(), timeout=10).ranking
    for arm in ranking:
        probabilities[arm.offer_id] = probabilities.get(arm.offer_id, 0.0) + arm.probability
    assert max(probabilities, key=probabilities.get) == "o3"  # the new lineage's preference serves

    operator.rollback("default", who="test", why="bad new version")
    wait_for(lambda: _version(served.stub) == old, what="rollback to the old champion")


def test_corrupt_artifact_keeps_the_last_good_version(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = _registry_for(data_dir, mlflow_template_store)
    good = _publish(registry, favour="o1")
    served = start_server(FAST, data_dir=data_dir, start_registry=True)
    wait_for(lambda: _version(served.stub) == good, what="good champion")
    bad = _publish(registry, favour="o2", aliases=())
    for model_file in (data_dir / "mlflow-artifacts").rglob("model.bin"):
        if registry.load("default", good).model != model_file.read_bytes():
            model_file.write_bytes(b"not a model")
    _operator(registry, data_dir).set_alias("default", CHAMPION, bad, who="test", why="corrupt on purpose")
    health = health_pb2_grpc.HealthStub(served.channel)
    wait_for(lambda: health.Check(health_pb2.HealthCheckRequest(service="offerbandit.registry"), timeout=5).status
              == health_pb2.HealthCheckResponse.NOT_SERVING, what="registry health to report the problem")
    assert _version(served.stub) == good
    overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert overall.status == health_pb2.HealthCheckResponse.SERVING  # still serving decisions


def test_the_server_asks_mlflow_only_when_the_log_records_a_move(start_server, tmp_path, mlflow_template_store):
    """Between full polls (60 s by default) the server's watcher reads the log's alias-move mark, not
    MLflow: a move made behind the log's back is not followed within a dozen registry polls, a move
    recorded by an operator's registry is followed at the next one."""
    data_dir = tmp_path / "data"
    registry = _registry_for(data_dir, mlflow_template_store)
    first = _publish(registry, favour="o1")
    served = start_server(FAST, data_dir=data_dir, start_registry=True)
    wait_for(lambda: _version(served.stub) == first, what="first champion")
    hidden = _publish(registry, favour="o2")  # champion moved in MLflow only, as in the MLflow UI
    time.sleep(2.5)  # a dozen polls of 0.2 s
    assert _version(served.stub) == first
    assert served.server.registry.watcher.status().healthy
    _operator(registry, data_dir).set_alias("default", CHAMPION, hidden, who="test", why="recorded move")
    wait_for(lambda: _version(served.stub) == hidden, timeout=10, what="the recorded move to be followed")


def test_challenger_is_shadow_scored_on_live_traffic(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = _registry_for(data_dir, mlflow_template_store)
    champion = _publish(registry, favour="o1")
    challenger = _publish(registry, favour="o3", aliases=(CHALLENGER,))
    served = start_server(FAST, data_dir=data_dir, start_registry=True)
    wait_for(lambda: served.engine.campaigns["default"].challenger is not None, what="challenger loaded")
    decisions = [served.stub.Decide(make_request(user=f"s{i}"), timeout=10) for i in range(20)]
    assert {d.policy_version for d in decisions} == {champion}
    assert served.server.shadow.wait_idle(30)
    con = sqlite3.connect(data_dir / "decisions.db")
    rows = con.execute("SELECT event_id, policy_version, chosen_probability FROM shadow_scores").fetchall()
    con.close()
    assert {r[0] for r in rows} == {d.event_id for d in decisions}
    assert {r[1] for r in rows} == {challenger}
    assert all(0 < r[2] <= 1 for r in rows)


def test_unreachable_mlflow_never_blocks_decisions(start_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////proc/offerbandit-no-such/mlflow.db")
    served = start_server(FAST, start_registry=True)
    for i in range(20):
        decision = served.stub.Decide(make_request(user=f"x{i}"), timeout=10)
        assert decision.policy_version == "bootstrap"
    health = health_pb2_grpc.HealthStub(served.channel)
    wait_for(lambda: health.Check(health_pb2.HealthCheckRequest(service="offerbandit.registry"), timeout=5).status
              == health_pb2.HealthCheckResponse.NOT_SERVING, what="registry problem reported")


def test_mlflow_is_imported_only_off_the_request_path(tmp_path):
    script = textwrap.dedent(f"""
        import sys, threading, importlib.abc
        first = []
        class Spy(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "mlflow" and not first:
                    first.append(threading.current_thread().name)
                return None
        sys.meta_path.insert(0, Spy())
        import grpc
        from pathlib import Path
        from service.config import parse_config
        from service.server import DecisionServer
        from offers.v1 import decision_pb2_grpc as g
        from tests.conftest import make_request
        server = DecisionServer(parse_config("[learning]\\nregistry_poll_seconds = 0.2\\n"), Path({str(tmp_path)!r}),
                                port=0, start_registry=True)
        server.start()
        stub = g.DecisionServiceStub(grpc.insecure_channel(f"127.0.0.1:{{server.port}}"))
        for i in range(10):
            stub.Decide(make_request(user=str(i)), timeout=10)
        server.registry.watcher.wait_for_first_poll(60)
        server.stop(grace=1)
        print("FIRST_IMPORT_THREAD", first)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("FIRST_IMPORT_THREAD"))
    assert "rpc" not in line and "MainThread" not in line and "[]" not in line, line

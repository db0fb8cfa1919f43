"""Registry races through a real server and a real MLflow store (issue 14, item 2): the champion serves
from the first decision after a start, also while MLflow is unreachable (its cached copy; never an
untrained bootstrap published over it); an operator's promote between polls survives the next
checkpoint; rollback works across checkpoints; promote/rollback read the server's --config."""
from __future__ import annotations

import shutil

import pytest

from decision_log import open_log
from offers.v1 import decision_pb2 as pb
from policy_registry import CHAMPION, PolicyRegistry, RegistryConfig
from tests.cli.test_cli import run
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store
from tests.service.test_service_mlflow import _publish, _version
from tests.waiting import wait_for

CHECKPOINTS = """
[learning]
registry_poll_seconds = 0.2
checkpoint_every_events = 20
checkpoint_every_seconds = 3600
"""
#: The watcher looks once at start and then not for an hour: what happens between two polls.
ONE_POLL = CHECKPOINTS.replace("registry_poll_seconds = 0.2", "registry_poll_seconds = 3600")


def _learn(stub, n: int, prefix: str) -> list[str]:
    """``n`` decisions, each rewarded at once (learned within the second); the versions they named."""
    versions = []
    for i in range(n):
        decision = stub.Decide(make_request(user=f"{prefix}{i}"), timeout=10)
        versions.append(decision.policy_version)
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    return versions


def _lineage(registry: PolicyRegistry, version: str):
    return registry.load("default", version).lineage


def _all_versions(registry: PolicyRegistry) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry.config.tracking_uri, registry_uri=registry.config.tracking_uri)
    return sorted((str(v.version) for v in client.search_model_versions("name = 'offerbandit-default'")), key=int)


def test_restart_with_mlflow_on_serves_the_champion_from_the_first_decision(start_server, tmp_path,
                                                                           mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data_dir))
    champion = _publish(registry, favour="o2")
    served = start_server(CHECKPOINTS, data_dir=data_dir, start_registry=True)
    assert _version(served.stub) == champion  # no poll to wait for: loaded before "listening"
    served.server.stop(grace=1)
    assert (data_dir / "models" / "default.model").is_file()
    assert oct((data_dir / "models" / "default.model").stat().st_mode & 0o777) == "0o600"
    again = start_server(CHECKPOINTS, data_dir=data_dir, start_registry=True)
    assert _version(again.stub) == champion


@pytest.mark.parametrize("cached", [True, False], ids=["cached", "no-cache"])
def test_mlflow_down_at_start_never_publishes_bootstrap_over_the_champion(start_server, tmp_path,
                                                                         mlflow_template_store, monkeypatch, cached):
    store = tmp_path / "mlflow"
    store.mkdir()
    shutil.copyfile(mlflow_template_store, store / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(RegistryConfig.for_data_dir(data_dir))
    v1 = _publish(registry, favour="o2")
    first = start_server(CHECKPOINTS, data_dir=data_dir, start_registry=True)
    assert _version(first.stub) == v1
    _learn(first.stub, 25, "a")
    trained = wait_for(lambda: (v := registry.resolve("default", CHAMPION)) != v1 and v, what="a checkpoint")
    first.server.stop(grace=1)
    assert _lineage(registry, trained).parent_version == v1
    before = _all_versions(registry)
    if not cached:
        shutil.rmtree(data_dir / "models")

    store.rename(tmp_path / "mlflow-away")  # MLflow unreachable: its directory is a file now
    store.write_text("not a directory")
    second = start_server(CHECKPOINTS, data_dir=data_dir, start_registry=True)
    served_while_down = set(_learn(second.stub, 45, "b"))  # two checkpoints due while MLflow is down
    assert served_while_down == ({trained} if cached else {"bootstrap"})
    wait_for(lambda: second.server.learner.wait_idle(1), what="learning")

    store.unlink()
    (tmp_path / "mlflow-away").rename(store)  # MLflow is back
    if cached:  # the cached champion's lineage goes on: the next checkpoint descends from it
        newest = wait_for(lambda: (v := registry.resolve("default", CHAMPION)) != trained and v, timeout=60,
                           what="a checkpoint after MLflow came back")
        assert _lineage(registry, newest).parent_version == trained
        assert _lineage(registry, newest).event_count >= 45
    else:  # the untrained bootstrap model is never published; the server follows the champion
        wait_for(lambda: _version(second.stub) == trained, timeout=60, what="the champion to be followed")
        newer = _all_versions(registry)[len(before):]
        assert registry.resolve("default", CHAMPION) in (trained, *newer)
        for version in newer:  # only checkpoints of the followed champion (a busy machine reaches the next one)
            ancestor = _lineage(registry, version).parent_version
            while ancestor in newer:
                ancestor = _lineage(registry, ancestor).parent_version
            assert ancestor == trained, f"version {version} does not descend from the champion {trained}"
    for version in _all_versions(registry)[1:]:
        assert _lineage(registry, version).parent_version is not None, "only v1 may start a lineage"


def test_operator_promote_between_polls_survives_the_next_checkpoint(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data_dir))
    v1 = _publish(registry, favour="o1")
    served = start_server(ONE_POLL, data_dir=data_dir, start_registry=True)
    assert _version(served.stub) == v1
    other = _publish(registry, favour="o3", aliases=())
    operator_log = open_log(data_dir)  # as the CLI does: the server's log, read-only, its write lock shared
    operator = PolicyRegistry(registry.config, alias_ledger=operator_log)
    assert operator.promote("default", other, gate=None, force=True, who="ops", why="new lineage").promoted
    assert _version(served.stub) == v1  # the server has not polled since

    _learn(served.stub, 25, "a")  # a checkpoint of the v1 lineage becomes due
    wait_for(lambda: _version(served.stub) == other, what="the server to follow the operator's champion")
    assert registry.resolve("default", CHAMPION) == other
    unaliased = [v for v in _all_versions(registry) if v not in (v1, other)]
    assert len(unaliased) == 1 and _lineage(registry, unaliased[0]).parent_version == v1
    assert [(m.kind, m.from_version, m.to_version) for m in operator_log.alias_moves("default", CHAMPION)] == [
        ("promote", v1, other)]

    _learn(served.stub, 25, "b")  # now the checkpoint descends from the champion: it moves the alias
    newest = wait_for(lambda: (v := registry.resolve("default", CHAMPION)) != other and v, what="a checkpoint")
    assert _lineage(registry, newest).parent_version == other
    assert [m.kind for m in operator_log.alias_moves("default", CHAMPION)] == ["checkpoint", "promote"]
    operator_log.close()


CUSTOM_NAMES = """
[mlflow]
experiment_name = "offers-prod"
model_name_template = "ob-{campaign}"
"""


@pytest.mark.slow
def test_rollback_across_checkpoints_with_the_servers_config(start_server, tmp_path, mlflow_template_store):
    data_dir = tmp_path / "data"
    config_file = tmp_path / "offerbandit.toml"
    config_file.write_text(CHECKPOINTS + CUSTOM_NAMES)
    copy_store(mlflow_template_store, data_dir)
    registry = PolicyRegistry(RegistryConfig.for_data_dir(data_dir, experiment_name="offers-prod",
                                                          model_name_template="ob-{campaign}"))
    v1 = _publish(registry, favour="o1")
    served = start_server(CHECKPOINTS + CUSTOM_NAMES, data_dir=data_dir, start_registry=True)
    assert _version(served.stub) == v1
    _learn(served.stub, 25, "a")
    v1_head = wait_for(lambda: (v := registry.resolve("default", CHAMPION)) != v1 and v, what="a checkpoint")
    other = _publish(registry, favour="o3", aliases=())
    promoted = run("promote", other, "--force", "--data-dir", str(data_dir), "--config", str(config_file),
                   timeout=300)
    assert promoted.returncode == 0, promoted.stderr
    wait_for(lambda: _version(served.stub) == other, what="the promoted champion")
    _learn(served.stub, 25, "b")
    other_head = wait_for(lambda: (v := registry.resolve("default", CHAMPION)) != other and v,
                           what="a checkpoint of the promoted lineage")

    back = run("rollback", "--data-dir", str(data_dir), "--config", str(config_file), timeout=300)
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip().endswith(f"to v{v1_head})")  # the newest of the lineage the promote replaced
    # the server follows it, catches it up on the 30 events learned after it (exactly once per lineage),
    # and may checkpoint that at once: the champion is v1_head or a checkpoint of it
    wait_for(lambda: _version(served.stub) == registry.resolve("default", CHAMPION), what="the server to follow")
    champion = registry.resolve("default", CHAMPION)
    assert champion == v1_head or _lineage(registry, champion).parent_version == v1_head
    undo = run("rollback", "--data-dir", str(data_dir), "--config", str(config_file), timeout=300)
    assert undo.returncode == 0, undo.stderr
    assert registry.resolve("default", CHAMPION) == other_head
    with open_log(data_dir) as log:
        moves = log.alias_moves("default", CHAMPION)
    assert [(m.kind, m.from_version) for m in moves if m.kind != "checkpoint"][1:] == [("rollback", other_head),
                                                                                       ("promote", v1_head)]

"""Which log a process uses and which role it plays there (service.roles), and a replica in-process:
it decides and logs, never learns, numbers or publishes."""
from __future__ import annotations

import time

import pytest

from offers.v1 import decision_pb2 as pb
from offerbandit.errors import InvalidInput
from policy_registry import CHAMPION, PolicyRegistry
from service.config import ServiceConfig, parse_config
from service.roles import is_shared, log_url, masked, serve_role, with_log_url
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store


def test_the_log_url_defaults_to_the_data_dirs_sqlite_file(tmp_path):
    assert log_url(ServiceConfig(), tmp_path) == f"sqlite:///{(tmp_path / 'decisions.db').resolve()}"
    other = f"sqlite:///{tmp_path / 'x.db'}"
    assert log_url(with_log_url(ServiceConfig(), other), tmp_path) == other
    assert log_url(parse_config(f'[log]\nurl = "{other}"\n'), tmp_path) == other
    assert with_log_url(ServiceConfig(), None) == ServiceConfig()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///", "decisions.db"])
def test_an_unsupported_log_url_names_log_url(url, tmp_path):
    with pytest.raises(InvalidInput) as caught:
        log_url(with_log_url(ServiceConfig(), url), tmp_path)
    assert caught.value.field == "log-url"


def test_printed_urls_mask_the_password():
    assert masked("postgresql://app:s3cret@db:5432/log") == "postgresql://app:***@db:5432/log"
    assert masked("cannot reach 'postgres://a:b@h/d' now") == "cannot reach 'postgres://a:***@h/d' now"
    assert masked("postgresql://app@db/log") == "postgresql://app@db/log"
    assert is_shared("postgresql://app@db/log") and is_shared("postgres://app@db/log")
    assert not is_shared("sqlite:///tmp/x.db")


def test_serve_learns_on_sqlite_and_is_a_replica_on_a_shared_log(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert serve_role(ServiceConfig(), "sqlite:///tmp/x.db").learns
    with pytest.raises(InvalidInput) as caught:
        serve_role(ServiceConfig(), "postgresql://app@db/log")
    assert caught.value.field == "MLFLOW_TRACKING_URI"
    decider = parse_config('[learning]\nrole = "decider"\n')
    with pytest.raises(InvalidInput):
        serve_role(decider, "sqlite:///tmp/x.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert serve_role(ServiceConfig(), "postgresql://app@db/log").name == "replica"
    assert serve_role(decider, "sqlite:///tmp/x.db").name == "replica"
    with pytest.raises(InvalidInput) as caught:
        serve_role(parse_config('[learning]\nrole = "decider"\n[mlflow]\nenabled = false\n'), "sqlite:///tmp/x.db")
    assert caught.value.field == "mlflow.enabled"


def test_role_and_log_keys_are_checked_and_checkpoints_default_by_topology():
    with pytest.raises(InvalidInput) as caught:
        parse_config('[learning]\nrole = "everything"\n')
    assert caught.value.field == "learning.role"
    with pytest.raises(InvalidInput) as caught:
        parse_config("[log]\nconnect_timeout_seconds = -1\n")
    assert caught.value.field == "log.connect_timeout_seconds"
    learning = ServiceConfig().learning
    assert (learning.checkpoint_seconds(False), learning.checkpoint_seconds(True)) == (600.0, 10.0)
    assert parse_config("[learning]\ncheckpoint_every_seconds = 42\n").learning.checkpoint_seconds(True) == 42.0


REPLICA = """
[learning]
role = "decider"
registry_poll_seconds = 0.2
checkpoint_every_events = 1
checkpoint_every_seconds = 0.2
"""


def test_a_replica_decides_and_logs_but_never_learns_numbers_or_publishes(start_server, tmp_path, monkeypatch,
                                                                          mlflow_template_store):
    store = copy_store(mlflow_template_store, tmp_path / "registry")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    served = start_server(REPLICA, start_registry=True)
    assert served.server.learner is None and served.server.role.name == "replica"
    assert not served.server.registry.publishes
    for n in range(20):
        decision = served.stub.Decide(make_request(user=f"u{n}"), timeout=10)
        assert served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10).accepted
    time.sleep(1.5)  # several checkpoint periods and registry polls
    log = served.engine.log
    assert log.count() == 20
    assert len(list(log.unlearned_final())) == 20, "final (rewarded), left for the learner"
    assert log.max_learn_seq() == 0, "only the learner numbers events"
    assert PolicyRegistry(store).resolve("default", CHAMPION) is None
    assert served.server.registry.checkpoint("default") is None  # not even when asked

"""``offerbandit learn`` and ``serve --log-url`` as a user runs them: real processes, a real SQLite log
shared by a decider ``serve`` (``[learning] role = "decider"``) and the learner, a real MLflow store shared
through ``MLFLOW_TRACKING_URI``, real VW.

Exactly once is counted two ways: in the log (every final event has one ``learn_seq``, and they are
1..N with no gap) and in the checkpoint lineage (the champion includes learn_seq N, and the events its
chain of checkpoints says it learned add up to N: an event learned twice, or skipped, after the
learner was SIGKILLed would make them differ).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import grpc
import pytest

from decision_log import RewardDefaults, open_log
from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc
from policy_registry import CHAMPION, PolicyRegistry
from tests.cli.learn_processes import topology  # noqa: F401 - the fixture
from tests.conftest import OFFERBANDIT, make_request, spawn_server
from tests.waiting import wait_for

KEY = "learner-test-key-0123456789"
CONFIG = f"""
[learning]
role = "decider"
poll_seconds = 3                 # the learner's sweeps: the lag gauge holds each sweep's backlog until the next
registry_poll_seconds = 0.2
checkpoint_every_events = 100000
checkpoint_every_seconds = 4     # time-driven only: the test kills the learner between two checkpoints

[mlflow]
start_timeout_seconds = 20

[privacy]
user_hash_key = "{KEY}"
"""


def _traffic(stub, numbers) -> None:
    for n in numbers:
        decision = stub.Decide(make_request(user=f"u{n % 17}", context={"segment": "young" if n % 2 else "old"}),
                               timeout=10)
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=float(n % 3 == 0)), timeout=10)


def _learned_in_log(url: str) -> tuple[list[int], set[int], int]:
    """(learn_seqs in order, the seqs they number, final events still without one)."""
    with open_log(url) as log:
        items = list(log.learned_events_after(RewardDefaults(), "default", 0))
        unlearned = sum(1 for _ in log.unlearned_final())
    return [item.learn_seq for item in items], {item.seq for item in items}, unlearned


def _chain_event_count(registry: PolicyRegistry, version: str) -> tuple[int, int]:
    """(events the chain of checkpoints ending at ``version`` says it learned, versions in the chain)."""
    total, versions = 0, 0
    current: str | None = version
    while current is not None:
        lineage = registry.load("default", current).lineage
        total += lineage.event_count
        versions += 1
        current = lineage.parent_version
    return total, versions


@pytest.mark.slow
def test_learn_resumes_after_a_sigkill_with_every_final_event_learned_exactly_once(topology):
    topology.config.write_text(CONFIG)
    replica = topology.serve()
    channel = grpc.insecure_channel(f"127.0.0.1:{replica.port}")
    stub = pb_grpc.DecisionServiceStub(channel)
    _traffic(stub, range(30))  # before any learner: a backlog of 30 final, unlearned events

    learner = topology.learn()
    assert f"learning from {topology.url}\n" in learner.output
    assert learner.scrape("offerbandit_learn_lag_events") == 30  # the first sweep saw the backlog...
    assert learner.scrape("offerbandit_learn_lag_seconds") > 0
    wait_for(lambda: learner.scrape("offerbandit_learn_lag_events") == 0, timeout=30, what="the backlog learned")
    status, health = learner.health()
    assert status == 200 and health["holds_lock"] and health["lag_events"] == 0 and health["learned"] == 30
    second = _run("learn", "--log-url", topology.url, "--data-dir", str(topology.tmp / "second"), "--config",
                  str(topology.config), env=topology.env)
    assert "another offerbandit learn" in _one_line_failure(second), "one learner per log"

    registry = topology.registry
    wait_for(lambda: registry.resolve("default", CHAMPION) is not None, timeout=60, what="a first checkpoint")
    _traffic(stub, range(30, 120))

    def champion_learn_seq() -> int:
        return registry.load("default", registry.resolve("default", CHAMPION)).lineage.learn_seq

    def learned_past_the_champion() -> bool:
        with open_log(topology.url) as log:
            return log.max_learn_seq() > champion_learn_seq()

    wait_for(learned_past_the_champion, timeout=60, what="events learned that no checkpoint includes yet")
    learner.stop(signal.SIGKILL)  # what it learned past the last checkpoint lives only in the log now
    assert learned_past_the_champion(), "the kill came between two checkpoints"
    _traffic(stub, range(120, 160))  # rewards keep making events final while no learner runs

    learner = topology.learn()
    _traffic(stub, range(160, 200))
    wait_for(lambda: _learned_in_log(topology.url)[0][-1:] == [200] and _learned_in_log(topology.url)[2] == 0,
             timeout=60, what="all 200 events learned")
    wait_for(lambda: champion_learn_seq() == 200, timeout=60, what="a checkpoint that includes learn_seq 200")
    champion = registry.resolve("default", CHAMPION)
    learn_seqs, seqs, unlearned = _learned_in_log(topology.url)
    assert learn_seqs == list(range(1, 201)) and len(seqs) == 200 and unlearned == 0
    total, versions = _chain_event_count(registry, champion)
    assert total == 200, "the checkpoints' chain learned each event exactly once"
    assert versions >= 2  # the first checkpoint (before the kill), one after the restart at least

    # the replica follows: it serves the champion the learner published
    wait_for(lambda: stub.Decide(make_request(user="late"), timeout=10).policy_version == champion, timeout=30,
             what="the replica serving the new champion")
    assert learner.stop() == 0
    assert "stopped: log flushed" in "".join(learner.output)
    channel.close()
    assert replica.stop() == 0


def test_serve_writes_the_log_named_by_log_url_and_not_in_the_data_dir(tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere' / 'log.db'}"
    (tmp_path / "elsewhere").mkdir()
    server = spawn_server(tmp_path / "data", "--log-url", url)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            pb_grpc.DecisionServiceStub(channel).Decide(make_request(), timeout=10)
    finally:
        assert server.stop() == 0
    with open_log(url) as log:
        assert log.count() == 1
    assert not (tmp_path / "data" / "decisions.db").exists()
    assert (tmp_path / "data" / "secret.key").exists()  # the data dir still holds the key


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([OFFERBANDIT, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _one_line_failure(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_replica_refuses_to_start_without_mlflow_tracking_uri(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[learning]\nrole = "decider"\n')
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run([OFFERBANDIT, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                             "--config", str(config)], capture_output=True, text=True, timeout=120, env=env)
    assert "MLFLOW_TRACKING_URI" in _one_line_failure(result)
    assert "listening on" not in result.stdout


def test_a_missing_or_unreachable_log_gives_one_line_and_a_non_zero_exit(tmp_path):
    missing = f"sqlite:///{tmp_path / 'none' / 'log.db'}"
    assert "log.db" in _one_line_failure(_run("learn", "--log-url", missing, "--data-dir", str(tmp_path / "l")))
    assert not (tmp_path / "none").exists()  # learn never creates a log
    _one_line_failure(_run("serve", "--port", "0", "--data-dir", str(tmp_path / "s"), "--log-url", missing))
    assert "log-url" in _one_line_failure(_run("serve", "--port", "0", "--data-dir", str(tmp_path / "s"),
                                               "--log-url", "mysql://u@h/db"))
    config = tmp_path / "c.toml"
    config.write_text("[log]\nconnect_timeout_seconds = 1\n")
    unreachable = "postgresql://u:s3cret-pw@127.0.0.1:1/none"
    for command in (["serve", "--port", "0"], ["learn"]):
        started = time.time()
        line = _one_line_failure(_run(*command, "--data-dir", str(tmp_path / "p"), "--config", str(config),
                                      "--log-url", unreachable, env={"MLFLOW_TRACKING_URI": "sqlite:///" + str(
                                          tmp_path / "m.db")}))
        assert "s3cret-pw" not in line  # printed URLs mask the password
        assert time.time() - started < 60

"""``offerbandit erase`` and ``offerbandit user-data`` against a running server, on the SQLite log and on
PostgreSQL (issue 18, "Must show"): the erasure runs while the server serves; rewards for erased events are
NOT_FOUND; nothing of the customer is left in any table or export; the server forgets the customer (caps,
idempotency) within the registry poll interval; another customer is untouched; an unknown customer exits 0;
user-data lists exactly what is held."""
from __future__ import annotations

import json
import subprocess
import uuid

import grpc
import pyarrow.parquet as pq
import pytest

from decision_log import open_log
from offers.v1 import decision_pb2 as pb
from service.keys import ServerKeys
from tests.conftest import OFFERBANDIT, make_request
from tests.waiting import wait_for

KEY = "erase-test-key-0123456789"
CONFIG = f"""
[privacy]
user_hash_key = "{KEY}"

[learning]
registry_poll_seconds = 0.2

[[campaigns.default.rules.caps]]
format = "*"
max_contacts = 1
window_s = 3600
"""


@pytest.fixture(params=["sqlite", "postgres"])
def place(request, tmp_path, monkeypatch):
    """(config text, CLI log arguments, log location) for a server on SQLite or on a PostgreSQL log."""
    data = tmp_path / "data"
    if request.param == "sqlite":
        return CONFIG, ["--data-dir", str(data)], data
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.invalid:5000")  # a replica; the registry stays off
    return CONFIG + f'\n[log]\nurl = "{url}"\n', ["--log-url", url, "--data-dir", str(data)], url


def _cli(tmp_path, config: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "cli.toml"
    path.write_text(config.split("\n[log]")[0])
    return subprocess.run([OFFERBANDIT, *args, "--config", str(path)], capture_output=True, text=True, timeout=120)


def _hash(user: str) -> str:
    return ServerKeys.from_secret(KEY.encode()).user_key(user)


def test_erase_while_the_server_runs(place, start_server, tmp_path):
    config, log_args, where = place
    served = start_server(config, data_dir=tmp_path / "data")
    stub = served.stub
    first = stub.Decide(make_request(user="alice", event_id="a1"), timeout=10)
    assert first.exploration != "no_contact"
    capped = stub.Decide(make_request(user="alice", event_id="a2"), timeout=10)
    assert capped.exploration == "no_contact", "the cap (one contact an hour) holds"
    bob = stub.Decide(make_request(user="bob", event_id="b1"), timeout=10)
    assert stub.Reward(pb.RewardRequest(event_id="a1", value=1.0), timeout=10).accepted
    assert stub.Reward(pb.RewardRequest(event_id="b1", value=1.0), timeout=10).accepted

    listed = _cli(tmp_path, config, "user-data", "--user-id", "alice", *log_args)
    assert listed.returncode == 0, listed.stderr
    held = json.loads(listed.stdout)
    assert [d["event_id"] for d in held["decisions"]] == ["a1", "a2"]
    assert [r["event_id"] for r in held["rewards"]] == ["a1"] and held["user_keys"] == [_hash("alice")]
    assert [c["event_id"] for c in held["contacts"]] == ["a1"]
    assert held["decisions"][0]["context"] == {"segment": "young"}
    assert "alice" not in listed.stdout, "the clear id is not held, so it is not listed"

    erased = _cli(tmp_path, config, "erase", "--user-id", "alice", "--json", *log_args)
    assert erased.returncode == 0, erased.stderr
    assert json.loads(erased.stdout) == {"decisions": 2, "rewards": 1, "shadow_scores": 0, "history_entries": 1}
    assert held["counts"] == json.loads(erased.stdout), "user-data listed exactly what erase deleted"

    with pytest.raises(grpc.RpcError) as missing:
        stub.Reward(pb.RewardRequest(event_id="a1", value=1.0), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    # within the poll interval the server forgets alice: her cap is lifted, her erased event id is free again
    wait_for(lambda: stub.Decide(make_request(user="alice", event_id=uuid.uuid4().hex), timeout=10).exploration
             != "no_contact", timeout=10)
    assert served.server.erasures.forgotten == 1
    with open_log(where) as log:
        assert log.find_decision("a2") is None
        again = stub.Decide(make_request(user="alice", event_id="a2"), timeout=10)
        assert log.find_decision("a2") is not None and again.event_id == "a2", "a new decision, logged anew"
        audit = [a for a in log.audit_after(0) if a.action == "erase"]
        assert len(audit) == 1 and audit[0].user_keys == (_hash("alice"),)
        assert "alice" not in audit[0].detail
    # bob untouched: his reward is a duplicate, his decision and reward are still held
    assert stub.Reward(pb.RewardRequest(event_id="b1", value=1.0), timeout=10).duplicate
    bob_held = json.loads(_cli(tmp_path, config, "user-data", "--user-id", "bob", *log_args).stdout)
    assert [d["event_id"] for d in bob_held["decisions"]] == [bob.event_id]

    out = tmp_path / "export"
    exported = _cli(tmp_path, config, "export", "--format", "parquet", "--out", str(out), *log_args)
    assert exported.returncode == 0, exported.stderr
    rows = pq.read_table(out).to_pylist()
    alice_rows = {r["event_id"] for r in rows if r["user_key"] == _hash("alice")}
    assert "a1" not in alice_rows and {r["event_id"] for r in rows} >= {"b1", "a2"}

    nobody = _cli(tmp_path, config, "erase", "--user-id", "nobody-at-all", *log_args)
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout.strip() == "erased: decisions 0, rewards 0, shadow_scores 0, history_entries 0"


def test_erase_refuses_a_missing_or_foreign_key(start_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OFFERBANDIT_USER_HASH_KEY", raising=False)
    served = start_server(CONFIG, data_dir=tmp_path / "data")
    served.stub.Decide(make_request(user="alice"), timeout=10)
    other = CONFIG.replace(KEY, "some-other-key-0123456789")
    refused = _cli(tmp_path, other, "erase", "--user-id", "alice", "--data-dir", str(tmp_path / "data"))
    assert refused.returncode != 0 and "not the one this decision log" in refused.stderr
    (tmp_path / "cli.toml").write_text("")
    missing = subprocess.run([OFFERBANDIT, "erase", "--user-id", "alice", "--data-dir", str(tmp_path / "data")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "no user-hash key" in missing.stderr
    assert not (tmp_path / "data" / "secret.key").exists(), "erase never creates a key"
    with open_log(tmp_path / "data") as log:
        assert log.user_data([_hash("alice")]).counts.decisions == 1, "nothing erased"

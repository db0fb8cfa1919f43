"""User-hash key rotation through real servers, on SQLite and PostgreSQL (issue 18): a server restarted with a
new key first and the old one after it registers the new key, hashes new decisions with it and still finds
the customer's rows under the old key — caps and history hold across the change; erase and user-data find
both; a process with a key the log never registered is refused at start."""
from __future__ import annotations

import json
import time

import pytest

from decision_log import open_log
from offerbandit.errors import InvalidInput
from service.keys import ServerKeys
from tests.conftest import make_request
from tests.service import test_erase_server
from tests.service.test_erase_server import _cli

place = test_erase_server.place  # the fixture: a server on SQLite or on PostgreSQL

OLD, NEW = "rotation-old-key-0123456789", "rotation-new-key-0123456789"


def _config(base: str, current: str, previous: tuple[str, ...] = ()) -> str:
    listed = ", ".join(f'"{k}"' for k in previous)
    return base.replace('user_hash_key = "erase-test-key-0123456789"',
                        f'user_hash_key = "{current}"\nprevious_user_hash_keys = [{listed}]')


def test_rotation_keeps_caps_and_history_and_erase_finds_both_keys(place, start_server, tmp_path):
    base, log_args, where = place
    data = tmp_path / "data"
    first = start_server(_config(base, OLD), data_dir=data)
    assert first.stub.Decide(make_request(user="alice", event_id="before"), timeout=10).exploration != "no_contact"
    first.server.stop(grace=1)

    rotated = start_server(_config(base, NEW, (OLD,)), data_dir=data)
    after = rotated.stub.Decide(make_request(user="alice", event_id="after"), timeout=10)
    assert after.exploration == "no_contact", "the cap counts the contact hashed with the old key"
    old_hash = ServerKeys.from_secret(OLD.encode()).user_key("alice")
    new_hash = ServerKeys.from_secret(NEW.encode()).user_key("alice")
    snapshot = rotated.engine.history.snapshot(new_hash, time.time())
    assert snapshot.n_contacts == 1 and snapshot.shown_offers, "the history holds the pre-rotation contact"
    assert rotated.stub.Decide(make_request(user="bob"), timeout=10).exploration != "no_contact"
    with open_log(where) as log:
        assert [d.event_id for d in log.user_data([old_hash]).decisions] == ["before"]
        assert [d.event_id for d in log.user_data([new_hash]).decisions] == ["after"], "new decisions: the new key"
        assert len(log.registered_keys()) == 2

    config = _config(base, NEW, (OLD,))
    held = json.loads(_cli(tmp_path, config, "user-data", "--user-id", "alice", *log_args).stdout)
    assert sorted(d["event_id"] for d in held["decisions"]) == ["after", "before"]
    assert sorted(held["user_keys"]) == sorted([old_hash, new_hash])
    erased = _cli(tmp_path, config, "erase", "--user-id", "alice", "--json", *log_args)
    assert json.loads(erased.stdout)["decisions"] == 2, erased.stderr
    rotated.server.stop(grace=1)

    with pytest.raises(InvalidInput) as refused:  # a key this log never registered
        start_server(_config(base, "a-foreign-key-0123456789"), data_dir=data)
    assert refused.value.field == "privacy.user_hash_key"
    only_new = start_server(_config(base, NEW), data_dir=data)  # the old key aged out: the new one alone
    assert only_new.stub.Decide(make_request(user="alice"), timeout=10).exploration != "no_contact"

"""Issue 14 item 1, the bounded half: each campaign's ``reward_range``, refused values, clipped sums,
and the same range reaching learning, OPE and export (real server, real SQLite, real VW)."""
from __future__ import annotations

import json
import math
import sqlite3
import time

import grpc
import pytest

from decision_log import RewardDefaults, export_dsjson, open_log
from offerbandit.errors import InvalidInput
from offers.v1 import decision_pb2 as pb
from offline_eval.sqlite_loader import load_dataset
from service.config import parse_config
from tests.conftest import make_request


def _rows(data_dir, sql, params=()):
    conn = sqlite3.connect(data_dir / "decisions.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_default_range_is_unit_and_reaches_the_log_readers():
    config = parse_config("[campaigns.wide]\nreward_range = [-2, 8]\ndefault_reward = 3\n[campaigns.plain]\n")
    assert config.campaigns["plain"].reward_range == (0.0, 1.0)
    assert config.campaigns["wide"].reward_range == (-2.0, 8.0)
    defaults = config.reward_defaults()
    assert defaults.range_of("wide") == (-2.0, 8.0) and defaults.range_of("unknown") == (0.0, 1.0)
    assert defaults.clip("wide", 11.0) == 8.0 and defaults.clip("plain", -1.0) == 0.0


@pytest.mark.parametrize("body, field", [
    ("reward_range = [1.0, 0.0]", "reward_range"),
    ("reward_range = [0.5, 0.5]", "reward_range"),
    ("reward_range = [0.0, inf]", "reward_range"),
    ("reward_range = [nan, 1.0]", "reward_range"),
    ("reward_range = [0.0]", "reward_range"),
    ("reward_range = [0.0, 1.0, 2.0]", "reward_range"),
    ('reward_range = "0,1"', "reward_range"),
    ('reward_range = [0.0, "1"]', "reward_range"),
    ("default_reward = 2.0", "default_reward"),  # outside the default [0, 1]
    ("reward_range = [1.0, 5.0]", "default_reward"),  # the default 0.0 is outside
])
def test_bad_ranges_are_refused_naming_the_key(body, field):
    with pytest.raises(InvalidInput) as err:
        parse_config(f"[campaigns.c]\n{body}\n")
    assert err.value.field == f"campaigns.c.{field}"


def test_reward_defaults_refuse_a_default_outside_its_range():
    with pytest.raises(InvalidInput, match="outside"):
        RewardDefaults({"c": 2.0}, ranges={"c": (0.0, 1.0)})


@pytest.mark.parametrize("value", [1e300, -1e300, 1.0000001, -0.5, 2.0, 1e30])
def test_reward_outside_the_range_is_invalid_argument_and_nothing_is_stored(served, value):
    decision = served.stub.Decide(make_request(), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "value" in err.value.details() and "[0.0, 1.0]" in err.value.details()
    assert _rows(served.data_dir, "SELECT count(*) FROM rewards")[0][0] == 0
    (row,) = _rows(served.data_dir, "SELECT reward, reward_count, learned_at FROM decisions")
    assert tuple(row) == (None, 0, None)
    # the event is still rewardable within the range, and the server keeps serving
    assert served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10).accepted
    assert served.stub.Decide(make_request(user="bob"), timeout=10).offer_id


def test_the_bounds_themselves_are_inside(start_server):
    served = start_server("[campaigns.default]\nreward_range = [-3.0, 7.5]\n")
    for value in (-3.0, 7.5):
        decision = served.stub.Decide(make_request(user=f"u{value}"), timeout=10)
        assert served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value), timeout=10).accepted


SUM = """
[campaigns.default]
aggregation = "sum"
reward_window_seconds = 3600
reward_range = [-1.0, 1.0]
"""


def test_a_sum_is_clipped_as_a_whole_not_step_by_step(start_server):
    served = start_server(SUM)
    decision = served.stub.Decide(make_request(), timeout=10)
    stored = []
    for reward_id, value in (("a", 0.8), ("b", 0.8), ("c", -0.5)):
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=value, reward_id=reward_id),
                           timeout=10)
        stored.append(_rows(served.data_dir, "SELECT reward FROM decisions")[0][0])
    # 0.8; 1.6 -> 1.0; 1.1 -> 1.0 (clipping each step would have given 0.5)
    assert stored == pytest.approx([0.8, 1.0, 1.0])
    raw = [r[0] for r in _rows(served.data_dir, "SELECT value FROM rewards ORDER BY id")]
    assert raw == [0.8, 0.8, -0.5]  # what arrived is kept as it arrived


WIDE = """
[learning]
poll_seconds = 0.1
[campaigns.default]
aggregation = "sum"
reward_window_seconds = 0.3
reward_windows = {}
reward_range = [0.0, 10.0]
"""


def test_learning_ope_and_export_see_the_clipped_sum_and_the_range(start_server, tmp_path):
    served = start_server(WIDE)
    decision = served.stub.Decide(make_request(), timeout=10)
    for reward_id in ("a", "b"):
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=7.0, reward_id=reward_id), timeout=10)
    deadline = time.time() + 10  # learned once, at window close
    while served.server.learner.learned < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert served.server.learner.learned == 1
    served.server.stop(grace=1)
    defaults = parse_config(WIDE).reward_defaults()
    with open_log(served.data_dir) as log:
        (event,) = list(log.learning_events(defaults))
    assert event.reward == 10.0 and event.reward_range == (0.0, 10.0)
    dataset = load_dataset(served.data_dir, defaults=defaults)
    assert dataset.feedback.reward.tolist() == [10.0] and dataset.reward_range == (0.0, 10.0)
    (learned,) = [e for batch in dataset.learning_events() for e in batch]
    assert learned.reward_range == (0.0, 10.0)
    out = tmp_path / "log.dsjson"
    assert export_dsjson(served.data_dir, out, defaults=defaults) == 1
    record = json.loads(out.read_text().splitlines()[0])
    assert record["o"][0]["v"] == 10.0 and math.isclose(record["_label_cost"], -1.0)

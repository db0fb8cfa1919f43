"""A DecideBatch is decided in waves (one ``pmf_batch`` per wave, `service/waves.py`) and must come out bit for bit
as if its items were decided one by one: two real engines (real SQLite logs, real VW, the same keys and the
same trained model, the same customer histories), one deciding a batch, its twin the same requests singly.
The batch repeats customers, so items see earlier items' pending contacts (an sms cap of 1), and one campaign
uses per-customer features."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from policies.types import ArmSet, DecisionContext, LearningEvent, Offer
from service import validation
from service.campaigns import new_policy
from service.config import parse_config
from service.engine import DecisionEngine
from service.validation import RewardInput
from service.waves import waves_of
from tests.conftest import make_request

CONFIG = """
[privacy]
user_hash_key = "batch-waves-key-0001"
[campaigns.default]
[[campaigns.default.rules.caps]]
format = "sms"
max_contacts = 1
window_s = 3600
[campaigns.personal]
personal_features = true
"""
OFFERS = [(f"o{i}", {"category": f"cat-{i % 3}"}) for i in range(5)]
COLUMNS = ("event_id", "chosen_index", "probability", "pmf", "policy_pmf", "beta", "exploration", "eligible",
           "removed", "features", "no_contact_reason", "offer_id", "format", "time_slot", "policy_version")


def _request(user: str, event_id: str, campaign: str = "default", formats=("sms", "email")):
    return make_request(user=user, event_id=event_id, campaign=campaign, offers=OFFERS, formats=list(formats),
                        context={"segment": f"s{sum(map(ord, user)) % 3}", "device": "ios"})


def _trained(engine: DecisionEngine, campaign: str, data: bytes | None):
    """Install the same trained model in ``engine``'s campaign (trained once: its bytes are returned)."""
    runtime = engine.campaigns[campaign]
    policy = new_policy(runtime.config)
    if data is None:
        rng = np.random.default_rng(5)
        arms = ArmSet.product([Offer(o, f) for o, f in OFFERS], ["sms", "email"], ["morning", "evening"])
        events = [LearningEvent(DecisionContext(f"k{rng.integers(4)}", {"segment": f"s{rng.integers(3)}"}), arms,
                                int(rng.integers(len(arms))), 0.05, float(rng.random() < 0.5)) for _ in range(300)]
        policy.learn(events)
        data = policy.save()
    runtime.live.swap(type(policy).load(data), "trained-1")
    return data


@pytest.fixture
def twins(tmp_path):
    config = parse_config(CONFIG)
    batch, single = DecisionEngine(config, tmp_path / "batch"), DecisionEngine(config, tmp_path / "single")
    try:
        for campaign in ("default", "personal"):
            _trained(single, campaign, _trained(batch, campaign, None))
        yield batch, single
    finally:
        batch.close()
        single.close()


def _inputs(engine: DecisionEngine, requests) -> list[validation.DecideInput]:
    cfg = engine.config
    return [validation.decide_input(r, cfg.limits, cfg.privacy) for r in requests]


def _rows(engine: DecisionEngine, event_ids: list[str]) -> list[tuple]:
    with sqlite3.connect(engine.data_dir / "decisions.db") as conn:
        found = {row[0]: row for row in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM decisions")}
    return [found[e] for e in event_ids]


def test_a_batch_decides_exactly_what_its_items_decided_one_by_one_would(twins):
    batch, single = twins
    # the same past on both: earlier decisions (one by one) and rewards, so histories, novelty and features vary
    past = [_request(f"u{i % 7}", f"past-{i}", "personal" if i % 2 else "default", ("email",)) for i in range(20)]
    for engine in twins:
        for inp in _inputs(engine, past):
            engine.decide([inp])
        for i in range(0, 20, 3):
            engine.reward(RewardInput(f"past-{i}", 1.0, ""))
    requests = [_request("u1", "b0"), _request("u2", "b1", "personal"), _request("u1", "b2"),
                _request("u9", "b3", formats=("sms",)), _request("u9", "b4", formats=("sms",)),
                _request("u3", "b5", "personal"), _request("u9", "b6", formats=("sms",)), _request("u1", "b7")]
    requests += [_request(f"u{i % 7}", f"b{8 + i}", "personal" if i % 3 else "default") for i in range(40)]
    inputs = _inputs(batch, requests)
    assert len(waves_of([batch._prepare(i, inp) for i, inp in enumerate(inputs)])) > 2  # customers repeat

    together = batch.decide(inputs, batch=True)
    alone = [single.decide([inp])[0] for inp in _inputs(single, requests)]

    assert [(o.event_id, o.arm, o.probability, tuple(o.ranking), o.exploration, o.no_contact_reason)
            for o in together] == [(o.event_id, o.arm, o.probability, tuple(o.ranking), o.exploration,
                                    o.no_contact_reason) for o in alone]
    event_ids = [r.event_id for r in requests]
    assert _rows(batch, event_ids) == _rows(single, event_ids)  # pmf blobs, policy pmf, beta, features: the bytes
    # the items saw each other: u9's first sms used its cap, the next two were refused by it
    assert together[3].arm.format == "sms"
    assert [(o.arm, o.no_contact_reason) for o in (together[4], together[6])] == [(None, "cap"), (None, "cap")]
    rows = {row[0]: row for row in _rows(batch, event_ids)}
    assert any(rows[e][9] for e in event_ids)  # per-customer features were used (and logged) in the batch
    assert len({rows[e][5] for e in event_ids}) > 1  # novelty weights differ with the histories


def test_waves_hold_one_item_per_customer_in_batch_order(twins):
    batch, _ = twins
    inputs = _inputs(batch, [_request(u, f"w{i}") for i, u in enumerate(["a", "b", "a", "c", "a", "b"])])
    prepared = [batch._prepare(i, inp) for i, inp in enumerate(inputs)]
    assert waves_of(prepared) == [[0, 1, 3], [2, 5], [4]]


def test_a_batch_failing_in_a_later_wave_leaves_no_pending_contact(twins):
    batch, _ = twins
    # wave 0 decides u5's sms (a pending contact under the cap), wave 1 fails: scoring on a broken policy
    inputs = _inputs(batch, [_request("u5", "f0", formats=("sms",)), _request("u5", "f1", "personal")])
    runtime = batch.campaigns["personal"]
    policy, version = runtime.live.current()
    runtime.live.swap(None, version)
    with pytest.raises(AttributeError):
        batch.decide(inputs, batch=True)
    runtime.live.swap(policy, version)
    again = batch.decide(_inputs(batch, [_request("u5", "f2", formats=("sms",))]))
    assert again[0].arm is not None and again[0].arm.format == "sms"  # the failed batch used no cap

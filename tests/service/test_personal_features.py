"""Per-customer features (issue 16, DESIGN-NOTES "Per-customer features"): computed from the customer's own
history at decision time (rewards received before it only), stored in the row as used, and read back —
never recomputed — by learning, off-policy evaluation and the Parquet export. Off by default."""
from __future__ import annotations

import json
import sqlite3

import pytest

from decision_log import RewardDefaults
from decision_log.parquet_export import export_parquet
from offerbandit.errors import InvalidInput
from offers.v1 import decision_pb2 as pb
from offline_eval.log_dataset import load_dataset
from offline_eval.parquet_dataset import load_parquet_dataset
from policies.types import CustomerFeatures
from policies.vw.features import MATCH_NAMESPACE, PERSONAL_INTERACTIONS, PERSONAL_LEARNING_RATE, match_parts
from service.config import PERSONAL_MODEL, parse_config
from tests.conftest import OFFERS, make_request

ON = '[privacy]\nuser_hash_key = "personal-features-key-01"\n[campaigns.default]\npersonal_features = true\n'
OFF = '[privacy]\nuser_hash_key = "personal-features-key-01"\n'
CATEGORY = dict((oid, feats["category"]) for oid, feats in OFFERS)


def _features(served, event_id: str) -> str | None:
    with sqlite3.connect(served.data_dir / "decisions.db") as conn:
        return conn.execute("SELECT features FROM decisions WHERE event_id = ?", (event_id,)).fetchone()[0]


def _decide(served, user: str = "alice"):
    return served.stub.Decide(make_request(user=user), timeout=10)


def test_the_switch_picks_the_posterior_and_the_match_model_gets_its_interactions_once():
    campaign = parse_config(ON).campaigns["default"]
    assert campaign.policy_params["personal_model"] == "posterior" == PERSONAL_MODEL
    assert not set(PERSONAL_INTERACTIONS) & set(campaign.policy_params.get("interactions", ()))
    match = parse_config(ON + '[campaigns.default.policy_params]\npersonal_model = "match"\n').campaigns["default"]
    interactions = tuple(match.policy_params["interactions"])
    assert interactions[-len(PERSONAL_INTERACTIONS):] == PERSONAL_INTERACTIONS and len(set(interactions)) == len(interactions)
    assert not set(PERSONAL_INTERACTIONS) & set(parse_config(OFF).campaigns["default"].policy_params["interactions"])
    assert parse_config(OFF).campaigns["default"].personal_features is False
    assert "personal_model" not in parse_config(OFF).campaigns["default"].policy_params
    # the faster learning rate comes with the switch, and a campaign's own learning_rate wins
    assert campaign.policy_params["learning_rate"] == match.policy_params["learning_rate"] == PERSONAL_LEARNING_RATE
    assert PERSONAL_LEARNING_RATE != 0.5
    assert "learning_rate" not in parse_config(OFF).campaigns["default"].policy_params
    own = parse_config(ON + "[campaigns.default.policy_params]\nlearning_rate = 0.3\n").campaigns["default"]
    assert own.policy_params["learning_rate"] == 0.3
    with pytest.raises(InvalidInput, match="personal_features"):
        parse_config('[campaigns.default]\npersonal_features = "yes"\n')


def test_features_count_shows_and_earlier_responses_and_are_stored_as_used(start_server):
    served = start_server(ON)
    first = _decide(served)
    assert _features(served, first.event_id) is None  # a cold customer: context only
    served.stub.Reward(pb.RewardRequest(event_id=first.event_id, value=1.0), timeout=10)
    second = _decide(served)
    stored = CustomerFeatures.from_json(_features(served, second.event_id))
    category = CATEGORY[first.offer_id]
    assert dict(stored.counts["category"]) == {category: (1, 1)}
    assert dict(stored.counts["format"]) == {first.format: (1, 1)}
    assert dict(stored.counts["time_slot"]) == {first.time_slot: (1, 1)}
    # a reward that arrives after the decision does not reach its stored features
    before = _features(served, second.event_id)
    served.stub.Reward(pb.RewardRequest(event_id=second.event_id, value=0.0), timeout=10)
    assert _features(served, second.event_id) == before
    third = CustomerFeatures.from_json(_features(served, _decide(served).event_id))
    assert sum(shown for shown, _ in third.counts["format"].values()) == 2
    assert sum(r for _, r in third.counts["format"].values()) == 1  # the 0 reward is no response
    # another customer starts cold: features are per customer
    assert _features(served, _decide(served, "bob").event_id) is None


def test_off_by_default_no_features_in_rows(start_server):
    served = start_server(OFF)
    first = _decide(served)
    served.stub.Reward(pb.RewardRequest(event_id=first.event_id, value=1.0), timeout=10)
    assert _features(served, _decide(served).event_id) is None


def test_learning_ope_and_export_read_the_features_back_from_the_row(start_server, tmp_path):
    # the match model, whose arm lines carry the features (the posterior reads them from the same context)
    served = start_server(ON + '[campaigns.default.policy_params]\npersonal_model = "match"\n')
    events = []
    for _ in range(6):
        decision = _decide(served)
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
        events.append(decision.event_id)
    assert served.server.learner.wait_idle(30)
    stored = {e: _features(served, e) for e in events}
    assert stored[events[0]] is None and all(stored[e] for e in events[1:])
    # what the learner learns from: the logged context carries the stored features
    learned = list(served.engine.log.learning_events(RewardDefaults()))
    assert len(learned) == 6
    by_text = [e.context.customer.to_json() if e.context.customer else None for e in learned]
    assert by_text == [stored[e] for e in events]
    # ... and the arm lines it learns from carry them (every arm shares a value with the five answered before)
    last, first = learned[-1], learned[0]
    assert all(part.startswith(f" |{MATCH_NAMESPACE} ") for part in match_parts(last.arm_set, last.context.customer))
    assert match_parts(first.arm_set, first.context.customer) is None
    # off-policy evaluation (the log and a Parquet export) reads the same
    dataset = load_dataset(served.data_dir)
    from_log = [d for batch in dataset.decisions() for d in batch]
    assert [d.context.customer.to_json() if d.context.customer else None for d in from_log] == by_text
    export_parquet(served.data_dir, tmp_path / "parquet")
    parquet = load_parquet_dataset(tmp_path / "parquet")
    from_parquet = sorted((d for batch in parquet.decisions() for d in batch), key=lambda d: d.seq)
    assert [d.context.customer.to_json() if d.context.customer else None for d in from_parquet] == by_text
    assert json.loads(by_text[-1])["f"]  # compact: one-letter dimension codes


def test_customer_features_json_round_trips_and_rejects_unknown_dimensions():
    features = CustomerFeatures({"category": {"travel": (3, 1)}, "format": {"sms": (3, 1)}})
    assert CustomerFeatures.from_json(features.to_json()) == features
    assert features.to_json() == '{"c":{"travel":[3,1]},"f":{"sms":[3,1]}}'
    with pytest.raises(ValueError):
        CustomerFeatures({"colour": {"red": (1, 0)}})

"""The holdout (issue 17, first part): a stable keyed assignment, logged with the label ``holdout`` and the
probability of what was served, rewards stored but never learned, and left out of off-policy evaluation."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from scipy import stats

from offerbandit.errors import InvalidInput
from offers.v1 import decision_pb2 as pb
from decision_log.parquet_export import export_parquet
from offline_eval.log_dataset import load_dataset
from offline_eval.parquet_dataset import load_parquet_dataset
from service.config import parse_config
from service.holdout import holdout_position, in_holdout
from tests.conftest import make_request

KEY = b"k" * 32
HOLDOUT_30 = '[privacy]\nuser_hash_key = "holdout-test-key-0001"\n[campaigns.default]\nholdout = 0.3\n'
BASELINE_50 = ('[privacy]\nuser_hash_key = "holdout-test-key-0002"\n[campaigns.default]\nholdout = 0.5\n'
               'holdout_treatment = "baseline"\n')


def _decide(served, users, **fields):
    decisions = []
    for start in range(0, len(users), 100):
        response = served.stub.DecideBatch(pb.DecideBatchRequest(
            requests=[make_request(user=u, **fields) for u in users[start:start + 100]]), timeout=30)
        decisions.extend(response.decisions)
    return decisions


def test_the_assignment_is_a_keyed_uniform_draw_and_raising_the_share_keeps_everyone_in():
    users = [f"u{i:05d}" for i in range(20_000)]
    positions = np.array([holdout_position(KEY, "default", u) for u in users])
    assert stats.kstest(positions, "uniform").pvalue > 1e-4
    at_20 = {u for u in users if in_holdout(KEY, "default", u, 0.2)}
    at_30 = {u for u in users if in_holdout(KEY, "default", u, 0.3)}
    assert at_20 < at_30  # raising the share only adds customers
    assert stats.binomtest(len(at_20), len(users), 0.2).pvalue > 1e-6
    other = {u for u in users if in_holdout(KEY, "spring", u, 0.2)}
    assert 0.1 < len(other & at_20) / len(at_20) < 0.3  # per campaign: independent draws (expected 0.2)
    assert not {u for u in users if in_holdout(b"x" * 32, "default", u, 0.2)} == at_20
    assert not any(in_holdout(KEY, "default", u, 0.0) for u in users[:100])


def test_a_holdout_share_must_be_below_one_and_the_treatment_known():
    with pytest.raises(InvalidInput, match="holdout"):
        parse_config("[campaigns.default]\nholdout = 1.0\n")
    with pytest.raises(InvalidInput, match="holdout_treatment"):
        parse_config('[campaigns.default]\nholdout_treatment = "discount"\n')


def test_held_out_customers_get_no_contact_labelled_holdout_and_stay_held_out(start_server):
    served = start_server(HOLDOUT_30)
    users = [f"customer-{i}" for i in range(1000)]
    first = _decide(served, users)
    held = {u for u, d in zip(users, first) if d.exploration == "holdout"}
    assert stats.binomtest(len(held), len(users), 0.3).pvalue > 1e-6  # the share, both sides
    for user, decision in zip(users, first):
        if user in held:
            assert (decision.offer_id, decision.probability, len(decision.ranking)) == ("", 1.0, 0)
            assert decision.no_contact_reason == "holdout"
        else:
            assert decision.exploration != "holdout" and decision.offer_id
    again = _decide(served, users[:300])
    assert {u for u, d in zip(users, again) if d.exploration == "holdout"} == held & set(users[:300])


def test_baseline_treatment_serves_the_baseline_with_probability_one_and_never_learns_it(start_server, tmp_path):
    served = start_server(BASELINE_50)
    baseline = pb.Arm(offer_id="o1", format="sms", time_slot="morning")
    users = [f"b-{i}" for i in range(400)]
    decisions = _decide(served, users, baseline=baseline)
    held = [d for d in decisions if d.exploration == "holdout"]
    assert stats.binomtest(len(held), len(users), 0.5).pvalue > 1e-6
    for decision in held:
        assert (decision.offer_id, decision.format, decision.time_slot, decision.probability) == (
            "o1", "sms", "morning", 1.0)
        assert [(a.offer_id, a.probability) for a in decision.ranking] == [("o1", 1.0)]
    # the contact rules still apply: without consent for sms the baseline cannot be sent
    no_sms = _decide(served, [f"b-{i}" for i in range(40)], baseline=baseline, consented_formats=["email"])
    for decision in no_sms:
        if decision.exploration == "holdout":
            assert decision.offer_id == "" and decision.probability == 1.0
    for decision in decisions:
        served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    assert served.server.learner.wait_idle(30)
    assert served.server.learner.learned == len(decisions) - len(held)  # the control group is never learned
    with sqlite3.connect(served.data_dir / "decisions.db") as conn:
        rows = conn.execute("SELECT reward, learn_seq, learned_at FROM decisions WHERE exploration = 'holdout' "
                            "AND chosen_index IS NOT NULL").fetchall()
    assert len(rows) >= len(held)
    assert all(reward == 1.0 and learn_seq is None and learned_at is not None for reward, learn_seq, learned_at in rows)
    dataset = load_dataset(served.data_dir)
    assert dataset.exclusions.holdout == len(held) + sum(d.exploration == "holdout" for d in no_sms)
    assert len(dataset.seq) == len(decisions) - len(held)  # OPE of the policy sees only the treated
    export_parquet(served.data_dir, tmp_path / "parquet")
    from_parquet = load_parquet_dataset(tmp_path / "parquet")
    assert from_parquet.exclusions.holdout == dataset.exclusions.holdout
    np.testing.assert_array_equal(np.sort(from_parquet.seq), np.sort(dataset.seq))

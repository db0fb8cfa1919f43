"""Loading the real server's SQLite decision log for offline evaluation: counts, exclusions, alignment."""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from offers.v1 import decision_pb2 as pb
from offline_eval.log_dataset import LogFilter, load_dataset, resolve_campaign
from offerbandit.errors import InvalidInput
from service.config import parse_config
from tests.conftest import FORMATS, OFFERS, SLOTS, make_request

CONFIG = """
[privacy]
user_hash_key = "offline-eval-test"
[mlflow]
enabled = false
[learning]
poll_seconds = 0.05
[campaigns.default]
[campaigns.quick]
policy = "uniform"
default_reward = 0.25
reward_window_seconds = 0.2
reward_windows = { sms = 0.2, email = 0.2 }
"""
SEGMENTS = ("young", "old")


@dataclass(frozen=True)
class Served:
    """What the client saw for one decision it will find again in the log."""

    event_id: str
    arm: tuple[str, str, str]
    probability: float
    ranking: dict[tuple[str, str, str], float]
    reward: float | None
    excluded: tuple[str, ...]


def served_of(decision: pb.Decision, reward: float | None, excluded: tuple[str, ...] = ()) -> Served:
    ranking = {(a.offer_id, a.format, a.time_slot): a.probability for a in decision.ranking}
    return Served(decision.event_id, (decision.offer_id, decision.format, decision.time_slot),
                  decision.probability, ranking, reward, excluded)


def log_rows(data_dir: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(data_dir / "decisions.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_until_final(data_dir: Path, event_ids: list[str], timeout: float = 30.0) -> None:
    marks = ",".join("?" * len(event_ids))
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = log_rows(data_dir, f"SELECT count(*) AS n FROM decisions WHERE learned_at IS NOT NULL "
                                  f"AND event_id IN ({marks})", tuple(event_ids))
        if rows[0]["n"] == len(event_ids):
            return
        time.sleep(0.05)
    raise AssertionError("reward windows did not close in time")


def mixed_log(start_server) -> tuple[Path, list[Served], dict[str, int]]:
    """A log with every kind of decision; returns (data dir, the final default-campaign decisions in
    log order, the number of each excluded kind)."""
    server = start_server(CONFIG)
    stub = server.stub
    final: list[Served] = []
    for i in range(24):
        excluded = ("o1",) if i % 4 == 3 else ()
        request = make_request(user=f"u{i % 7}", context={"segment": SEGMENTS[i % 2]},
                               excluded_offers=list(excluded), event_id=f"final-{i}")
        decision = stub.Decide(request, timeout=10)
        reward = float(i % 3 == 0)
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=reward), timeout=10)
        final.append(served_of(decision, reward, excluded))
    for i in range(3):
        decision = stub.Decide(make_request(user="nc", excluded_offers=[o for o, _ in OFFERS],
                                            event_id=f"no-contact-{i}"), timeout=10)
        assert decision.exploration == "no_contact"
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    for i in range(2):
        decision = stub.Decide(make_request(user="d", deferred=True, event_id=f"idle-{i}"), timeout=10)
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10)
    for i in range(2):
        decision = stub.Decide(make_request(user="a", deferred=True, event_id=f"shown-{i}"), timeout=10)
        stub.Activate(pb.ActivateRequest(event_id=decision.event_id), timeout=10)
        stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=0.5), timeout=10)
        final.append(served_of(decision, 0.5))
    for i in range(4):
        stub.Decide(make_request(user="open", event_id=f"open-{i}"), timeout=10)
    quick = [stub.Decide(make_request(user=f"q{i}", campaign="quick", event_id=f"quick-{i}"), timeout=10)
             for i in range(5)]
    wait_until_final(server.data_dir, [d.event_id for d in quick])
    server.server.stop(grace=1)
    return server.data_dir, final, {"no_contact": 3, "deferred_not_activated": 2, "not_final": 4}


@pytest.fixture
def logged(start_server):
    return mixed_log(start_server)


def test_counts_and_exclusions(logged):
    data_dir, final, excluded = logged
    dataset = load_dataset(data_dir, campaign="default", defaults=parse_config(CONFIG).reward_defaults())
    assert dataset.n_events == len(final) == 26
    assert dataset.exclusions.no_contact == excluded["no_contact"]
    assert dataset.exclusions.deferred_not_activated == excluded["deferred_not_activated"]
    assert dataset.exclusions.not_final == excluded["not_final"]
    assert dataset.exclusions.total == 9
    reasons = " ".join(dataset.exclusions.reasons())
    assert "3 no_contact" in reasons and "2 deferred" in reasons and "4 decisions whose reward window" in reasons
    assert list(dataset.event_ids) == [s.event_id for s in final]


def test_pscore_action_reward_and_candidate_sets_match_what_was_served(logged):
    data_dir, final, _ = logged
    dataset = load_dataset(data_dir, campaign="default")
    fb = dataset.feedback
    np.testing.assert_array_equal(fb.pscore, [s.probability for s in final])  # bit for bit
    np.testing.assert_array_equal(fb.reward, [s.reward for s in final])
    decoded = [d for chunk in dataset.decisions(chunk=5) for d in chunk]
    assert [d.event_id for d in decoded] == list(dataset.event_ids)
    for i, (served, decision) in enumerate(zip(final, decoded)):
        arms = decision.arm_set.arms
        expected = [(o, f, t) for o, _ in OFFERS if o not in served.excluded for f in FORMATS for t in SLOTS]
        assert [(a.offer_id, a.format, a.time_slot) for a in arms] == expected
        assert dataset.logging_pmf.row_lengths[i] == len(expected)
        chosen = arms[fb.action[i]]
        assert (chosen.offer_id, chosen.format, chosen.time_slot) == served.arm
        row = dataset.logging_pmf.values[dataset.indptr[i]:dataset.indptr[i + 1]]
        assert row[fb.action[i]] == pytest.approx(fb.pscore[i], abs=1e-12)
        assert row.sum() == pytest.approx(1.0)
        for arm, p in zip(arms, row):  # the ranking lists every arm with p > 0
            assert served.ranking.get((arm.offer_id, arm.format, arm.time_slot), 0.0) == pytest.approx(p)


def test_chunked_loading_gives_the_same_dataset(logged):
    data_dir, _, _ = logged
    whole = load_dataset(data_dir, campaign="default")
    small = load_dataset(data_dir, campaign="default", chunk=3)
    for name in ("action", "reward", "pscore"):
        np.testing.assert_array_equal(getattr(whole.feedback, name), getattr(small.feedback, name))
    np.testing.assert_array_equal(whole.logging_pmf.indptr, small.logging_pmf.indptr)
    np.testing.assert_array_equal(whole.logging_pmf.values, small.logging_pmf.values)
    assert whole.event_ids == small.event_ids and whole.exclusions == small.exclusions


def test_default_reward_when_the_window_closed_without_one(logged):
    data_dir, _, _ = logged
    dataset = load_dataset(data_dir, campaign="quick", defaults=parse_config(CONFIG).reward_defaults())
    assert dataset.n_events == 5
    np.testing.assert_array_equal(dataset.feedback.reward, 0.25)
    np.testing.assert_allclose(dataset.feedback.pscore, 1.0 / 12)  # uniform over 12 arms, no novelty data


def test_filters_by_time_and_policy_version(logged):
    data_dir, final, _ = logged
    dataset = load_dataset(data_dir, campaign="default")
    middle = float(dataset.decided_at[10])
    later = load_dataset(data_dir, campaign="default", since=middle)
    earlier = load_dataset(data_dir, campaign="default", until=middle)
    assert later.n_events + earlier.n_events == dataset.n_events
    assert later.event_ids == dataset.event_ids[-later.n_events:]
    assert set(dataset.policy_versions) == {"bootstrap"}
    assert load_dataset(data_dir, campaign="default", policy_version="bootstrap").n_events == dataset.n_events
    with pytest.raises(InvalidInput, match="no evaluable decisions"):
        load_dataset(data_dir, campaign="default", policy_version="7")


def test_subset_keeps_rows_aligned(logged):
    data_dir, _, _ = logged
    dataset = load_dataset(data_dir, campaign="default")
    part = dataset.subset(5, 12)
    assert part.n_events == 7 and part.event_ids == dataset.event_ids[5:12]
    np.testing.assert_array_equal(part.logging_pmf.values,
                                  dataset.logging_pmf.values[dataset.indptr[5]:dataset.indptr[12]])
    assert [d.event_id for chunk in part.decisions() for d in chunk] == list(dataset.event_ids[5:12])


def test_campaign_must_be_chosen_when_the_log_has_several(logged):
    data_dir, _, _ = logged
    with pytest.raises(InvalidInput, match="several campaigns") as err:
        load_dataset(data_dir)
    assert err.value.field == "campaign"
    with pytest.raises(InvalidInput, match="no decisions for campaign 'nope'"):
        resolve_campaign(data_dir, "nope")


def test_empty_log_is_rejected(start_server):
    server = start_server(CONFIG)
    server.server.stop(grace=1)
    with pytest.raises(InvalidInput, match="empty"):
        load_dataset(server.data_dir)


def test_log_with_only_open_windows_says_why_nothing_is_left(start_server):
    server = start_server(CONFIG)
    server.stub.Decide(make_request(), timeout=10)
    server.server.stop(grace=1)
    with pytest.raises(InvalidInput, match="reward window is still open"):
        load_dataset(server.data_dir)


def test_missing_or_foreign_log_is_rejected(tmp_path):
    with pytest.raises(InvalidInput, match="no decision log") as err:
        load_dataset(tmp_path / "nowhere")
    assert err.value.field == "data-dir"
    (tmp_path / "decisions.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InvalidInput, match="not a decision log"):
        load_dataset(tmp_path)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"since": 10.0, "until": 5.0}, "since"),
    ({"since": 5.0, "until": 5.0}, "since"),
    ({"since": float("nan")}, "since"),
    ({"until": "yesterday"}, "until"),
    ({"since": True}, "since"),
    ({"campaign": ""}, "campaign"),
    ({"policy_version": ""}, "policy_version"),
])
def test_invalid_filters(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        LogFilter(**kwargs)
    assert err.value.field == field


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_invalid_chunk(tmp_path, chunk):
    with pytest.raises(InvalidInput, match="chunk"):
        load_dataset(tmp_path, campaign="default", chunk=chunk)


def test_cached_decoder_matches_the_uncached_decoder_on_every_row(logged):
    from decision_log.decoder import OfferSetCache, RowDecoder
    from decision_log.sqlite.queries import LogReader

    data_dir, _, _ = logged
    reader = LogReader(data_dir / "decisions.db")
    try:
        offers = OfferSetCache(reader.offer_set)
        cached = RowDecoder(offers, arm_set_bytes=3000, arm_set_texts=reader.arm_set)  # ~2 sets: evictions
        fresh = RowDecoder(offers, arm_set_bytes=0, arm_set_texts=reader.arm_set)
        rows = list(reader.decisions())
        assert len(rows) == 40
        for row in rows:
            mine, theirs = cached.decision(row), fresh.decision(row)
            for name in ("seq", "event_id", "campaign", "decided_at", "context", "chosen", "probability",
                         "policy_version", "exploration", "deferred", "activated_at", "learned_at", "reward",
                         "baseline", "no_contact_reason"):
                assert getattr(mine, name) == getattr(theirs, name), name
            assert mine.arm_set.arms == theirs.arm_set.arms
            assert dict(mine.arm_set.offers) == dict(theirs.arm_set.offers)
            np.testing.assert_array_equal(mine.pmf, theirs.pmf)
    finally:
        reader.close()

"""The log's privacy operations on both backends (issue 18): an erasure deletes exactly one customer's
decisions, rewards and shadow scores in one transaction with an audit row (never the id); user-data lists
exactly what it would delete; a process killed in the middle of an erasure leaves everything; retention
deletes exactly the rows older than its cutoff, in bounded batches; keys are registered and checked."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from decision_log import ShadowScore, open_log, pmf_to_blob
from offerbandit.errors import InvalidInput
from tests.decision_log.test_export_parquet_backends import _fill, _row

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("decisions", "rewards", "shadow_scores")


def _shadow(log, event_ids) -> None:
    log.insert_shadow_scores([ShadowScore(e, "9", pmf_to_blob(np.array([0.5, 0.5])), 0.5, 1500.0)
                              for e in event_ids]).result(30)


def _held(place, user_key: str) -> dict[str, int]:
    events = "SELECT event_id FROM decisions WHERE user_key = ?"
    return {"decisions": place.sql("SELECT count(*) FROM decisions WHERE user_key = ?", (user_key,))[0][0],
            "rewards": place.sql(f"SELECT count(*) FROM rewards WHERE event_id IN ({events})", (user_key,))[0][0],
            "shadow_scores": place.sql(f"SELECT count(*) FROM shadow_scores WHERE event_id IN ({events})",
                                       (user_key,))[0][0]}


def _totals(place) -> dict[str, int]:
    return {t: place.sql(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


@pytest.fixture
def filled(log_place):
    """60 decisions of five customers u0..u4 (see _fill), rewards, and a shadow score for every fourth one."""
    _fill(log_place.where)
    with open_log(log_place.where, writable=True) as log:
        _shadow(log, [f"e{i}" for i in range(0, 60, 4)])
    return log_place


def test_erase_deletes_exactly_one_customers_rows_and_audits_it_without_the_id(filled):
    before, held = _totals(filled), _held(filled, "u1")
    others = {u: _held(filled, u) for u in ("u0", "u2", "u3", "u4")}
    assert held["decisions"] == 12 and held["rewards"] > 0 and held["shadow_scores"] > 0
    with open_log(filled.where) as log:
        listed = log.user_data(["u1"])
        counts = log.erase_users(["u1"], who="test")
        assert log.user_data(["u1"]).counts.total == 0
        audit = log.audit_after(0)
    assert (counts.decisions, counts.rewards, counts.shadow_scores) == tuple(held.values())
    assert listed.counts == counts, "user-data lists exactly what erase deletes"
    assert counts.contacts == sum(1 for d in listed.decisions if d.exploration != "no_contact")
    assert {d.event_id for d in listed.decisions} == {f"e{i}" for i in range(60) if i % 5 == 1}
    assert _held(filled, "u1") == {t: 0 for t in TABLES}
    assert {u: _held(filled, u) for u in others} == others, "other customers untouched"
    assert _totals(filled) == {t: before[t] - held[t] for t in TABLES}
    erasures = [a for a in audit if a.action == "erase"]
    assert len(erasures) == 1 and erasures[0].user_keys == ("u1",) and erasures[0].counts == counts
    assert erasures[0].who == "test" and erasures[0].at > 0


def test_an_unknown_customer_erases_nothing_and_rewards_for_erased_events_are_not_found(filled):
    with open_log(filled.where, writable=True) as log:
        assert log.erase_users(["nobody"]).total == 0
        log.erase_users(["u2"])
        from offerbandit.errors import NotFound
        with pytest.raises(NotFound):
            log.record_reward("e2", 1.0, "", 3000.0, lambda c: "first").result(30)
        _shadow(log, ["e2", "e3"])  # a score computed while its customer was erased is dropped
    assert filled.sql("SELECT event_id FROM shadow_scores WHERE event_id IN ('e2', 'e3')") == [("e3",)]
    assert _held(filled, "u2") == {t: 0 for t in TABLES}


DIE_MID_ERASE = """
import os, signal, sys
from decision_log import open_log
from decision_log.sqlite import privacy_ops

real = privacy_ops.erase_users

class Dying:
    def __init__(self, conn):
        self.conn = conn
    def __getattr__(self, name):
        return getattr(self.conn, name)
    def execute(self, sql, params=()):
        result = self.conn.execute(sql, params)
        if sql.startswith("DELETE FROM decisions"):  # rewards and shadow scores are gone already: die now
            print("dying", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

def dying(user_keys, who, at):
    op = real(user_keys, who, at)
    return lambda conn: op(Dying(conn))

privacy_ops.erase_users = dying
open_log(sys.argv[1]).erase_users(["u1"], who="crash")
"""


def test_a_process_killed_in_the_middle_of_an_erasure_leaves_everything(filled, tmp_path):
    before, held = _totals(filled), _held(filled, "u1")
    script = tmp_path / "die.py"
    script.write_text(textwrap.dedent(DIE_MID_ERASE))
    done = subprocess.run([sys.executable, str(script), filled.url], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -9 and "dying" in done.stdout, done.stderr
    assert _totals(filled) == before and _held(filled, "u1") == held, "all or nothing: nothing"
    assert filled.sql("SELECT count(*) FROM audit WHERE action = 'erase'")[0][0] == 0
    with open_log(filled.where) as log:  # and the log is whole: a later erasure deletes it all
        assert log.erase_users(["u1"]).decisions == held["decisions"]


def test_retention_deletes_exactly_the_rows_older_than_the_cutoff_in_batches(filled):
    cutoff = 1000.0 + 30 * 0.37 - 0.01  # e0..e29 are older
    old = {t: filled.sql(f"SELECT count(*) FROM {t} WHERE " + (
        "decided_at < ?" if t == "decisions" else "event_id IN (SELECT event_id FROM decisions WHERE decided_at < ?)"),
        (cutoff,))[0][0] for t in TABLES}
    before = _totals(filled)
    with open_log(filled.where) as log:
        done = log.delete_older_than(cutoff, batch=7)
    assert (done.decisions, done.rewards, done.shadow_scores) == (30, old["rewards"], old["shadow_scores"])
    assert done.batches == 5  # 7 + 7 + 7 + 7 + 2
    assert _totals(filled) == {t: before[t] - old[t] for t in TABLES}
    kept = {row[0] for row in filled.sql("SELECT event_id FROM decisions")}
    assert kept == {f"e{i}" for i in range(30, 60)}


def test_keys_are_registered_once_and_another_key_is_refused(log_place):
    with open_log(log_place.where, writable=True) as log:
        assert log.register_keys([("k1", "check-1")]) == [("k1", "check-1")]
        assert log.register_keys([("k1", "check-1")]) == [("k1", "check-1")]  # idempotent
        with pytest.raises(InvalidInput) as refused:
            log.register_keys([("k2", "check-2")])
        assert refused.value.field == "privacy.user_hash_key"
        # a rotation: the new key first, the registered one after it
        assert log.register_keys([("k3", "check-3"), ("k1", "check-1")]) == [("k1", "check-1"), ("k3", "check-3")]
        assert log.register_keys([("k3", "check-3")]) == [("k1", "check-1"), ("k3", "check-3")]


def test_rows_of_other_customers_survive_an_erase_of_many_keys(log_place):
    rng = np.random.default_rng(1)
    with open_log(log_place.where, writable=True) as log:
        log.insert_decisions([_row(i, rng) for i in range(20)]).result(30)
        counts = log.erase_users(["u0", "u3"])
    assert counts.decisions == 8
    assert sorted({r[0] for r in log_place.sql("SELECT user_key FROM decisions")}) == ["u1", "u2", "u4"]


def test_a_fresh_log_registers_every_listed_key_oldest_first(log_place):
    with open_log(log_place.where, writable=True) as log:
        assert log.register_keys([("new", "check-new"), ("old", "check-old")]) == [("old", "check-old"),
                                                                                  ("new", "check-new")]
        assert [a.action for a in log.audit_after(0)] == ["register_key", "register_key"]

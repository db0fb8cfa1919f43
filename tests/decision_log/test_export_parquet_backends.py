"""Export and Parquet-reading offline evaluation through the log's public reads, on both backends
(SQLite, and PostgreSQL through pg's ``postgres_url`` fixture): the same rows, the same dataset as the
log loader."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from decision_log import DecisionRow, RewardDefaults, encode_offers, indices_to_blob, open_log, pmf_to_blob
from decision_log.parquet_export import export_parquet
from offline_eval import RaggedMatrix, evaluate
from offline_eval.log_dataset import load_dataset
from offline_eval.parquet_dataset import load_parquet_dataset
from policies.types import Offer

OFFERS = (Offer("o1", {"category": "food"}), Offer("o2", {"category": "travel"}), Offer("o3", {"category": "tech"}))
FORMATS = ["sms", "email"]
DEFAULTS = RewardDefaults({"default": 0.25})
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def where(request, tmp_path):
    """A data directory, or the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "data"
    try:
        return request.getfixturevalue("postgres_url")
    except pytest.FixtureLookupError:  # a branch from before the PostgreSQL log: it comes with the merge
        pytest.skip("needs the postgres_url fixture (tests/postgres.py)")


def _row(i: int, rng: np.random.Generator, *, chosen: bool = True, deferred: bool = False) -> DecisionRow:
    offer_set_id, offer_set_json = encode_offers(OFFERS)
    eligible = [k for k in range(6) if k != i % 6] if chosen else []
    pmf = rng.dirichlet(np.ones(len(eligible))) if chosen else np.zeros(0)
    pick = int(rng.integers(len(eligible))) if chosen else None
    arm = eligible[pick] if chosen else None
    return DecisionRow(
        event_id=f"e{i}", campaign="default", decided_at=1000.0 + i * 0.37, user_key=f"u{i % 5}",
        context_json=json.dumps({"segment": ["a", "b"][i % 2]}), numeric_json=json.dumps({"age": float(i)}),
        offer_set_id=offer_set_id, offer_set_json=offer_set_json, formats_json=json.dumps(FORMATS),
        time_slots_json=json.dumps(["m"]), eligible=indices_to_blob(eligible), pmf=pmf_to_blob(pmf), policy_pmf=b"",
        chosen_index=pick, offer_id=OFFERS[arm // 2].id if chosen else "", format=FORMATS[arm % 2] if chosen else "",
        time_slot="m" if chosen else "", probability=float(pmf[pick]) if chosen else 1.0,
        policy_version=str(1 + i // 20), exploration="exploit" if chosen else "no_contact", beta=0.0,
        deferred=deferred, learn_due_at=1000.0 + i * 0.37 + 5 if chosen and not deferred else None,
        baseline_json=None, no_contact_reason="" if chosen else "excluded", removed="{}")


def _fill(where) -> None:
    """60 decisions: 50 final (rewarded or defaulted), 4 open, 3 no_contact, 3 deferred never activated."""
    rng = np.random.default_rng(5)
    rows = [_row(i, rng) for i in range(54)] + [_row(54 + i, rng, chosen=False) for i in range(3)] \
        + [_row(57 + i, rng, deferred=True) for i in range(3)]
    with open_log(where, writable=True) as log:
        log.insert_decisions(rows).result(30)
        for i in range(0, 50, 2):
            log.record_reward(f"e{i}", float(rng.random() < 0.4), "", 1001.0 + i * 0.37, lambda c: "first").result(30)
        log.record_reward("e57", 1.0, "", 1001.0, lambda c: "first").result(30)  # deferred, never activated
        due = log.due_for_learning(now=1000.0 + 49 * 0.37 + 5.1, limit=1000)
        log.claim_due(due, 2000.0, DEFAULTS).result(30)


def test_export_and_dataset_on_both_backends(where, tmp_path):
    _fill(where)
    result = export_parquet(where, tmp_path / "out", defaults=DEFAULTS, rows_per_file=16)
    assert result.rows == 60 and len(result.files) == 4
    rows = {r["event_id"]: r for r in pq.read_table(tmp_path / "out").to_pylist()}
    assert [r["seq"] for r in rows.values()] == sorted(r["seq"] for r in rows.values())
    for i in range(50):
        row = rows[f"e{i}"]
        assert row["final"] and row["rewarded"] == (i % 2 == 0)
        assert row["reward"] in (0.0, 1.0) if i % 2 == 0 else row["reward"] == 0.25
    for i in range(50, 54):
        assert rows[f"e{i}"]["reward"] is None and not rows[f"e{i}"]["final"]
    assert rows["e57"]["rewarded"] and rows["e57"]["reward"] is None and not rows["e57"]["activated"]
    assert all(rows[f"e{54 + i}"]["offer_id"] is None for i in range(3))
    assert dict(rows["e7"]["numeric"]) == {"age": 7.0} and dict(rows["e7"]["context"]) == {"segment": "b"}

    direct = load_dataset(where, campaign="default", defaults=DEFAULTS)
    parquet = load_parquet_dataset(tmp_path / "out", campaign="default", defaults=DEFAULTS, chunk=7)
    assert direct.n_events == parquet.n_events == 50 and direct.exclusions == parquet.exclusions
    assert (direct.exclusions.no_contact, direct.exclusions.deferred_not_activated,
            direct.exclusions.not_final) == (3, 3, 4)
    for name in ("action", "reward", "pscore"):
        np.testing.assert_array_equal(getattr(direct.feedback, name), getattr(parquet.feedback, name))
    np.testing.assert_array_equal(direct.logging_pmf.values, parquet.logging_pmf.values)
    np.testing.assert_array_equal(direct.decided_at, parquet.decided_at)
    lengths = direct.logging_pmf.row_lengths
    target = RaggedMatrix(direct.indptr, np.repeat(1.0 / lengths, lengths))
    a = evaluate(direct.feedback, target, estimators=["ipw", "snipw"], n_bootstrap=0, logging_pmf=direct.logging_pmf)
    b = evaluate(parquet.feedback, target, estimators=["ipw", "snipw"], n_bootstrap=0,
                 logging_pmf=parquet.logging_pmf)
    for name in ("ipw", "snipw"):
        assert a[name].value == pytest.approx(b[name].value, abs=1e-9)
    ours = [d for part in parquet.decisions(chunk=9) for d in part]
    theirs = [d for part in direct.decisions(chunk=9) for d in part]
    assert [(d.arm_set, d.context) for d in ours] == [(d.arm_set, d.context) for d in theirs]


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The command line of this source tree (not whichever console script is installed)."""
    return subprocess.run([sys.executable, "-c", "from offerbandit.cli import main; main()", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_the_commands_take_the_log_url_of_either_backend(where, tmp_path):
    _fill(where)
    url = where if isinstance(where, str) else f"sqlite:///{where.resolve()}/decisions.db"
    export = _cli("export", "--log-url", url, "--format", "parquet", "--out", str(tmp_path / "out"))
    assert export.returncode == 0, export.stderr
    assert pq.read_table(tmp_path / "out").num_rows == 60
    dsjson = _cli("export", "--log-url", url, "--format", "dsjson", "--out", str(tmp_path / "log.dsjson"))
    assert dsjson.returncode == 0 and len((tmp_path / "log.dsjson").read_text().splitlines()) == 57
    common = ("eval", "--data-dir", str(tmp_path / "none"), "--policy", "uniform", "--estimator", "ipw",
              "--bootstrap", "0", "--json", "--no-mlflow")
    by_url, by_export = _cli(*common, "--log-url", url), _cli(*common, "--parquet", str(tmp_path / "out"))
    assert by_url.returncode == 0 and by_export.returncode == 0, by_url.stderr + by_export.stderr
    assert json.loads(by_url.stdout)["policies"] == json.loads(by_export.stdout)["policies"]
    exploration = _cli("exploration", "--log-url", url, "--json")
    assert exploration.returncode == 0, exploration.stderr
    assert json.loads(exploration.stdout)["all"]["n_decisions"] == 54  # 60 - 3 no_contact - 3 never activated

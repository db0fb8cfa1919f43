"""The Parquet export of a real server's log: its schema, one row per decision, final rewards, files."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from decision_log import open_log
from decision_log.parquet_export import export_parquet, export_schema, part_files
from offerbandit.errors import InvalidInput
from service.config import parse_config
from tests.conftest import make_request
from tests.offline_eval.test_offline_eval_sqlite import CONFIG, mixed_log

WHEN = pa.timestamp("us", tz="UTC")
EXPECTED_TYPES = {
    "seq": pa.int64(), "event_id": pa.string(), "campaign": pa.string(), "decided_at": WHEN,
    "decided_at_s": pa.float64(),
    "user_key": pa.string(), "policy_version": pa.string(), "exploration": pa.string(),
    "no_contact_reason": pa.string(), "chosen_index": pa.int32(), "offer_id": pa.string(), "format": pa.string(),
    "time_slot": pa.string(), "probability": pa.float64(), "reward": pa.float64(), "rewarded": pa.bool_(),
    "final": pa.bool_(), "learned_at": WHEN, "deferred": pa.bool_(), "activated": pa.bool_(),
    "activated_at": WHEN, "quarantined": pa.bool_(), "skip_learn": pa.bool_(), "pmf": pa.list_(pa.float64()),
    "arm_offer_id": pa.list_(pa.string()), "arm_format": pa.list_(pa.string()),
    "arm_time_slot": pa.list_(pa.string()), "context": pa.map_(pa.string(), pa.string()),
    "numeric": pa.map_(pa.string(), pa.float64()), "offer_set_id": pa.string(), "offer_set": pa.string(),
    "arm_set_id": pa.string(), "customer_features": pa.string(),
}


@pytest.fixture
def logged(start_server):
    return mixed_log(start_server)


def _rows(directory) -> dict[str, dict]:
    return {row["event_id"]: row for row in pq.read_table(directory).to_pylist()}


def test_schema_is_the_documented_one(logged, tmp_path):
    data_dir, _, _ = logged
    result = export_parquet(data_dir, tmp_path / "out")
    for path in result.files:
        schema = pq.read_schema(path)
        assert schema.names == list(EXPECTED_TYPES)
        for name, kind in EXPECTED_TYPES.items():
            assert schema.field(name).type == kind, name
    assert export_schema().names == list(EXPECTED_TYPES)


def test_one_row_per_decision_in_log_order(logged, tmp_path):
    data_dir, _, _ = logged
    result = export_parquet(data_dir, tmp_path / "out")
    table = pq.read_table(tmp_path / "out")
    with open_log(data_dir) as log:
        decisions = list(log.decisions())
        assert result.rows == table.num_rows == log.count() == len(decisions) == 40
    assert table["seq"].to_pylist() == [d.seq for d in decisions]
    rows = _rows(tmp_path / "out")
    for d in decisions:
        row = rows[d.event_id]
        assert row["user_key"] == d.context.user_key and row["campaign"] == d.campaign
        assert row["probability"] == d.probability  # exact
        assert row["pmf"] == d.pmf.tolist()
        assert len(row["arm_offer_id"]) == len(row["arm_format"]) == len(row["arm_time_slot"]) == len(d.pmf)
        assert dict(row["context"]) == dict(d.context.context)
        if d.chosen is None:
            assert row["offer_id"] is None and row["chosen_index"] is None and row["exploration"] == "no_contact"
        else:
            i = row["chosen_index"]
            assert (row["arm_offer_id"][i], row["arm_format"][i], row["arm_time_slot"][i]) == \
                (row["offer_id"], row["format"], row["time_slot"])
            assert row["pmf"][i] == pytest.approx(row["probability"], abs=1e-12)
        assert row["decided_at"].timestamp() == pytest.approx(d.decided_at, abs=1e-6)
        assert row["decided_at_s"] == d.decided_at  # exact
        offers = dict((name, features) for name, features in json.loads(row["offer_set"]))
        assert set(row["arm_offer_id"]) <= set(offers)
    by_arm_set: dict[str, set] = {}
    for row in rows.values():
        key = (row["offer_set"], tuple(row["arm_offer_id"]), tuple(row["arm_format"]), tuple(row["arm_time_slot"]))
        by_arm_set.setdefault(row["arm_set_id"], set()).add(key)
    assert all(len(keys) == 1 for keys in by_arm_set.values())  # one id, one arm set
    assert len({next(iter(keys)) for keys in by_arm_set.values()}) == len(by_arm_set) >= 2  # and back


def test_reward_is_final_or_null_and_rewarded_says_whether_one_arrived(logged, tmp_path):
    data_dir, final, _ = logged
    export_parquet(data_dir, tmp_path / "out", defaults=parse_config(CONFIG).reward_defaults())
    rows = _rows(tmp_path / "out")
    for served in final:  # rewarded, final
        row = rows[served.event_id]
        assert row["final"] and row["rewarded"] and row["reward"] == served.reward and not row["skip_learn"]
    for i in range(4):  # window open, nothing received: not final, null
        row = rows[f"open-{i}"]
        assert not row["final"] and not row["rewarded"] and row["reward"] is None and row["skip_learn"]
    for i in range(2):  # deferred, never activated, a reward received: still not final, so null
        row = rows[f"idle-{i}"]
        assert row["deferred"] and not row["activated"] and row["activated_at"] is None
        assert row["rewarded"] and row["reward"] is None and not row["final"] and row["skip_learn"]
    for i in range(2):
        row = rows[f"shown-{i}"]
        assert row["deferred"] and row["activated"] and row["activated_at"] is not None
    for i in range(5):  # the window closed without one: the campaign's default, not received
        row = rows[f"quick-{i}"]
        assert row["final"] and not row["rewarded"] and row["reward"] == 0.25 and row["learned_at"] is not None


def test_small_files_hold_the_same_rows_and_nothing_else_is_written(logged, tmp_path):
    data_dir, _, _ = logged
    out = tmp_path / "deep" / "out"
    result = export_parquet(data_dir, out, rows_per_file=7)
    assert [p.name for p in sorted(out.iterdir())] == [f"part-{i:05d}.parquet" for i in range(6)]
    assert part_files(out) == result.files
    assert [pq.ParquetFile(p).metadata.num_rows for p in result.files] == [7, 7, 7, 7, 7, 5]
    whole = export_parquet(data_dir, tmp_path / "whole")
    assert len(whole.files) == 1
    assert pq.read_table(out).to_pylist() == pq.read_table(tmp_path / "whole").to_pylist()


def test_memory_is_bounded_by_a_row_group_whatever_the_file_size(logged, tmp_path, monkeypatch):
    import decision_log.parquet_export as module

    data_dir, _, _ = logged
    monkeypatch.setattr(module, "ROW_GROUP_ROWS", 4)
    result = export_parquet(data_dir, tmp_path / "rows", rows_per_file=100)
    (path,) = result.files
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == 40 and meta.num_row_groups == 10
    assert {meta.row_group(i).num_rows for i in range(10)} == {4}
    monkeypatch.setattr(module, "MAX_GROUP_ARMS", 30)  # 12 arms a decision (0 for no_contact)
    result = export_parquet(data_dir, tmp_path / "arms", rows_per_file=100)
    meta = pq.ParquetFile(result.files[0]).metadata
    assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) <= 4
    for i in range(meta.num_row_groups):
        arms = pq.ParquetFile(result.files[0]).read_row_group(i, columns=["pmf"])["pmf"].to_pylist()
        assert sum(len(p) for p in arms[:-1]) < 30  # the group closed once it reached the bound
    assert pq.read_table(tmp_path / "arms").to_pylist() == pq.read_table(tmp_path / "rows").to_pylist()


def test_campaign_filter_and_a_log_url(logged, tmp_path):
    data_dir, _, _ = logged
    result = export_parquet(f"sqlite:///{data_dir.resolve()}/decisions.db", tmp_path / "quick", campaign="quick")
    assert result.rows == 5
    assert set(pq.read_table(tmp_path / "quick")["campaign"].to_pylist()) == {"quick"}


def test_an_empty_log_writes_one_empty_file_with_the_schema(start_server, tmp_path):
    server = start_server(CONFIG)
    server.server.stop(grace=1)
    result = export_parquet(server.data_dir, tmp_path / "out")
    assert result.rows == 0 and len(result.files) == 1
    table = pq.read_table(tmp_path / "out")
    assert table.num_rows == 0 and table.schema.names == list(EXPECTED_TYPES)


def test_out_must_be_new_or_empty(start_server, tmp_path):
    server = start_server(CONFIG)
    server.stub.Decide(make_request(), timeout=10)
    server.server.stop(grace=1)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty") as err:
        export_parquet(server.data_dir, busy)
    assert err.value.field == "out" and [p.name for p in busy.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInput, match="not a directory"):
        export_parquet(server.data_dir, tmp_path / "file")
    with pytest.raises(InvalidInput, match="rows_per_file"):
        export_parquet(server.data_dir, tmp_path / "new", rows_per_file=0)

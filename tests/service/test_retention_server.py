"""``[log] retention_days`` in a running server (issue 18): the background job exports the rows older than
the window to Parquet, deletes exactly those (in bounded batches, while the server keeps deciding) and the
SQLite file shrinks; decisions inside the window, and their rewards, stay."""
from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq

from decision_log import open_log
from offers.v1 import decision_pb2 as pb
from tests.conftest import make_request
from tests.decision_log.test_export_parquet_backends import _row
from tests.waiting import wait_for

OLD = 6000  # decisions from 1970: far outside any window


def _size(data_dir) -> int:
    return sum(os.path.getsize(data_dir / name) for name in ("decisions.db", "decisions.db-wal")
               if (data_dir / name).exists())


def test_retention_deletes_exactly_the_old_rows_exports_them_and_the_file_shrinks(start_server, tmp_path):
    data = tmp_path / "data"
    rng = np.random.default_rng(3)
    with open_log(data, writable=True) as log:
        for start in range(0, OLD, 1000):
            log.insert_decisions([_row(i, rng) for i in range(start, start + 1000)]).result(60)
        for i in range(0, 600, 3):
            log.record_reward(f"e{i}", 1.0, "", 1001.0, lambda c: "first").result(30)
    full = _size(data)
    export = tmp_path / "archive"
    served = start_server(f"""
[privacy]
user_hash_key = "retention-test-key-0123"
[log]
retention_days = 30
retention_interval_seconds = 0.5
retention_batch = 500
retention_export_dir = "{export}"
""", data_dir=data)
    fresh = [served.stub.Decide(make_request(user=f"u{n}"), timeout=10) for n in range(20)]
    for decision in fresh[:5]:
        assert served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=10).accepted
    wait_for(lambda: served.server.retention.last is not None and served.server.retention.last.decisions == 0
             and served.engine.log.count() == 20, timeout=60)
    log = served.engine.log
    assert {d.event_id for d in log.decisions()} == {d.event_id for d in fresh}, "exactly the old rows went"
    assert log.count("rewards") == 5
    archived = pq.read_table(export).to_pylist()
    assert len(archived) == OLD and all(r["decided_at"].year == 1970 for r in archived)
    assert sum(r["rewarded"] for r in archived) == 200
    served.server.stop(grace=1)
    assert _size(data) < full / 4, f"the file shrank: {full} -> {_size(data)} bytes"

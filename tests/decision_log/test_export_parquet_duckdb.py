"""The README's DuckDB query, run as written over a real export (DuckDB is a dev dependency)."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from decision_log.parquet_export import export_parquet
from tests.offline_eval.test_offline_eval_sqlite import mixed_log

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_query() -> str:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)
    (query,) = [b for b in blocks if "read_parquet('export/*.parquet')" in b]
    return query


def test_the_readme_query_runs_over_an_export(start_server, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    data_dir, _, _ = mixed_log(start_server)
    out = tmp_path / "export"
    export_parquet(data_dir, out, rows_per_file=9)
    query = readme_query().replace("'export/*.parquet'", f"'{out}/*.parquet'")
    rows = duckdb.connect().execute(query).fetchall()

    expected: dict[tuple[str, str], list] = defaultdict(list)
    for row in pq.read_table(out).to_pylist():
        if row["campaign"] == "default":
            expected[(row["policy_version"], row["exploration"])].append(row)
    assert [tuple(r[:2]) for r in rows] == sorted(expected)
    assert sum(r[2] for r in rows) == 35  # the default campaign's decisions (the quick campaign's 5 left out)
    for version, kind, decisions, final, mean_reward, response_rate in rows:
        group = expected[(version, kind)]
        rewards = [r["reward"] for r in group if r["reward"] is not None]
        assert decisions == len(group) and final == len(rewards)
        if rewards:
            assert mean_reward == pytest.approx(sum(rewards) / len(rewards))
        else:
            assert mean_reward is None
        assert response_rate == pytest.approx(sum(r["rewarded"] for r in group) / len(group))

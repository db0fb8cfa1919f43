"""``--log-url`` on export, eval and exploration, ``export --format parquet`` and ``eval --parquet``, as a
user runs them (real subprocesses on a real server's log)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.cli.test_cli import run
from tests.offline_eval.test_offline_eval_sqlite import mixed_log


@pytest.fixture
def logged(start_server):
    data_dir, final, _ = mixed_log(start_server)
    return data_dir, f"sqlite:///{data_dir.resolve()}/decisions.db", final


def test_export_parquet_through_a_log_url(logged, tmp_path):
    _, url, _ = logged
    out = tmp_path / "export"
    result = run("export", "--log-url", url, "--format", "parquet", "--out", str(out), "--rows-per-file", "15")
    assert result.returncode == 0, result.stderr
    assert "exported 40 decisions" in result.stderr and "3 Parquet files" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert pq.read_table(out).num_rows == 40
    again = run("export", "--log-url", url, "--format", "parquet", "--out", str(out))
    assert again.returncode != 0 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_export_dsjson_through_a_log_url(logged, tmp_path):
    data_dir, url, _ = logged
    by_url, by_dir = tmp_path / "url.dsjson", tmp_path / "dir.dsjson"
    assert run("export", "--log-url", url, "--format", "dsjson", "--out", str(by_url)).returncode == 0
    assert run("export", "--data-dir", str(data_dir), "--format", "dsjson", "--out", str(by_dir)).returncode == 0
    assert by_url.read_text() == by_dir.read_text() and len(by_url.read_text().splitlines()) == 37


def test_eval_on_a_log_url_and_on_its_parquet_export_agree(logged, tmp_path):
    data_dir, url, _ = logged
    out = tmp_path / "export"
    assert run("export", "--log-url", url, "--format", "parquet", "--out", str(out)).returncode == 0
    common = ("eval", "--data-dir", str(tmp_path / "no-mlflow-here"), "--campaign", "default", "--policy", "uniform",
              "--policy", "best_single_arm", "--estimator", "ipw", "--estimator", "snipw", "--bootstrap", "10",
              "--json", "--no-mlflow")
    by_url = run(*common, "--log-url", url)
    by_parquet = run(*common, "--parquet", str(out))
    by_dir = run(*common[:2], str(data_dir), *common[3:])
    for result in (by_url, by_parquet, by_dir):
        assert result.returncode == 0, result.stderr
    reports = [json.loads(r.stdout) for r in (by_url, by_parquet, by_dir)]
    assert reports[0]["n_events"] == reports[1]["n_events"] == reports[2]["n_events"] == 26
    assert reports[0]["policies"] == reports[1]["policies"] == reports[2]["policies"]
    both = run(*common, "--parquet", str(out), "--log-url", url)
    assert both.returncode != 0 and "alternatives" in both.stderr


def test_exploration_through_a_log_url(logged):
    data_dir, url, _ = logged
    by_url = run("exploration", "--log-url", url, "--json")
    by_dir = run("exploration", "--data-dir", str(data_dir), "--json")
    assert by_url.returncode == 0, by_url.stderr
    assert json.loads(by_url.stdout) == json.loads(by_dir.stdout)
    assert json.loads(by_url.stdout)["all"]["n_decisions"] == 35  # shown: 40 minus 3 no_contact and 2 deferred never activated


@pytest.mark.parametrize("command", [
    ["export", "--format", "parquet", "--out", "{tmp}/x"],
    ["export", "--format", "dsjson", "--out", "{tmp}/x.json"],
    ["eval", "--no-mlflow"],
    ["exploration"],
])
@pytest.mark.parametrize(("url", "needle"), [
    ("mysql://db/log", "unsupported decision log URL"),
    ("decisions.db", "--log-url must be a URL"),
    ("sqlite:///{tmp}/missing.db", "no decision log"),
])
def test_a_bad_log_url_is_one_line_and_nonzero(tmp_path, command, url, needle):
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = run(*args, "--log-url", url.replace("{tmp}", str(tmp_path)))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "x").exists()


def test_eval_parquet_needs_an_export(tmp_path):
    (tmp_path / "empty").mkdir()
    for where in (tmp_path / "empty", tmp_path / "missing"):
        result = run("eval", "--no-mlflow", "--parquet", str(where))
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "not a directory of .parquet files" in result.stderr, result.stderr


def test_export_parquet_needs_an_out_directory(logged):
    _, url, _ = logged
    result = run("export", "--log-url", url, "--format", "parquet")
    assert result.returncode != 0 and "--out DIR" in result.stderr and "Traceback" not in result.stderr

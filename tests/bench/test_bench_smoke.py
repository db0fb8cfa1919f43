"""The benchmark scripts run end to end (``--tiny``) and emit the JSON that ``run_all.py`` renders.

Structure and sanity only (positive rates, ratios in range, a goal's ``met`` agreeing with its
numbers): never speed, which depends on the machine.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("bench_service", "bench_latency", "bench_learning", "bench_habits", "bench_learner", "bench_scaling",
           "bench_pg_log", "bench_shared_log", "bench_log_size")
EXPECTED_GOALS = {
    "bench_service": {"served_vs_naive_vw_text", "served_vs_in_process_vw", "log_writer_vs_raw_executemany",
                      "log_writer_batch_ops_vs_raw_executemany", "latency_unaffected_by_mlflow_down"},
    "bench_latency": {"decide_p99_within_10ms_1_in_flight", "decide_p99_within_25ms_8_in_flight",
                      "stall_within_10ms"},
    "bench_learning": {"learned_vs_best_baseline", "learned_vs_mass_marketing", "individual_learned_vs_best_baseline",
                       "individual_learned_vs_oracle", "individual_learned_vs_per_segment_rules"},
    "bench_habits": {"individual_vs_oracle", "individual_vs_per_segment_rules", "segment_world_no_loss"},
    "bench_scaling": set(),
    "bench_pg_log": {"pg_log_vs_raw_executemany", "pg_log_batch_vs_raw_executemany"},
    "bench_shared_log": {"two_replicas_vs_one", "freshness_within_30s"},
    "bench_learner": {"learner_events_per_s_128_arms"},
    "bench_log_size": {"log_bytes_per_decision"},
}
EXPECTED_TABLES = {"bench_service": 6, "bench_latency": 5, "bench_learning": 4, "bench_habits": 1, "bench_learner": 1,
                   "bench_scaling": 3, "bench_pg_log": 1, "bench_shared_log": 3, "bench_log_size": 3}
#: each script runs once per test session (--tiny), the slowest for about a minute on 2 cores, and a test that
#: needs every script may run the missing ones itself: more than the suite's per-test timeout.
pytestmark = pytest.mark.timeout(900)


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="session")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the whole run: under xdist each worker's basetemp is a child of the run's."""
    base = tmp_path_factory.getbasetemp()
    out = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "bench-smoke"
    out.mkdir(exist_ok=True)
    return out


def script_report(out: Path, name: str, *, wait: bool = True) -> dict | None:
    """``name --tiny``'s JSON, run once per session across the workers: the first to need it runs it holding a
    lock file while others wait (or, ``wait=False``, get None); a failed run is written down, so every test that
    needs it fails with its output."""
    target, failed = out / f"{name}.json", out / f"{name}.failed"
    with open(out / f"{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if failed.exists():
            pytest.fail(failed.read_text(encoding="utf-8"), pytrace=False)
        if not target.exists():
            extra = ["--plot", str(out / "curves.png")] if name == "bench_learning" else []
            try:
                run(str(REPO / "bench" / f"{name}.py"), "--tiny", "--json", str(target), *extra)
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                failed.write_text(f"bench/{name}.py --tiny failed: {exc}", encoding="utf-8")
                raise
    return json.loads(target.read_text(encoding="utf-8"))


@pytest.fixture
def report(bench_out: Path) -> Callable[[str], dict]:
    return lambda name: script_report(bench_out, name)


@pytest.fixture
def reports(bench_out: Path) -> tuple[Path, dict[str, dict]]:
    # the scripts no other worker is running first: this test then waits only for the ones that are
    unclaimed = {name: script_report(bench_out, name, wait=False) for name in SCRIPTS}
    return bench_out, {name: payload or script_report(bench_out, name) for name, payload in unclaimed.items()}


def numbers(table: dict) -> list[float]:
    return [v for row in table["rows"] for v in row if isinstance(v, (int, float)) and not isinstance(v, bool)]


@pytest.mark.parametrize("name", SCRIPTS)
def test_report_has_the_keys_run_all_renders(report, name):
    payload = report(name)
    assert payload["script"] == name and payload["mode"] == "tiny"
    assert {"date", "cores", "python", "versions", "load_average"} <= set(payload["machine"])
    assert payload["wall_s"] > 0
    assert {g["name"] for g in payload["goals"]} == EXPECTED_GOALS[name]
    assert len(payload["tables"]) == EXPECTED_TABLES[name]
    for table in payload["tables"]:
        assert table["title"] and table["rows"]
        assert all(len(row) == len(table["columns"]) for row in table["rows"])
        assert all(math.isfinite(v) and v >= 0 for v in numbers(table))


@pytest.mark.parametrize("name", SCRIPTS)
def test_goals_are_positive_ratios_and_met_agrees(report, name):
    for goal in report(name)["goals"]:
        assert goal["definition"]
        assert math.isfinite(goal["measured"]) and goal["measured"] > 0, goal
        assert goal["met"] == (goal["measured"] >= goal["target"]), goal


def test_service_figures_are_sane(report):
    tables = {t["title"].split(" ")[0]: t for t in report("bench_service")["tables"]}
    served = tables["(a)(b)"]
    assert [row[-1] for row in served["rows"]] == [0] * len(served["rows"])  # no failed calls
    assert all(row[1] > 0 and row[2] > 0 and 0 < row[3] <= row[4] for row in served["rows"])  # p50 <= p99
    log_rows = tables["(c)"]["rows"]
    assert log_rows[0][-1] == 1.0 and all(row[2] > 0 for row in log_rows)


def test_learning_reports_both_worlds_every_policy_and_a_plot(report, bench_out):
    out = bench_out
    summary, per_seed, segment_curves, individual_curves = report("bench_learning")["tables"]
    for world in ("segment", "individual"):
        rows = [row for row in summary["rows"] if row[0] == world]
        policies = [row[1] for row in rows]
        assert len(policies) == 8 and policies[0].startswith("learned"), policies
        assert sum(p.endswith("(reference)") for p in policies) == 4
        oracle = next(row for row in rows if row[1].startswith("oracle"))[3]
        assert all(0 <= row[3] <= oracle + 1e-9 for row in rows)  # last sixth: nothing beats the oracle
        rules = next(row for row in rows if row[1].startswith("per-segment rules"))
        assert rules[-1] == 1.0 and 0 < rules[-2] <= 1.0
        assert {row[4] for row in per_seed["rows"] if row[0] == world} == set(policies[:4])
    assert len(individual_curves["rows"][0]) == len(segment_curves["rows"][0]) == 5
    assert individual_curves["columns"][0] == "decisions per customer"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_covers_every_arm_count_and_log_size(report):
    arms, growth, log = report("bench_scaling")["tables"]
    assert [row[0] for row in arms["rows"]] == [64, 128, 256, 512, 1024]
    assert growth["rows"][0][1:] == [1.0, 1.0]
    sizes = [row[0] for row in log["rows"]]
    assert sizes == sorted(sizes) and len(sizes) >= 2


def test_log_size_compares_the_compact_log_with_the_old_format(report):
    sizes, parts, big = report("bench_log_size")["tables"]
    assert [row[0].split(",")[0] for row in sizes["rows"]] == ["sqlite"] * 3 + ["postgres"]
    assert all(row[2] < row[3] for row in sizes["rows"][:3])  # SQLite: compact below the old format
    assert big["rows"][1][1] < big["rows"][2][1]


def test_run_all_renders_a_readme_from_the_json(reports, tmp_path):
    out, payloads = reports
    readme = tmp_path / "README.md"
    run(str(REPO / "bench" / "run_all.py"), "--reuse", "--tiny", "--out", str(out), "--readme", str(readme))
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks")
    for name, payload in payloads.items():
        for goal in payload["goals"]:
            assert f"`{goal['name']}` ({name})" in text
        for table in payload["tables"]:
            assert table["title"] in text
    assert "## Reproduce" in text and "load average" in text
    summary = json.loads((out / "run_all.json").read_text(encoding="utf-8"))
    assert summary["failures"] == [] and set(summary["results"]) == set(SCRIPTS)
    committed = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))  # beside the README
    assert committed["results"] == summary["results"] and committed["total_s"] == summary["total_s"]


def test_run_all_fails_loudly_without_the_json(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run_all.py"), "--reuse", "--tiny",
                           "--out", str(tmp_path), "--readme", str(tmp_path / "README.md")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "failed: bench_service" in done.stderr

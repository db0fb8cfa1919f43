"""The command line as a user meets it: --help everywhere, one-line errors, DSJSON export."""
from __future__ import annotations

import json
import subprocess

import pytest

from offers.v1 import decision_pb2 as pb
from tests.conftest import OFFERBANDIT, make_request

COMMANDS = ["serve", "export", "demo", "eval", "promote", "rollback", "exploration"]


def run(*args, timeout=120):
    return subprocess.run([OFFERBANDIT, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_help_everywhere(command):
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.parametrize("args,needle", [
    (["serve", "--port", "70000", "--data-dir", "{tmp}"], "--port"),
    (["serve", "--tls-cert", "x.pem", "--data-dir", "{tmp}"], "--tls-key"),
    (["serve", "--config", "{tmp}/missing.toml", "--data-dir", "{tmp}"], "missing.toml"),
    (["serve", "--auth-token-file", "{tmp}/none", "--data-dir", "{tmp}"], "token"),
    (["export", "--data-dir", "{tmp}/empty", "--format", "dsjson", "--out", "{tmp}/x.json"], "no decision log"),
    (["export", "--data-dir", "{tmp}", "--format", "csv", "--out", "{tmp}/x.json"], "dsjson"),
])
def test_user_mistakes_give_one_line_and_nonzero_exit(tmp_path, args, needle):
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert needle in result.stderr, result.stderr


def test_bad_config_is_reported_with_its_field(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[campaigns.default]\nmode = \"sometimes\"\n")
    result = run("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "campaigns.default.mode" in result.stderr


def test_export_dsjson_has_the_vw_fields(start_server, tmp_path):
    served = start_server()
    decided = [served.stub.Decide(make_request(user=f"u{i}", deferred=(i == 3)), timeout=10) for i in range(4)]
    served.stub.Reward(pb.RewardRequest(event_id=decided[0].event_id, value=1.0), timeout=10)
    served.server.stop(grace=1)
    out = tmp_path / "log.dsjson"
    result = run("export", "--data-dir", str(served.data_dir), "--format", "dsjson", "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["EventId"] for r in records] == [d.event_id for d in decided]
    first = records[0]
    for key in ("_label_cost", "_label_probability", "_label_Action", "_labelIndex", "a", "c", "p", "Timestamp"):
        assert key in first
    assert first["_label_cost"] == -1.0 and "_skipLearn" not in first
    assert first["_label_probability"] == decided[0].probability
    assert first["a"][0] == first["_label_Action"] == first["_labelIndex"] + 1
    # float32 entries as logged: each within 2^-24 of its own size, so the sum within 2^-24 of 1
    assert abs(sum(first["p"]) - 1) <= 2.0 ** -24 and len(first["c"]["_multi"]) == len(first["p"])
    assert records[3].get("_skipLearn") is True  # deferred, never activated
    assert records[1].get("_skipLearn") is True  # reward window still open


def test_exploration_report_command_counts_the_log(start_server, tmp_path):
    served = start_server()
    for i in range(12):
        served.stub.Decide(make_request(user=f"e{i % 4}"), timeout=10)
    served.server.stop(grace=1)
    result = run("exploration", "--data-dir", str(served.data_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["all"]
    assert report["n_decisions"] == 12 and report["n_customers"] == 4
    table = run("exploration", "--data-dir", str(served.data_dir), "--by-version")
    assert table.returncode == 0 and "bootstrap" in table.stdout and "share_outside_history" in table.stdout
    daily = run("exploration", "--data-dir", str(served.data_dir), "--every", "1d", "--json")
    assert daily.returncode == 0, daily.stderr
    days = json.loads(daily.stdout)
    assert sum(day["n_decisions"] for day in days.values()) == 12 and all(k.endswith("T00:00Z") for k in days)
    hourly = run("exploration", "--data-dir", str(served.data_dir), "--every", "1h", "--version", "bootstrap")
    assert hourly.returncode == 0 and "period (UTC)" in hourly.stdout and ":00Z" in hourly.stdout
    for args, needle in ((["--every", "1y"], "--every"), (["--every", "1d", "--by-version"], "alternatives"),
                         (["--version", "3"], "--every")):
        bad = run("exploration", "--data-dir", str(served.data_dir), *args)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and needle in bad.stderr, bad.stderr

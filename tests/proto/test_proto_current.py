"""The committed generated code must match what scripts/gen_proto.py makes from proto/ now."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("decision_pb2.py", "decision_pb2.pyi", "decision_pb2_grpc.py")


def test_generated_code_is_current(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)], check=True)
    for name in GENERATED:
        fresh = (tmp_path / "offers" / "v1" / name).read_text()
        committed = (ROOT / "proto" / "offers" / "v1" / name).read_text()
        assert fresh == committed, f"proto/offers/v1/{name} is stale: run `make proto`"


def test_contract_names_are_in_the_proto():
    text = (ROOT / "proto" / "offers" / "v1" / "decision.proto").read_text()
    for name in ("package offers.v1;", "service DecisionService", "rpc Decide(", "rpc DecideBatch(",
                 "rpc Reward(", "rpc Activate(", "string event_id", "map<string, string> context",
                 "map<string, double> numeric", "repeated Offer offers", "repeated string formats",
                 "repeated string time_slots", "bool deferred", "string campaign", "uint32 ranking_limit",
                 "Arm baseline", "double probability", "repeated Arm ranking", "string policy_version",
                 "string exploration", "string reward_id", "bool accepted", "bool duplicate"):
        assert name in text, name

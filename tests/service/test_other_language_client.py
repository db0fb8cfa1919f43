"""A client in another language, built from proto/ alone, runs decide -> reward (examples/node)."""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node"


@pytest.fixture(scope="module")
def node_modules(tmp_path_factory) -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node/npm not installed on this machine: the Node client example cannot run here")
    target = tmp_path_factory.mktemp("node")
    shutil.copy(EXAMPLE / "package.json", target / "package.json")
    result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=target,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return target / "node_modules"


@pytest.mark.slow
def test_node_client_decides_and_rewards(node_modules, server_process, tmp_path):
    server = server_process(data_dir=tmp_path / "data")
    result = subprocess.run(["node", str(EXAMPLE / "client.js"), f"127.0.0.1:{server.port}"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "NODE_PATH": str(node_modules)})
    assert result.returncode == 0, result.stderr
    assert "reward accepted=true duplicate=false" in result.stdout
    event_id = re.search(r"event=(\w+)", result.stdout).group(1)
    assert server.stop() == 0
    con = sqlite3.connect(tmp_path / "data" / "decisions.db")
    row = con.execute("SELECT reward, probability FROM decisions WHERE event_id = ?", (event_id,)).fetchone()
    con.close()
    assert row[0] == 1.0 and 0 < row[1] <= 1

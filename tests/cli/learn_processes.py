"""Real ``serve`` and ``learn`` processes on one log with one shared MLflow registry, for the role tests.

``topology`` gives a :class:`Topology`: the registry (``MLFLOW_TRACKING_URI`` for every process), a
config file each test writes, the log URL (a SQLite file unless the test sets a PostgreSQL one), and
``serve``/``learn`` starting processes that are killed at teardown.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from policy_registry import PolicyRegistry, RegistryConfig
from tests.conftest import OFFERBANDIT, ServerProcess, spawn_server
from tests.fixtures_mlflow import copy_store

__all__ = ["LearnProcess", "Topology", "spawn_learner", "topology"]


@dataclass
class LearnProcess:
    proc: subprocess.Popen
    metrics_url: str
    output: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def scrape(self, name: str) -> float:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as answer:
            text = answer.read().decode()
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        assert match, f"{name} not in the metrics"
        return float(match.group(1))

    def health(self) -> tuple[int, dict]:
        url = self.metrics_url.replace("/metrics", "/healthz")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def spawn_learner(*args: str, env: dict, timeout: float = 90) -> LearnProcess:
    """``offerbandit learn ... --metrics-port 0``; waits for its 'learning from' and 'metrics on' lines."""
    proc = subprocess.Popen([OFFERBANDIT, "learn", *args, "--metrics-port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if not ready:
            continue
        line = proc.stdout.readline()
        seen.append(line)
        if not re.match(r"learning from (\S+)$", line.strip()):
            continue
        seen.append(proc.stdout.readline())  # printed right after it (and maybe already buffered: no select)
        metrics = re.match(r"metrics on (\S+)$", seen[-1].strip())
        if metrics:
            running = LearnProcess(proc, metrics.group(1), seen)
            threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True).start()
            return running
    proc.kill()
    raise AssertionError("learner did not start: " + "".join(seen)[-3000:])


@dataclass
class Topology:
    tmp: Path
    env: dict[str, str]
    registry: PolicyRegistry
    config: Path
    url: str
    started: list[subprocess.Popen] = field(default_factory=list)

    def serve(self, name: str = "replica") -> ServerProcess:
        server = spawn_server(self.tmp / name, "--config", str(self.config), "--log-url", self.url, env=self.env)
        self.started.append(server.proc)
        return server

    def learn(self) -> LearnProcess:
        learner = spawn_learner("--log-url", self.url, "--data-dir", str(self.tmp / "learner"),
                                "--config", str(self.config), env=self.env)
        self.started.append(learner.proc)
        return learner


@pytest.fixture
def topology(tmp_path: Path, mlflow_template_store: Path) -> Iterator[Topology]:
    store = copy_store(mlflow_template_store, tmp_path / "registry")
    (tmp_path / "shared").mkdir()
    running = Topology(tmp=tmp_path, env={"MLFLOW_TRACKING_URI": store.tracking_uri},
                       registry=PolicyRegistry(store), config=tmp_path / "offerbandit.toml",
                       url=f"sqlite:///{tmp_path / 'shared' / 'log.db'}")
    yield running
    for proc in running.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

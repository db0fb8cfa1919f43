"""Shared fixtures: real servers on free loopback ports, real SQLite files, real MLflow stores."""
from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc
from service.config import ServiceConfig, parse_config
from service.server import DecisionServer

with contextlib.suppress(ImportError):
    from tests.fixtures_mlflow import *  # noqa: F401,F403 - the MLflow store fixtures
from tests.postgres import new_postgres_url, postgres_cluster, postgres_url  # noqa: F401,E402 - PostgreSQL fixtures

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"}), ("o3", {"category": "tech"})]
FORMATS = ["sms", "email"]
SLOTS = ["morning", "evening"]
OFFERBANDIT = str(Path(sys.executable).parent / "offerbandit")


def make_request(user: str = "alice", context: dict | None = None, offers=OFFERS, formats=FORMATS,
                 slots=SLOTS, **fields) -> pb.DecideRequest:
    request = pb.DecideRequest(user_id=user, **fields)
    request.context.update(context or {"segment": "young"})
    for oid, feats in offers:
        offer = request.offers.add(id=oid)
        offer.features.update(feats)
    request.formats.extend(formats)
    request.time_slots.extend(slots)
    return request


@dataclass
class RunningServer:
    server: DecisionServer
    channel: grpc.Channel
    stub: pb_grpc.DecisionServiceStub
    data_dir: Path
    address: str

    @property
    def engine(self):
        return self.server.engine


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Factory: ``start_server(config_toml="", **server_kwargs)`` -> RunningServer, stopped at teardown."""
    started: list[RunningServer] = []

    def start(config_toml: str = "", data_dir: Path | None = None, **kwargs) -> RunningServer:
        config = parse_config(config_toml) if config_toml else ServiceConfig()
        directory = data_dir or tmp_path / f"data{len(started)}"
        kwargs.setdefault("start_registry", False)  # MLflow-backed tests turn it on explicitly
        server = DecisionServer(config, directory, host="127.0.0.1", port=0, **kwargs)
        server.start()
        address = f"127.0.0.1:{server.port}"
        channel = grpc.insecure_channel(address) if "tls" not in kwargs else None
        running = RunningServer(server, channel, pb_grpc.DecisionServiceStub(channel) if channel else None,
                                directory, address)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.channel is not None:
            running.channel.close()
        running.server.stop(grace=1)


@pytest.fixture
def served(start_server) -> RunningServer:
    return start_server()


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    port: int
    data_dir: Path
    output: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def spawn_process(args: list[str], ready: str, *, data_dir: Path | None = None, env: dict | None = None,
                  timeout: float = 60) -> ServerProcess:
    """``offerbandit <args>`` as a user runs it; waits for a line matching ``ready`` (its group 1, if any,
    is the port). The rest of its output keeps being collected in ``output``."""
    proc = subprocess.Popen([OFFERBANDIT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    seen: list[str] = []
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            seen.append(line)
            match = re.search(ready, line)
            if match:
                port = int(match.group(1)) if match.groups() else 0
                started = ServerProcess(proc, port, data_dir or Path(), seen)

                def drain() -> None:
                    for rest in proc.stdout:
                        seen.append(rest)

                threading.Thread(target=drain, daemon=True).start()
                return started
    proc.kill()
    raise AssertionError(f"offerbandit {args[0]} did not start: " + "".join(seen)[-2000:])


def spawn_server(data_dir: Path, *extra: str, env: dict | None = None, timeout: float = 60) -> ServerProcess:
    """``offerbandit serve`` as a user runs it; waits for its 'listening on' line."""
    return spawn_process(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data_dir), *extra],
                         r"listening on \S+:(\d+)", data_dir=data_dir, env=env, timeout=timeout)


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator:
    procs: list[ServerProcess] = []

    def start(*extra: str, data_dir: Path | None = None, env: dict | None = None) -> ServerProcess:
        server = spawn_server(data_dir or tmp_path / "data", *extra, env=env)
        procs.append(server)
        return server

    yield start
    for server in procs:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the ``slow`` end-to-end runs first: with ``-n`` workers a minutes-long test dealt out last would
    run alone at the end while the other workers idle. The sort is stable, so every worker collects the same
    order (xdist requires it); without xdist it only changes the order."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

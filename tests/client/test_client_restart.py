"""A decide in flight while ``offerbandit serve`` restarts on the same port succeeds once.

Real server processes, real SQLite log: the client waits for the server to come back (wait_for_ready)
and resends the same event id, so each call is answered and logged exactly once.
"""
from __future__ import annotations

import signal
import sqlite3
import threading
import time

from offerbandit import Client
from tests.conftest import spawn_server

OFFERS = [("o1", {"category": "travel"}), ("o2", {"category": "food"}), ("o3", {"category": "tech"})]
NO_MLFLOW = "[mlflow]\nenabled = false\n"


def _logged(data_dir) -> dict[str, int]:
    con = sqlite3.connect(data_dir / "decisions.db")
    try:
        return dict(con.execute("SELECT event_id, COUNT(*) FROM decisions GROUP BY event_id").fetchall())
    finally:
        con.close()


def _serve(data_dir, config, port: int = 0):
    return spawn_server(data_dir, "--config", str(config), "--port", str(port))


def test_decide_while_the_server_restarts_on_the_same_port_succeeds_once(tmp_path):
    config = tmp_path / "ob.toml"
    config.write_text(NO_MLFLOW)
    data_dir = tmp_path / "data"
    first = _serve(data_dir, config)
    port = first.port
    with Client(f"127.0.0.1:{port}", timeout=60) as client:
        assert client.decide("warmup", offers=OFFERS).event_id  # the channel is connected
        assert first.stop(signal.SIGTERM) == 0
        answers: list = []
        call = threading.Thread(target=lambda: answers.append(client.decide("alice", offers=OFFERS)))
        call.start()
        time.sleep(1.0)
        assert call.is_alive() and not answers  # in flight: waiting for a server
        second = _serve(data_dir, config, port)
        try:
            call.join(60)
            assert not call.is_alive() and len(answers) == 1
            decision = answers[0]
            assert decision.offer_id in {"o1", "o2", "o3"}
        finally:
            assert second.stop() == 0
    logged = _logged(data_dir)
    assert logged[decision.event_id] == 1 and len(logged) == 2  # warm-up + this one, nothing twice


def test_sigkill_mid_burst_every_call_answered_and_logged_once(tmp_path):
    config = tmp_path / "ob.toml"
    config.write_text(NO_MLFLOW)
    data_dir = tmp_path / "data"
    server = _serve(data_dir, config)
    port = server.port
    returned: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    with Client(f"127.0.0.1:{port}", timeout=60) as client:
        def worker(n: int) -> None:
            i = 0
            while not stop.is_set():
                try:
                    decision = client.decide(f"user-{n}-{i}", offers=OFFERS)
                except BaseException as exc:  # noqa: BLE001 - every failure is reported below
                    errors.append(exc)
                    return
                with lock:
                    returned.append(decision.event_id)
                i += 1

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        while len(returned) < 150 and not errors:
            time.sleep(0.02)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        before = len(returned)
        restarted = _serve(data_dir, config, port)
        try:
            deadline = time.monotonic() + 60
            while len(returned) < before + 150 and not errors and time.monotonic() < deadline:
                time.sleep(0.02)
            stop.set()
            for thread in threads:
                thread.join(60)
        finally:
            assert restarted.stop() == 0
    assert not errors, errors[:3]
    assert len(returned) >= before + 150 and len(set(returned)) == len(returned)
    logged = _logged(data_dir)
    assert set(logged) == set(returned)  # nothing logged that no call returned, nothing returned unlogged
    assert set(logged.values()) == {1}

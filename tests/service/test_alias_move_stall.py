"""Decisions never wait for an alias move (issue 15: stalls): a move of ``champion`` -- a promote through
the server's own log, as its checkpointer and guardrail move, or through another process's read-only log,
as the CLI's promote -- is held inside its MLflow ``set_registered_model_alias`` by an event, and meanwhile
decisions and rewards commit through the real server; the move still completes and is followed."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from decision_log import open_log
from offers.v1 import decision_pb2 as pb
from policy_registry import CHAMPION, PolicyRegistry, RegistryConfig
from policy_registry.store import RegistryStore
from tests.conftest import make_request
from tests.fixtures_mlflow import copy_store
from tests.service.test_service_mlflow import FAST, _publish, _version
from tests.waiting import wait_for

T = TypeVar("T")


class HeldStore(RegistryStore):
    """The real MLflow store, except that each alias set waits for ``release`` (after setting ``inside``)."""

    def __init__(self, config: RegistryConfig) -> None:
        super().__init__(config)
        self.inside = threading.Event()
        self.release = threading.Event()

    def call(self, what: str, call: Callable[[], T]) -> T:
        if what == "set_registered_model_alias":
            self.inside.set()
            assert self.release.wait(30), "the test never released the alias move"
        return super().call(what, call)


@pytest.mark.parametrize("ledger", ["server log", "cli log"])
def test_decisions_commit_while_a_champion_move_is_inside_mlflow(start_server, tmp_path, mlflow_template_store,
                                                                 ledger):
    data_dir = tmp_path / "data"
    registry = PolicyRegistry(copy_store(mlflow_template_store, data_dir))
    first = _publish(registry, favour="o2")
    served = start_server(FAST, data_dir=data_dir, start_registry=True)
    wait_for(lambda: _version(served.stub) == first, what="champion to be served")
    second = _publish(registry, favour="o3", aliases=())
    log = served.server.engine.log if ledger == "server log" else open_log(data_dir)
    mover = PolicyRegistry(registry.config, alias_ledger=log)
    held = HeldStore(registry.config)
    mover._store = held  # the registry's own store, wrapped: every MLflow call is real
    results: list[object] = []
    promote = threading.Thread(target=lambda: results.append(mover.promote(
        "default", second, gate=None, force=True, who="ana", why="held in MLflow")))
    promote.start()
    try:
        assert held.inside.wait(20), "the promote never reached MLflow"
        slowest = 0.0
        for i in range(20):
            started = time.perf_counter()
            decision = served.stub.Decide(make_request(user=f"held{i}"), timeout=5)
            served.stub.Reward(pb.RewardRequest(event_id=decision.event_id, value=1.0), timeout=5)
            slowest = max(slowest, time.perf_counter() - started)
            assert decision.policy_version == first  # the move is not visible yet
        assert slowest < 2.0  # none waited for the move (it is held for up to 30 s)
        assert promote.is_alive() and not results
    finally:
        held.release.set()
        promote.join(30)
    assert results and results[0].promoted
    assert registry.resolve("default", CHAMPION) == second
    wait_for(lambda: _version(served.stub) == second, what="the promoted champion to be served")
    moves = served.server.engine.log.alias_moves("default", CHAMPION, ("promote",))
    assert [(m.from_version, m.to_version, m.who) for m in moves] == [(first, second, "ana")]
    if log is not served.server.engine.log:
        log.close()

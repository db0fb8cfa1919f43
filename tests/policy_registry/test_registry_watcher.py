"""RegistryWatcher on a real MLflow store: loads changed aliases, survives failures, recovers."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from offerbandit.errors import InvalidInput, ModelError
from policy_registry import (
    Lineage,
    LoadedPolicy,
    PolicyArtifact,
    PolicyRegistry,
    RegistryConfig,
)
from policy_registry import RegistryWatcher


def artifact(model: bytes, campaign: str = "default") -> PolicyArtifact:
    return PolicyArtifact(
        campaign=campaign, policy_name="vw", model=model, config_toml="epsilon = 0.1\n",
        lineage=Lineage(None, None, None, 0, "git:test"),
    )


class Recorder:
    """on_change that remembers what it got, and refuses models listed in ``refuse``."""

    def __init__(self) -> None:
        self.seen: list[LoadedPolicy] = []
        self.threads: list[str] = []
        self.refuse: set[bytes] = set()
        self.changed = threading.Event()

    def __call__(self, loaded: LoadedPolicy) -> None:
        self.threads.append(threading.current_thread().name)
        if loaded.model in self.refuse:
            raise ModelError(f"cannot deserialise {loaded.model!r}")
        self.seen.append(loaded)
        self.changed.set()

    def summary(self) -> list[tuple[str, str | None, str, bytes]]:
        return [(p.campaign, p.alias, p.version, p.model) for p in self.seen]


def model_file(registry: PolicyRegistry, campaign: str, version: str) -> Path:
    from mlflow import MlflowClient

    uri = registry.config.tracking_uri
    source = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(
        registry.model_name(campaign), version
    ).source
    return Path(unquote(urlparse(source).path)) / "model.bin"


def test_poll_loads_changed_aliases_only(mlflow_store) -> None:
    publisher = PolicyRegistry(mlflow_store.config)
    recorder = Recorder()
    watcher = RegistryWatcher(
        lambda: PolicyRegistry(mlflow_store.config), ["default", "sms"], recorder, poll_s=60
    )
    assert watcher.poll_once()  # nothing published yet: nothing to load, not an error
    assert recorder.seen == [] and watcher.status().healthy and watcher.status().current == ()

    publisher.publish(artifact(b"d1"))
    publisher.publish(artifact(b"s1", campaign="sms"), aliases=("champion", "challenger"))
    assert watcher.poll_once()
    assert sorted(recorder.summary()) == [
        ("default", "champion", "1", b"d1"), ("sms", "challenger", "1", b"s1"), ("sms", "champion", "1", b"s1"),
    ]
    assert watcher.poll_once()
    assert len(recorder.seen) == 3  # unchanged aliases are not reloaded

    publisher.publish(artifact(b"d2"))
    assert watcher.poll_once()
    assert recorder.summary()[-1] == ("default", "champion", "2", b"d2")
    status = watcher.status()
    assert status.version_of("default") == "2" and status.version_of("sms", "challenger") == "1"
    assert status.last_error is None and status.consecutive_failures == 0 and status.next_poll_in_s == 60


def test_corrupt_artefact_keeps_last_good_version_then_recovers(mlflow_store) -> None:
    publisher = PolicyRegistry(mlflow_store.config)
    recorder = Recorder()
    watcher = RegistryWatcher(
        lambda: PolicyRegistry(mlflow_store.config), ["default"], recorder,
        aliases=("champion",), poll_s=30, backoff_initial_s=2, backoff_max_s=5,
    )
    publisher.publish(artifact(b"good-1"))
    assert watcher.poll_once()

    publisher.publish(artifact(b"good-2"))
    target = model_file(publisher, "default", "2")
    target.write_bytes(b"bit-rot")
    assert not watcher.poll_once()
    status = watcher.status()
    assert status.version_of("default") == "1"
    assert "ModelError" in status.last_error and "checksum" in status.last_error
    assert [(p.campaign, p.alias, p.version) for p in status.problems] == [("default", "champion", "2")]
    assert (status.consecutive_failures, status.next_poll_in_s) == (1, 2)
    assert not watcher.poll_once()
    assert (watcher.status().consecutive_failures, watcher.status().next_poll_in_s) == (2, 4)
    assert not watcher.poll_once()
    assert watcher.status().next_poll_in_s == 5  # capped at backoff_max_s
    assert [p.model for p in recorder.seen] == [b"good-1"]

    target.write_bytes(b"good-2")
    assert watcher.poll_once()
    status = watcher.status()
    assert status.version_of("default") == "2" and status.last_error is None and status.problems == ()
    assert status.last_ok_time is not None and status.last_ok_time >= status.last_error_time
    assert [p.model for p in recorder.seen] == [b"good-1", b"good-2"]


def test_a_version_refused_by_on_change_is_retried_until_accepted(mlflow_store) -> None:
    publisher = PolicyRegistry(mlflow_store.config)
    recorder = Recorder()
    watcher = RegistryWatcher(lambda: PolicyRegistry(mlflow_store.config), ["default"], recorder)
    publisher.publish(artifact(b"ok"))
    publisher.publish(artifact(b"incompatible"), aliases=("challenger",))
    recorder.refuse.add(b"incompatible")
    assert not watcher.poll_once()
    status = watcher.status()
    assert status.version_of("default", "champion") == "1"
    assert status.version_of("default", "challenger") is None
    assert "cannot deserialise" in status.last_error
    recorder.refuse.clear()
    assert watcher.poll_once()
    assert watcher.status().version_of("default", "challenger") == "2"


@pytest.mark.parametrize("breakage", ["path_under_a_file", "factory_raises"])
def test_unreachable_store_is_reported_with_backoff_and_never_raises(tmp_path: Path, breakage: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = RegistryConfig(tracking_uri=f"sqlite:///{blocker}/mlflow.db", artifact_root=str(tmp_path / "a"))

    def factory() -> PolicyRegistry:
        if breakage == "factory_raises":
            raise ConnectionError("mlflow.internal: connection refused")
        return PolicyRegistry(config)

    recorder = Recorder()
    watcher = RegistryWatcher(factory, ["default"], recorder, backoff_initial_s=1, backoff_max_s=8)
    delays = []
    for _ in range(5):
        assert watcher.poll_once() is False
        delays.append(watcher.status().next_poll_in_s)
    assert delays == [1, 2, 4, 8, 8]
    status = watcher.status()
    expected = "RegistryUnavailable" if breakage == "path_under_a_file" else "connection refused"
    assert expected in status.last_error
    assert status.last_ok_time is None and not status.healthy and recorder.seen == []


def test_thread_loads_in_the_background_and_stops(mlflow_store) -> None:
    PolicyRegistry(mlflow_store.config).publish(artifact(b"bg"))
    recorder = Recorder()
    watcher = RegistryWatcher(lambda: PolicyRegistry(mlflow_store.config), ["default"], recorder, poll_s=0.05)
    watcher.start()
    try:
        assert watcher.wait_for_first_poll(timeout_s=60)
        assert recorder.changed.wait(timeout=60)
        assert watcher.status().running
        with pytest.raises(RuntimeError):
            watcher.start()
    finally:
        watcher.stop(timeout_s=30)
    assert not watcher.status().running
    assert recorder.threads == ["registry-watcher"]
    assert recorder.summary() == [("default", "champion", "1", b"bg")]


def test_first_mlflow_import_happens_in_the_watcher_thread(mlflow_template_store: Path, tmp_path: Path) -> None:
    script = f"""
import importlib.abc, sys, threading
importers = []
class Spy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "mlflow":
            importers.append(threading.current_thread().name)
        return None
sys.meta_path.insert(0, Spy())
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from policy_registry import PolicyRegistry
from tests.fixtures_mlflow import copy_store
from policy_registry import RegistryWatcher
config = copy_store({str(mlflow_template_store)!r}, {str(tmp_path / "data")!r})
watcher = RegistryWatcher(lambda: PolicyRegistry(config), ["default"], lambda loaded: None)
watcher.start()
assert watcher.wait_for_first_poll(120)
watcher.stop()
print(importers, watcher.status().last_error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['registry-watcher'] None"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"campaigns": []}, "campaigns"),
        ({"campaigns": "default"}, "campaigns"),
        ({"campaigns": ["bad name"]}, "campaign"),
        ({"aliases": ()}, "aliases"),
        ({"aliases": ("latest",)}, "alias"),
        ({"on_change": None}, "on_change"),
        ({"registry_factory": "registry"}, "registry_factory"),
        ({"poll_s": 0}, "poll_s"),
        ({"poll_s": float("nan")}, "poll_s"),
        ({"full_poll_s": 0}, "full_poll_s"),
        ({"changes": 3}, "changes"),
        ({"backoff_initial_s": -1}, "backoff_initial_s"),
        ({"backoff_max_s": 0.5, "backoff_initial_s": 1}, "backoff_max_s"),
    ],
)
def test_invalid_watcher_arguments(changes: dict, field: str) -> None:
    arguments = {"registry_factory": lambda: None, "campaigns": ["default"], "on_change": lambda p: None, **changes}
    with pytest.raises(InvalidInput) as caught:
        RegistryWatcher(**arguments)
    assert caught.value.field == field


def test_with_a_log_mark_mlflow_is_asked_only_when_the_log_records_a_move(mlflow_store, tmp_path: Path) -> None:
    """The watcher follows the log's alias-move mark: a version aliased behind offerbandit's back (no ledger,
    as in the MLflow UI) waits for the full poll, a move recorded in the log is followed at the next poll,
    and forget / request_poll / an unreadable mark always ask MLflow."""
    from decision_log import open_log

    log = open_log(tmp_path / "log", writable=True)
    try:
        recorded = PolicyRegistry(mlflow_store.config, alias_ledger=log)  # offerbandit's movers record the move
        behind_the_back = PolicyRegistry(mlflow_store.config)
        recorder = Recorder()
        marks: list[object] = []

        def mark() -> object:
            marks.append(None)
            return log.alias_move_mark()

        watcher = RegistryWatcher(lambda: PolicyRegistry(mlflow_store.config), ["default"], recorder, poll_s=60,
                                  changes=mark, full_poll_s=3600, aliases=("champion",))
        assert watcher.poll_once() and recorder.summary() == []  # the first poll always asks MLflow
        first = recorded.publish(artifact(b"d1"))
        assert watcher.poll_once() and recorder.summary() == [("default", "champion", first, b"d1")]

        hidden = behind_the_back.publish(artifact(b"d2"))
        assert watcher.poll_once() and len(recorder.seen) == 1  # the log records no move: MLflow not asked
        assert watcher.status().healthy and watcher.status().version_of("default") == first
        watcher.request_poll()  # an explicit request asks MLflow whatever the log says
        assert watcher.poll_once() and recorder.summary()[-1] == ("default", "champion", hidden, b"d2")

        watcher.forget("default")
        assert watcher.poll_once() and len(recorder.seen) == 3  # forgotten: handed over again

        back = recorded.publish(artifact(b"d3"))
        assert watcher.poll_once() and recorder.summary()[-1] == ("default", "champion", back, b"d3")
        assert len(marks) == 6  # the mark is read at every poll

        now = [1000.0]
        quick = RegistryWatcher(lambda: PolicyRegistry(mlflow_store.config), ["default"], Recorder(), poll_s=60,
                                changes=log.alias_move_mark, full_poll_s=30, aliases=("champion",),
                                clock=lambda: now[0])
        assert quick.poll_once()
        later = behind_the_back.publish(artifact(b"d4"))
        now[0] += 29.0
        assert quick.poll_once() and quick.status().version_of("default") == back  # within full_poll_s
        now[0] += 1.0
        assert quick.poll_once() and quick.status().version_of("default") == later  # the full poll sees it
    finally:
        log.close()

    unreadable = Recorder()

    def broken_mark() -> object:
        raise OSError("log gone")

    watcher = RegistryWatcher(lambda: PolicyRegistry(mlflow_store.config), ["default"], unreadable, poll_s=60,
                              changes=broken_mark, full_poll_s=3600, aliases=("champion",))
    assert watcher.poll_once() and watcher.poll_once()
    assert unreadable.summary()[-1][2] == later  # without a mark every poll asks MLflow

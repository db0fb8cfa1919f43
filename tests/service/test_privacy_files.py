"""Files under the data dir are private and the user-hash key is checked (issue 14 items 6 and 7):
modes after a real server ran (as a process, and in-process under a permissive umask), secret.key
created atomically and fsynced, empty/short keys and a readable secret.key refused with one line."""
from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from offerbandit.errors import InvalidInput
from service.keys import ENV_KEY, SECRET_FILE, load_keys
from tests.conftest import OFFERBANDIT, make_request


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def no_env_key(monkeypatch):
    monkeypatch.delenv(ENV_KEY, raising=False)


@pytest.mark.slow
def test_serve_process_creates_only_private_files(server_process, tmp_path, permissive_umask, no_env_key):
    import grpc

    from offers.v1 import decision_pb2_grpc as pb_grpc

    data_dir = tmp_path / "fresh" / "data"
    server = server_process(data_dir=data_dir)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        for i in range(5):
            pb_grpc.DecisionServiceStub(channel).Decide(make_request(user=f"u{i}"), timeout=10)
        db = data_dir / "decisions.db"
        assert (data_dir / "decisions.db-wal").exists() and (data_dir / "decisions.db-shm").exists()
        assert mode(data_dir) == 0o700
        for name in ("decisions.db", "decisions.db-wal", "decisions.db-shm", SECRET_FILE):
            assert mode(data_dir / name) == 0o600, name
        # The umask covers everything else the server writes (MLflow's store and artefacts included).
        for path in data_dir.rglob("*"):
            assert mode(path) & 0o077 == 0, (path, oct(mode(path)))
    assert server.stop() == 0
    assert mode(db) == 0o600


def test_in_process_server_modes_hold_under_a_permissive_umask(start_server, tmp_path, permissive_umask,
                                                               no_env_key):
    served = start_server(data_dir=tmp_path / "inproc")
    served.stub.Decide(make_request(), timeout=10)
    assert mode(tmp_path / "inproc") == 0o700
    for name in ("decisions.db", "decisions.db-wal", "decisions.db-shm", SECRET_FILE):
        assert mode(tmp_path / "inproc" / name) == 0o600, name


def test_a_loose_existing_log_is_tightened(start_server, tmp_path, permissive_umask):
    first = start_server(data_dir=tmp_path / "d")
    first.stub.Decide(make_request(), timeout=10)
    first.server.stop(grace=1)
    (tmp_path / "d" / "decisions.db").chmod(0o644)
    start_server(data_dir=tmp_path / "d")
    assert mode(tmp_path / "d" / "decisions.db") == 0o600


def test_secret_key_is_created_private_fsynced_and_stable(tmp_path, monkeypatch, no_env_key):
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    data_dir = tmp_path / "keys"
    keys = load_keys(data_dir)
    secret = data_dir / SECRET_FILE
    assert mode(secret) == 0o600 and mode(data_dir) == 0o700
    assert len(secret.read_text().strip()) == 64
    assert any(Path(p).name.startswith(f".{SECRET_FILE}.") for p in synced), synced  # the file, before linking
    assert str(data_dir) in synced  # the directory entry
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no temporary left behind
    assert load_keys(data_dir) == keys


def test_concurrent_first_starts_agree_on_one_key(tmp_path, no_env_key):
    barrier = threading.Barrier(8)
    results = []

    def start():
        barrier.wait()
        results.append(load_keys(tmp_path / "race"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1


@pytest.mark.parametrize("content,file_mode,message", [
    ("", 0o600, "is empty"),
    ("\n  \n", 0o600, "is empty"),
    ("short-key", 0o600, "has 9 characters"),
    ("0123456789abcdef0123", 0o640, "chmod 600"),
    ("0123456789abcdef0123", 0o604, "chmod 600"),
])
def test_bad_secret_key_files_are_refused(tmp_path, no_env_key, content, file_mode, message):
    (tmp_path / SECRET_FILE).write_text(content)
    (tmp_path / SECRET_FILE).chmod(file_mode)
    with pytest.raises(InvalidInput) as err:
        load_keys(tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_symlinked_secret_key_is_refused(tmp_path, no_env_key):
    target = tmp_path / "elsewhere"
    target.write_text("0123456789abcdef0123")
    target.chmod(0o600)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / SECRET_FILE).symlink_to(target)
    with pytest.raises(InvalidInput):
        load_keys(tmp_path / "d")


@pytest.mark.parametrize("configured,env,message", [
    ("too-short", None, "user_hash_key has 9 characters"),
    ("", "", f"${ENV_KEY} is empty"),
    ("", "fifteen-chars!!", f"${ENV_KEY} has 15 characters"),
])
def test_short_configured_or_environment_keys_are_refused(tmp_path, monkeypatch, configured, env, message):
    if env is None:
        monkeypatch.delenv(ENV_KEY, raising=False)
    else:
        monkeypatch.setenv(ENV_KEY, env)
    with pytest.raises(InvalidInput) as err:
        load_keys(tmp_path, configured)
    assert message in str(err.value)
    assert not (tmp_path / SECRET_FILE).exists()


def test_sixteen_characters_are_enough(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_KEY, "x" * 16)
    assert load_keys(tmp_path).user_key("alice") == load_keys(tmp_path / "other").user_key("alice")


def test_serve_refuses_an_empty_secret_key_with_one_line(tmp_path, no_env_key):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / SECRET_FILE).write_text("")
    (data_dir / SECRET_FILE).chmod(0o600)
    done = subprocess.run([OFFERBANDIT, "serve", "--port", "0", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != ENV_KEY})
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "secret.key is empty" in lines[0], done.stderr
    assert "Traceback" not in done.stderr

"""A real PostgreSQL for the tests: one cluster per test session (per xdist worker), one fresh database per test.

The cluster is made with ``initdb`` in a temporary directory and started with ``pg_ctl`` on 127.0.0.1 and a
free port (socket in that directory too, trust authentication for local connections, fsync left on: the
tests check durability). PostgreSQL refuses to run as root, so when the tests run as root (CI does) every
server command runs as the ``postgres`` system user (``runuser -u postgres --``) and the directory is
chowned to it. Debian keeps ``initdb`` off PATH: it is looked up on PATH and under
``/usr/lib/postgresql/*/bin``; when there is none the PostgreSQL tests *fail* (CI must run them; ``.ci/run``
installs Debian's ``postgresql`` first).

Fixtures:
- ``postgres_cluster`` (session): the running `PostgresCluster` (``stop``/``start``/``restart`` for fault tests);
- ``postgres_url`` (function): ``postgresql://postgres@127.0.0.1:PORT/DB`` of a fresh database cloned from a
  template that already holds the decision log's schema;
- ``new_postgres_url`` (function): a factory ``new_postgres_url(migrated=True)`` for tests that need more than
  one database, or an empty one.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

TEMPLATE = "offerbandit_template"


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH first, then Debian's versioned directories)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.parent.name.split(".")])
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """A throwaway PostgreSQL cluster run by this test session."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="offerbandit-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count()
        self._lock = threading.Lock()
        self._template_ready = False
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self._start_on_a_free_port()

    def _start_on_a_free_port(self, attempts: int = 3) -> None:
        # The port is free when picked and bound by PostgreSQL a moment later: under xdist other workers (and
        # their servers on port 0) bind ports in between, so a lost race picks another port.
        for attempt in range(attempts):
            try:
                self.start()
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.port = _free_port()

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as_postgres, str(self.bin_dir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=on "
                   "-c max_connections=300 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "-t",
                  "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would, no shutdown checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def _admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def _ensure_template(self) -> None:
        with self._lock:
            if self._template_ready:
                return
            from decision_log.postgres.schema import migrate_url
            self._admin(f"CREATE DATABASE {TEMPLATE}")
            migrate_url(self.url(TEMPLATE), create=True)
            self._template_ready = True

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database: a copy of the migrated template, or empty (``migrated=False``)."""
        name = f"t{os.getpid()}_{next(self._names)}"
        if migrated:
            self._ensure_template()
            self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        else:
            self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        try:
            self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
        except Exception:  # noqa: BLE001 - clean-up only; the cluster goes away at session end
            pass

    def close(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: no initdb on PATH or under /usr/lib/postgresql/*/bin "
                    "(apt-get install postgresql; .ci/run does it)", pytrace=False)
    cluster = PostgresCluster(bin_dir)
    yield cluster
    cluster.close()


@pytest.fixture
def new_postgres_url(postgres_cluster: PostgresCluster) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def new(*, migrated: bool = True) -> str:
        made.append(postgres_cluster.new_database(migrated=migrated))
        return made[-1]

    yield new
    for url in made:
        postgres_cluster.drop_database(url)


@pytest.fixture
def postgres_url(new_postgres_url: Callable[..., str]) -> str:
    return new_postgres_url()

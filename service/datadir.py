"""The data directory's permissions: what the server creates under it is readable by its owner only.

``offerbandit serve`` sets the process umask to 077 before it creates anything (so MLflow's store and
every later file are private too); :func:`prepare_data_dir` makes the modes hold whatever the umask:
the directory is created 0700 and the decision log is created 0600 before SQLite opens it (SQLite gives
its ``-wal`` and ``-shm`` files the database file's mode). A log file left group- or world-readable
by an earlier version is tightened to 0600, with a warning.
"""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_UMASK", "prepare_data_dir"]

PRIVATE_UMASK = 0o077
log = logging.getLogger("offerbandit.datadir")


def _tighten(path: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o600)
        log.warning("%s was readable by group or others (mode %04o); now 0600", path, stat.S_IMODE(info.st_mode))


def prepare_data_dir(data_dir: Path, log_file: Path | None) -> Path:
    """Create ``data_dir`` (0700) and the SQLite log file ``log_file`` (0600) if missing; tighten a loose one.

    ``log_file`` None: the log is not a file this process creates (PostgreSQL, or ``offerbandit learn``,
    which needs an existing log)."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(mode=0o700, exist_ok=True)
    elif data_dir.is_dir() and data_dir.stat().st_mode & 0o077:
        log.warning("data directory %s is accessible by group or others; the files in it are 0600", data_dir)
    if log_file is None:
        return data_dir
    db = Path(log_file)
    try:
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            _tighten(path)
    return data_dir

"""The one learner of a SQLite log: an exclusive ``flock`` on ``<log file>.learner`` beside it.

The kernel releases the lock when the process dies, even by SIGKILL, so a restarted learner never finds
a stale one; a second learner on the same file refuses at once.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from offerbandit.errors import InvalidInput

__all__ = ["FileLock", "learner_lock"]


class FileLock:
    """Held for as long as this process holds the file open."""

    def held(self) -> bool:
        return True


@contextlib.contextmanager
def learner_lock(log_file: Path) -> Iterator[FileLock]:
    fd = os.open(f"{log_file}.learner", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidInput(f"another offerbandit learn is learning from sqlite:///{Path(log_file).resolve()}: "
                               "one learner per log", field="log-url") from None
        yield FileLock()
    finally:
        os.close(fd)

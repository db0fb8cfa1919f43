"""Server secrets: the key that hashes user ids and the key that seeds each decision's draw.

Both derive from one secret: the configured key, else $OFFERBANDIT_USER_HASH_KEY, else a random key
generated once into ``<data-dir>/secret.key``, so hashes stay stable across restarts. Every source
must hold at least :data:`MIN_KEY_LENGTH` characters (an empty key would hash with a publicly known
key). ``secret.key`` is created atomically (written to a private temporary file, fsynced, linked into
place, the directory fsynced), mode 0600; an existing one that group or others may read is refused,
like OpenSSH refuses a private key with loose permissions: the key is as sensitive as the user ids.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from offerbandit.errors import InvalidInput
from service.config import MIN_KEY_LENGTH

__all__ = ["ENV_KEY", "SECRET_FILE", "ServerKeys", "load_keys"]

ENV_KEY = "OFFERBANDIT_USER_HASH_KEY"
SECRET_FILE = "secret.key"


@dataclass(frozen=True)
class ServerKeys:
    user_hash_key: bytes
    seed_key: bytes

    def user_key(self, user_id: str) -> str:
        """Keyed hash of a user id; the clear id is never stored."""
        return hmac.new(self.user_hash_key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    @classmethod
    def from_secret(cls, secret: bytes) -> "ServerKeys":
        derive = lambda label: hmac.new(secret, label, hashlib.sha256).digest()  # noqa: E731
        return cls(user_hash_key=derive(b"offerbandit/user-id/v1"), seed_key=derive(b"offerbandit/draw-seed/v1"))


def _checked(secret: str, source: str, field: str) -> bytes:
    if len(secret) < MIN_KEY_LENGTH:
        what = "is empty" if not secret else f"has {len(secret)} characters"
        raise InvalidInput(f"{source} {what}; a user-hash key needs at least {MIN_KEY_LENGTH}", field=field)
    return secret.encode("utf-8")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_secret(path: Path) -> None:
    """Write a new random key to ``path`` unless one appears there first (another process)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic, and never replaces a key another process just wrote
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _read_secret(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field="secret.key") from exc
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{path} is not a regular file", field="secret.key")
        if info.st_mode & 0o077:
            raise InvalidInput(f"{path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                               f"run: chmod 600 {path}", field="secret.key")
        try:
            return handle.read().strip()
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{path} is not UTF-8 text", field="secret.key") from exc


def load_keys(data_dir: Path, configured: str = "") -> ServerKeys:
    """The server's keys from the configured key, else $OFFERBANDIT_USER_HASH_KEY, else ``secret.key``."""
    if configured:
        return ServerKeys.from_secret(_checked(configured, "[privacy] user_hash_key", "privacy.user_hash_key"))
    if ENV_KEY in os.environ:
        return ServerKeys.from_secret(_checked(os.environ[ENV_KEY], f"${ENV_KEY}", ENV_KEY))
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    return ServerKeys.from_secret(_checked(_read_secret(path), str(path), "secret.key"))

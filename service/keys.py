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

__all__ = ["ENV_KEY", "ENV_PREVIOUS_KEYS", "SECRET_FILE", "ServerKeys", "load_existing_keys", "load_keys"]

ENV_KEY = "OFFERBANDIT_USER_HASH_KEY"
ENV_PREVIOUS_KEYS = "OFFERBANDIT_PREVIOUS_USER_HASH_KEYS"  # comma-separated, newest first
SECRET_FILE = "secret.key"
_KEY_CHECK = b"offerbandit/key-check"


def _derive(secret: bytes, label: bytes) -> bytes:
    return hmac.new(secret, label, hashlib.sha256).digest()


def _hash(key: bytes, user_id: str) -> str:
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class ServerKeys:
    """``user_hash_key`` hashes new decisions' user ids; ``previous_user_hash_keys`` (newest first) are still
    looked up (caps, history, erase, user-data) until the rows they hashed aged out; ``seed_key`` seeds draws
    and holdout assignment and comes from the oldest listed key, so a rotation changes neither."""

    user_hash_key: bytes
    seed_key: bytes
    previous_user_hash_keys: tuple[bytes, ...] = ()

    def user_key(self, user_id: str) -> str:
        """Keyed hash of a user id under the current key; the clear id is never stored."""
        return _hash(self.user_hash_key, user_id)

    def user_keys(self, user_id: str) -> tuple[str, ...]:
        """The user id's keyed hash under every listed key, current first (what look-ups match)."""
        return tuple(_hash(key, user_id) for key in (self.user_hash_key, *self.previous_user_hash_keys))

    def key_checks(self) -> tuple[tuple[str, str], ...]:
        """``(key_id, HMAC(key, "offerbandit/key-check"))`` of every listed key, current first: what the log
        registers, so a process with another key is refused and the keys themselves are never stored."""
        checks = []
        for key in (self.user_hash_key, *self.previous_user_hash_keys):
            check = hmac.new(key, _KEY_CHECK, hashlib.sha256).hexdigest()
            checks.append((check[:16], check))
        return tuple(checks)

    @property
    def key_id(self) -> str:
        """The current key's id (``decisions.key_id``, ``log_keys.key_id``)."""
        return self.key_checks()[0][0]

    @classmethod
    def from_secret(cls, secret: bytes, previous: tuple[bytes, ...] = ()) -> "ServerKeys":
        oldest = previous[-1] if previous else secret
        return cls(user_hash_key=_derive(secret, b"offerbandit/user-id/v1"),
                   seed_key=_derive(oldest, b"offerbandit/draw-seed/v1"),
                   previous_user_hash_keys=tuple(_derive(p, b"offerbandit/user-id/v1") for p in previous))


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


def _previous(configured: tuple[str, ...], source: str, field: str) -> tuple[bytes, ...]:
    return tuple(_checked(key, f"{source}[{i}]", f"{field}[{i}]") for i, key in enumerate(configured))


def _env_previous() -> tuple[bytes, ...]:
    texts = tuple(t.strip() for t in os.environ.get(ENV_PREVIOUS_KEYS, "").split(",") if t.strip())
    return _previous(texts, f"${ENV_PREVIOUS_KEYS}", ENV_PREVIOUS_KEYS)


def load_keys(data_dir: Path, configured: str = "", previous: tuple[str, ...] = (), *,
              create: bool = True) -> ServerKeys:
    """The server's keys from the configured key, else $OFFERBANDIT_USER_HASH_KEY, else ``secret.key`` (its
    first line; further lines are previous keys). Previous keys: ``[privacy] previous_user_hash_keys``, else
    $OFFERBANDIT_PREVIOUS_USER_HASH_KEYS. ``create`` False: a missing key is an error, never generated."""
    if configured:
        return ServerKeys.from_secret(_checked(configured, "[privacy] user_hash_key", "privacy.user_hash_key"),
                                      _previous(previous, "[privacy] previous_user_hash_keys",
                                                "privacy.previous_user_hash_keys") or _env_previous())
    if ENV_KEY in os.environ:
        return ServerKeys.from_secret(_checked(os.environ[ENV_KEY], f"${ENV_KEY}", ENV_KEY),
                                      _previous(previous, "[privacy] previous_user_hash_keys",
                                                "privacy.previous_user_hash_keys") or _env_previous())
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        if not create:
            raise InvalidInput(f"no user-hash key: set [privacy] user_hash_key or ${ENV_KEY}, or give the "
                               f"--data-dir whose {SECRET_FILE} the server made ({path} does not exist)",
                               field="privacy.user_hash_key")
        _create_secret(path)
    lines = [line.strip() for line in _read_secret(path).splitlines() if line.strip()] or [""]
    return ServerKeys.from_secret(_checked(lines[0], str(path), "secret.key"),
                                  _previous(tuple(lines[1:]), str(path), "secret.key")
                                  or _previous(previous, "[privacy] previous_user_hash_keys",
                                               "privacy.previous_user_hash_keys") or _env_previous())


def load_existing_keys(data_dir: Path, configured: str = "", previous: tuple[str, ...] = ()) -> ServerKeys:
    """`load_keys` for tools (erase, user-data): never creates a ``secret.key``."""
    return load_keys(data_dir, configured, previous, create=False)

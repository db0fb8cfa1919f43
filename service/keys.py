"""Server secrets: the key that hashes user ids and the key that seeds each decision's draw.

Both derive from one secret: the configured key, else $OFFERBANDIT_USER_HASH_KEY, else a random key
generated once into ``<data-dir>/secret.key`` (mode 0600), so hashes stay stable across restarts.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

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


def load_keys(data_dir: Path, configured: str = "") -> ServerKeys:
    secret = configured or os.environ.get(ENV_KEY, "")
    if secret:
        return ServerKeys.from_secret(secret.encode("utf-8"))
    path = Path(data_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return ServerKeys.from_secret(path.read_text().strip().encode("utf-8"))

"""The last good champion of each campaign, cached under the data dir.

Written whenever a champion version is loaded or published, so a server that starts while MLflow is
unreachable serves that version (caught up on what the log learned after it) instead of the untrained
bootstrap policy. One file per campaign, ``<data-dir>/models/<campaign>.model``: a one-line JSON header
(version, learn_seq, policy name, registered model, sha256 of the model) and the model bytes; written
to a temporary file, fsynced and renamed, so a reader sees the old file or the new one, never a torn one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CachedModel", "ModelCache"]

log = logging.getLogger("offerbandit.registry")
_FORMAT = "offerbandit-model-cache/1"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class CachedModel:
    """A champion version as it was loaded or published: its bytes and the learn_seq it includes."""

    campaign: str
    version: str
    learn_seq: int
    policy_name: str
    registered_model: str
    model: bytes


class ModelCache:
    """Reads and writes the cached champion of each campaign under ``<data_dir>/models``."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / "models"

    def path(self, campaign: str) -> Path:
        if not _SAFE.match(campaign):
            raise ValueError(f"campaign name {campaign!r} cannot name a cache file")
        return self.directory / f"{campaign}.model"

    def write(self, cached: CachedModel) -> None:
        """Replace the campaign's cached model atomically (owner-only permissions)."""
        header = json.dumps({
            "format": _FORMAT, "campaign": cached.campaign, "version": cached.version,
            "learn_seq": cached.learn_seq, "policy_name": cached.policy_name,
            "registered_model": cached.registered_model, "sha256": hashlib.sha256(cached.model).hexdigest(),
        }, sort_keys=True).encode("utf-8")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.path(cached.campaign)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(header + b"\n" + cached.model)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def read(self, campaign: str, registered_model: str) -> CachedModel | None:
        """The cached model of ``campaign`` (None when there is none, it is damaged, or it belongs to
        another registered model)."""
        target = self.path(campaign)
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cached model %s cannot be read: %s", target, exc)
            return None
        head, _, model = data.partition(b"\n")
        try:
            meta = json.loads(head)
            if (meta.get("format") != _FORMAT or meta.get("campaign") != campaign
                    or hashlib.sha256(model).hexdigest() != meta.get("sha256") or not model):
                raise ValueError("header does not match the file")
            cached = CachedModel(campaign, str(meta["version"]), int(meta["learn_seq"]), str(meta["policy_name"]),
                                 str(meta["registered_model"]), model)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("cached model %s is damaged and ignored: %s", target, exc)
            return None
        if cached.registered_model != registered_model:
            return None
        return cached

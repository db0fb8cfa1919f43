"""What the sync and async clients share: channel settings, retries, deadlines, the status table.

Retries, in two layers, both bounded by the call's timeout (one deadline per call):

- gRPC's own, from the service config below: ``waitForReady`` (a call waits for a server that is
  down or restarting instead of failing at once) and a ``retryPolicy`` that retries ``UNAVAILABLE``
  up to 5 attempts with exponential backoff;
- then the client's: while the deadline leaves room, an ``UNAVAILABLE`` answer is sent again, the
  same message, after a backoff (``backoff_delays``).

Both are safe because every Decide carries an event id and every Reward a reward id made before the
first attempt: a retry of a call the server did commit returns the original answer.
"""
from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from offerbandit.client.build import reindex
from offerbandit.errors import (
    ClientError,
    RpcAlreadyExists,
    RpcDeadlineExceeded,
    RpcInternal,
    RpcInvalidArgument,
    RpcNotFound,
    RpcPermissionDenied,
    RpcResourceExhausted,
    RpcUnauthenticated,
    RpcUnavailable,
    RpcUnimplemented,
)

__all__ = ["GET_DECISION", "ChannelSettings", "Deadline", "backoff_delays", "batch_failure", "encode_get_decision",
           "error_from_rpc", "service_config", "unimplemented_here"]

SERVICE = "offers.v1.DecisionService"
GET_DECISION = f"/{SERVICE}/GetDecision"

#: status -> client class; the first class whose ``status`` matches wins, the root for the rest.
STATUS_CLASSES: tuple[type[ClientError], ...] = (
    RpcInvalidArgument, RpcNotFound, RpcAlreadyExists, RpcUnauthenticated, RpcPermissionDenied, RpcResourceExhausted,
    RpcDeadlineExceeded, RpcUnavailable, RpcUnimplemented, RpcInternal,
)
_ALSO_INTERNAL = ("UNKNOWN", "DATA_LOSS")


def error_from_rpc(exc: grpc.RpcError) -> ClientError:
    """The client exception for a failed call (``raise error_from_rpc(exc) from exc``)."""
    code = (exc.code() if callable(getattr(exc, "code", None)) else None) or grpc.StatusCode.UNKNOWN
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or ""
    name = code.name
    if name in _ALSO_INTERNAL:
        return RpcInternal(code, details)
    for cls in STATUS_CLASSES:
        if cls.status == name:
            return cls(code, details)
    return ClientError(code, details)


def batch_failure(error: ClientError, offset: int, done: Sequence[Any]) -> ClientError:
    """The error of one DecideBatch of a split list: items named by their index in the caller's list,
    the decisions of the batches before it (committed) as ``partial``."""
    shifted = type(error)(error.code, reindex(error.details, offset))
    shifted.partial = tuple(done)
    return shifted


def unimplemented_here(method: str) -> RpcUnimplemented:
    return RpcUnimplemented(grpc.StatusCode.UNIMPLEMENTED,
                            f"{method} answered, but this client's offers.v1 code has no message for its reply; "
                            "upgrade offerbandit")


def service_config(max_attempts: int = 5) -> str:
    """gRPC service config: wait for ready and retry UNAVAILABLE with exponential backoff, every method."""
    return json.dumps({"methodConfig": [{
        "name": [{"service": SERVICE}],
        "waitForReady": True,
        "retryPolicy": {"maxAttempts": max_attempts, "initialBackoff": "0.1s", "maxBackoff": "1s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]})


def _pem(value: bytes | str | os.PathLike[str] | None, what: str) -> bytes | None:
    """PEM bytes from bytes, PEM text, or a path to a PEM file."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode("ascii")
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {value}: {exc.strerror}") from exc


@dataclass(frozen=True)
class ChannelSettings:
    """Everything the channel needs, worked out once by the constructor (sync and async alike)."""

    target: str
    credentials: grpc.ChannelCredentials | None
    options: tuple[tuple[str, object], ...]
    metadata: tuple[tuple[str, str], ...]

    @classmethod
    def make(cls, target: str, *, token: str | None, root_certificates: bytes | str | os.PathLike[str] | None,
             tls: bool, private_key: bytes | str | os.PathLike[str] | None,
             certificate_chain: bytes | str | os.PathLike[str] | None, keepalive_seconds: float,
             max_message_bytes: int, options: Sequence[tuple[str, object]]) -> ChannelSettings:
        if not target:
            raise ValueError("target must be host:port")
        secure = tls or root_certificates is not None or private_key is not None
        credentials = (grpc.ssl_channel_credentials(_pem(root_certificates, "root_certificates"),
                                                    _pem(private_key, "private_key"),
                                                    _pem(certificate_chain, "certificate_chain"))
                       if secure else None)
        if token is not None and (not token.strip() or any(ch in token for ch in "\r\n")):
            raise ValueError("token must be a non-empty single line")
        metadata = (("authorization", f"Bearer {token.strip()}"),) if token is not None else ()
        channel_options: list[tuple[str, object]] = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config()),
            # come back quickly after a server restart (the default first backoff is 1 s, up to 120 s)
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 5000),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if keepalive_seconds > 0:
            # pings only while calls are in flight, and by default no more often than a gRPC server
            # accepts (5 min; closer pings count as strikes and end in GOAWAY "too_many_pings")
            channel_options += [("grpc.keepalive_time_ms", int(keepalive_seconds * 1000)),
                                ("grpc.keepalive_timeout_ms", 20_000),
                                ("grpc.keepalive_permit_without_calls", 0)]
        overridden = {key for key, _ in options}
        merged = tuple(item for item in channel_options if item[0] not in overridden) + tuple(options)
        return cls(target, credentials, merged, metadata)


class Deadline:
    """One call's deadline: what is left of it, in seconds, for each attempt."""

    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self._end = time.monotonic() + timeout

    def remaining(self) -> float:
        return self._end - time.monotonic()


def open_channel(channels: Any, target: str, timeout: float, max_batch: int,
                 **settings: Any) -> tuple[ChannelSettings, Any]:
    """Check a client's settings and open its channel with ``channels`` (``grpc`` or ``grpc.aio``)."""
    Deadline(timeout)  # refuses a non-positive default early
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
    made = ChannelSettings.make(target, **settings)
    channel = (channels.secure_channel(target, made.credentials, options=made.options)
               if made.credentials is not None else channels.insecure_channel(target, options=made.options))
    return made, channel


def backoff_delays(deadline: Deadline) -> Iterator[float]:
    """Sleeps between the client's own attempts after ``UNAVAILABLE``: 0.1 s doubling to 1 s, jittered,
    for as long as a sleep still leaves time for another attempt."""
    delay = 0.1
    while True:
        sleep = delay * random.uniform(0.5, 1.0)
        if deadline.remaining() <= sleep + 0.05:
            return
        yield sleep
        delay = min(delay * 2, 1.0)


def encode_get_decision(event_id: str) -> bytes:
    """``GetDecisionRequest { string event_id = 1; }`` encoded by hand: this client's generated code
    predates the message (the contract fixes its one field)."""
    data = event_id.encode("utf-8")
    length, prefix = len(data), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\x0a" + bytes(prefix) + data

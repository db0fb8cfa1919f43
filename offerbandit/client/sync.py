"""``Client``: the blocking Python client of ``offers.v1.DecisionService``."""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from offers.v1 import decision_pb2 as pb
from offers.v1 import decision_pb2_grpc as pb_grpc

from offerbandit.client.build import OfferLike, batch_request, chunks, decide_request, reward_request
from offerbandit.client.results import ActivateAck, Arm, Decision, DecisionRecord, RewardAck
from offerbandit.client.transport import (
    GET_DECISION,
    Deadline,
    backoff_delays,
    batch_failure,
    encode_get_decision,
    error_from_rpc,
    open_channel,
    unimplemented_here,
)
from offerbandit.errors import ClientError, RpcUnavailable

__all__ = ["Client"]


class Client:
    """A connection to an offerbandit server (``host:port``); thread-safe, one channel.

    ``token``: the bearer token (``--auth-token-file``). ``root_certificates``: PEM bytes, text or a
    path; given (or ``tls=True`` for the system roots) the channel uses TLS. ``private_key`` and
    ``certificate_chain`` present a client certificate (mTLS). ``timeout``: the default deadline of a
    call in seconds, retries and waiting for an unreachable server included; each method takes its own
    ``timeout=``. ``max_batch``: the server's ``limits.max_batch``; ``decide_batch`` splits longer lists.
    ``keepalive_seconds``: HTTP/2 pings while a call is in flight (0: off). ``options``: extra gRPC
    channel arguments, overriding the client's own.
    """

    def __init__(self, target: str, *, token: str | None = None,
                 root_certificates: bytes | str | os.PathLike[str] | None = None, timeout: float = 5.0,
                 max_batch: int = 1000, tls: bool = False, private_key: bytes | str | os.PathLike[str] | None = None,
                 certificate_chain: bytes | str | os.PathLike[str] | None = None, keepalive_seconds: float = 300.0,
                 max_message_bytes: int = 4 * 1024 * 1024, options: Sequence[tuple[str, object]] = ()) -> None:
        self._settings, self._channel = open_channel(
            grpc, target, timeout, max_batch, token=token, root_certificates=root_certificates, tls=tls,
            private_key=private_key, certificate_chain=certificate_chain, keepalive_seconds=keepalive_seconds,
            max_message_bytes=max_message_bytes, options=options)
        self.target = target
        self.timeout = float(timeout)
        self.max_batch = max_batch
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self._get_decision_raw = self._channel.unary_unary(GET_DECISION)  # bytes in, bytes out

    # -- the calls ------------------------------------------------------------------------------------

    def decide(self, user_id: str, *, context: Mapping[str, str] | None = None,
               numeric: Mapping[str, float] | None = None, offers: Iterable[OfferLike] | None = None,
               formats: Iterable[str] | None = None, time_slots: Iterable[str] | None = None, campaign: str = "",
               event_id: str | None = None, deferred: bool = False, ranking_limit: int = 0,
               baseline: Arm | Mapping[str, Any] | Sequence[str] | None = None,
               excluded_offers: Iterable[str] | None = None, consented_formats: Iterable[str] | None = None,
               timeout: float | None = None) -> Decision:
        """One decision. Sends ``event_id`` (a fresh time-ordered one when not given), so retries of
        ``UNAVAILABLE`` within ``timeout`` return the same decision and never log a second one."""
        request = decide_request(user_id, context=context, numeric=numeric, offers=offers, formats=formats,
                                 time_slots=time_slots, campaign=campaign, event_id=event_id, deferred=deferred,
                                 ranking_limit=ranking_limit, baseline=baseline, excluded_offers=excluded_offers,
                                 consented_formats=consented_formats)
        return Decision.from_proto(self._call(self._stub.Decide, request, Deadline(self._timeout(timeout))))

    def decide_batch(self, requests: Sequence[Mapping[str, Any]], *, timeout: float | None = None) -> list[Decision]:
        """Many decisions, in order; each item a dict of ``decide``'s keywords plus ``user_id``.

        Every item without an ``event_id`` gets one. A list longer than ``max_batch`` goes as several
        DecideBatch calls, one after the other, all within one ``timeout``. Each call is all or nothing;
        if a later one fails, the decisions of the earlier ones are committed and ride on the
        exception as ``partial`` (a tuple), and its message names the item by its index in ``requests``.
        An empty list makes no call and returns ``[]``.
        """
        deadline = Deadline(self._timeout(timeout))
        batches = [(offset, batch_request(items, offset)) for offset, items in chunks(list(requests), self.max_batch)]
        decisions: list[Decision] = []
        for offset, batch in batches:
            try:
                response = self._call(self._stub.DecideBatch, batch, deadline)
            except ClientError as exc:
                raise batch_failure(exc, offset, decisions) from exc.__cause__
            decisions.extend(Decision.from_proto(d) for d in response.decisions)
        return decisions

    def reward(self, event_id: str, value: float, *, reward_id: str = "", timeout: float | None = None) -> RewardAck:
        """Report the outcome of a decision. Without ``reward_id`` one is made for this call and reused
        by its retries, so a retried reward is stored once (distinct calls add up under ``sum``)."""
        request = reward_request(event_id, value, reward_id)
        return RewardAck.from_proto(self._call(self._stub.Reward, request, Deadline(self._timeout(timeout))))

    def activate(self, event_id: str, *, timeout: float | None = None) -> ActivateAck:
        """A decision made with ``deferred=True`` was shown: it now counts for learning and caps."""
        request = pb.ActivateRequest(event_id=event_id)
        return ActivateAck.from_proto(self._call(self._stub.Activate, request, Deadline(self._timeout(timeout))))

    def get_decision(self, event_id: str, *, timeout: float | None = None) -> DecisionRecord:
        """The logged decision of ``event_id`` with its removed arms and reward (``GetDecision``).

        Raises ``RpcUnimplemented`` against a server without the RPC (and when this client's generated
        code predates its reply message)."""
        deadline = Deadline(self._timeout(timeout))
        if hasattr(pb, "GetDecisionRequest") and hasattr(self._stub, "GetDecision"):
            message = self._call(self._stub.GetDecision, pb.GetDecisionRequest(event_id=event_id), deadline)
            return DecisionRecord.from_proto(message)
        self._call(self._get_decision_raw, encode_get_decision(event_id), deadline)
        raise unimplemented_here("GetDecision")

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r}, timeout={self.timeout})"

    # -- one call, retried ----------------------------------------------------------------------------

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _call(self, method: Callable[..., Any], request: Any, deadline: Deadline) -> Any:
        delays = backoff_delays(deadline)
        while True:
            try:
                return method(request, timeout=max(deadline.remaining(), 0.001), metadata=self._settings.metadata,
                              wait_for_ready=True)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc)
                delay = next(delays, None) if isinstance(error, RpcUnavailable) else None
                if delay is None:
                    raise error from exc
            time.sleep(delay)

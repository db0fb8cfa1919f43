"""``AsyncClient``: the same calls as ``Client``, as coroutines over ``grpc.aio``."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from grpc import aio
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

__all__ = ["AsyncClient"]


class AsyncClient:
    """``Client`` for asyncio: the same arguments, methods that are coroutines, ``async with``.

    Make it inside the event loop it is used in (grpc.aio binds its channel to that loop).
    """

    def __init__(self, target: str, *, token: str | None = None,
                 root_certificates: bytes | str | os.PathLike[str] | None = None, timeout: float = 5.0,
                 max_batch: int = 1000, tls: bool = False, private_key: bytes | str | os.PathLike[str] | None = None,
                 certificate_chain: bytes | str | os.PathLike[str] | None = None, keepalive_seconds: float = 300.0,
                 max_message_bytes: int = 4 * 1024 * 1024, options: Sequence[tuple[str, object]] = ()) -> None:
        self._settings, self._channel = open_channel(
            aio, target, timeout, max_batch, token=token, root_certificates=root_certificates, tls=tls,
            private_key=private_key, certificate_chain=certificate_chain, keepalive_seconds=keepalive_seconds,
            max_message_bytes=max_message_bytes, options=options)
        self.target = target
        self.timeout = float(timeout)
        self.max_batch = max_batch
        self._stub = pb_grpc.DecisionServiceStub(self._channel)
        self._get_decision_raw = self._channel.unary_unary(GET_DECISION)

    async def decide(self, user_id: str, *, context: Mapping[str, str] | None = None,
                     numeric: Mapping[str, float] | None = None, offers: Iterable[OfferLike] | None = None,
                     formats: Iterable[str] | None = None, time_slots: Iterable[str] | None = None,
                     campaign: str = "", event_id: str | None = None, deferred: bool = False, ranking_limit: int = 0,
                     baseline: Arm | Mapping[str, Any] | Sequence[str] | None = None,
                     excluded_offers: Iterable[str] | None = None, consented_formats: Iterable[str] | None = None,
                     timeout: float | None = None) -> Decision:
        """See ``Client.decide``."""
        request = decide_request(user_id, context=context, numeric=numeric, offers=offers, formats=formats,
                                 time_slots=time_slots, campaign=campaign, event_id=event_id, deferred=deferred,
                                 ranking_limit=ranking_limit, baseline=baseline, excluded_offers=excluded_offers,
                                 consented_formats=consented_formats)
        return Decision.from_proto(await self._call(self._stub.Decide, request, Deadline(self._timeout(timeout))))

    async def decide_batch(self, requests: Sequence[Mapping[str, Any]], *,
                           timeout: float | None = None) -> list[Decision]:
        """See ``Client.decide_batch``: split at ``max_batch``, sent one batch after the other."""
        deadline = Deadline(self._timeout(timeout))
        batches = [(offset, batch_request(items, offset)) for offset, items in chunks(list(requests), self.max_batch)]
        decisions: list[Decision] = []
        for offset, batch in batches:
            try:
                response = await self._call(self._stub.DecideBatch, batch, deadline)
            except ClientError as exc:
                raise batch_failure(exc, offset, decisions) from exc.__cause__
            decisions.extend(Decision.from_proto(d) for d in response.decisions)
        return decisions

    async def reward(self, event_id: str, value: float, *, reward_id: str = "",
                     timeout: float | None = None) -> RewardAck:
        """See ``Client.reward``."""
        request = reward_request(event_id, value, reward_id)
        return RewardAck.from_proto(await self._call(self._stub.Reward, request, Deadline(self._timeout(timeout))))

    async def activate(self, event_id: str, *, timeout: float | None = None) -> ActivateAck:
        """See ``Client.activate``."""
        request = pb.ActivateRequest(event_id=event_id)
        return ActivateAck.from_proto(await self._call(self._stub.Activate, request, Deadline(self._timeout(timeout))))

    async def get_decision(self, event_id: str, *, timeout: float | None = None) -> DecisionRecord:
        """See ``Client.get_decision``."""
        deadline = Deadline(self._timeout(timeout))
        if hasattr(pb, "GetDecisionRequest") and hasattr(self._stub, "GetDecision"):
            message = await self._call(self._stub.GetDecision, pb.GetDecisionRequest(event_id=event_id), deadline)
            return DecisionRecord.from_proto(message)
        await self._call(self._get_decision_raw, encode_get_decision(event_id), deadline)
        raise unimplemented_here("GetDecision")

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.target!r}, timeout={self.timeout})"

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    async def _call(self, method: Callable[..., Awaitable[Any]], request: Any, deadline: Deadline) -> Any:
        delays = backoff_delays(deadline)
        while True:
            try:
                return await method(request, timeout=max(deadline.remaining(), 0.001),
                                    metadata=self._settings.metadata, wait_for_ready=True)
            except grpc.RpcError as exc:
                error = error_from_rpc(exc)
                delay = next(delays, None) if isinstance(error, RpcUnavailable) else None
                if delay is None:
                    raise error from exc
            await asyncio.sleep(delay)

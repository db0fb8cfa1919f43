"""Turn ``decide``'s keyword arguments into ``offers.v1`` messages.

Only shapes are checked here (what protobuf cannot encode is refused with ``RpcInvalidArgument``
naming the field); the server validates everything else and names the field in its answer. Every
request leaves with an ``event_id``: the caller's, or a fresh time-ordered one, so a retry of the same
message can never make a second decision.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc
from offers.v1 import decision_pb2 as pb

from offerbandit.client.ids import new_id
from offerbandit.client.results import Arm
from offerbandit.errors import RpcInvalidArgument

__all__ = ["DECIDE_KEYWORDS", "OfferLike", "batch_request", "chunks", "decide_request", "reindex", "reward_request"]

#: ``decide``'s keyword names; a ``decide_batch`` item is a dict of these plus ``user_id``.
DECIDE_KEYWORDS = frozenset({"context", "numeric", "offers", "formats", "time_slots", "campaign", "event_id",
                             "deferred", "ranking_limit", "baseline", "excluded_offers", "consented_formats"})

OfferLike = tuple[str, Mapping[str, str]] | Mapping[str, Any] | str


def _invalid(message: str) -> RpcInvalidArgument:
    return RpcInvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, message)


def _fill(field: str, setter: Any, value: Any) -> None:
    """Run a protobuf assignment, turning its TypeError/ValueError into a refusal naming ``field``."""
    try:
        setter(value)
    except (TypeError, ValueError) as exc:
        raise _invalid(f"{field}: {exc}") from exc


def _offer(request: pb.DecideRequest, i: int, offer: OfferLike) -> None:
    field = f"offers[{i}]"
    offer_id: Any
    features: Any
    if isinstance(offer, str):
        offer_id, features = offer, {}
    elif isinstance(offer, Mapping):
        unknown = set(offer) - {"id", "features"}
        if "id" not in offer or unknown:
            raise _invalid(f"{field} must be an (id, features) pair or a dict with 'id' and optional 'features'")
        offer_id, features = offer["id"], offer.get("features") or {}
    elif isinstance(offer, Sequence) and len(offer) == 2:
        offer_id, features = offer[0], offer[1] or {}
    else:
        raise _invalid(f"{field} must be an (id, features) pair or a dict with 'id' and optional 'features'")
    message = request.offers.add()
    _fill(f"{field}.id", lambda v: setattr(message, "id", v), offer_id)
    _fill(f"{field}.features", message.features.update, features)


def _baseline(request: pb.DecideRequest, baseline: Arm | Mapping[str, Any] | Sequence[str]) -> None:
    if isinstance(baseline, Arm):
        values = {"offer_id": baseline.offer_id, "format": baseline.format, "time_slot": baseline.time_slot}
    elif isinstance(baseline, Mapping):
        values = {key: baseline.get(key, "") for key in ("offer_id", "format", "time_slot")}
    elif isinstance(baseline, Sequence) and not isinstance(baseline, str) and len(baseline) == 3:
        values = dict(zip(("offer_id", "format", "time_slot"), baseline))
    else:
        raise _invalid("baseline must be an Arm, an (offer_id, format, time_slot) triple or a dict of those")
    for key, value in values.items():
        _fill(f"baseline.{key}", lambda v, k=key: setattr(request.baseline, k, v), value)


def decide_request(user_id: str, *, context: Mapping[str, str] | None = None,
                   numeric: Mapping[str, float] | None = None, offers: Iterable[OfferLike] | None = None,
                   formats: Iterable[str] | None = None, time_slots: Iterable[str] | None = None,
                   campaign: str = "", event_id: str | None = None, deferred: bool = False, ranking_limit: int = 0,
                   baseline: Arm | Mapping[str, Any] | Sequence[str] | None = None,
                   excluded_offers: Iterable[str] | None = None,
                   consented_formats: Iterable[str] | None = None) -> pb.DecideRequest:
    """One ``DecideRequest``; ``event_id`` None or empty gets a fresh time-ordered id."""
    request = pb.DecideRequest()
    _fill("event_id", lambda v: setattr(request, "event_id", v), event_id or new_id())
    _fill("user_id", lambda v: setattr(request, "user_id", v), user_id)
    _fill("campaign", lambda v: setattr(request, "campaign", v), campaign)
    _fill("deferred", lambda v: setattr(request, "deferred", v), deferred)
    _fill("ranking_limit", lambda v: setattr(request, "ranking_limit", v), ranking_limit)
    _fill("context", request.context.update, context or {})
    _fill("numeric", request.numeric.update, numeric or {})
    for i, offer in enumerate(offers or ()):
        _offer(request, i, offer)
    for name, values in (("formats", formats), ("time_slots", time_slots), ("excluded_offers", excluded_offers),
                         ("consented_formats", consented_formats)):
        if isinstance(values, str):
            raise _invalid(f"{name} must be a list of strings, not one string")
        _fill(name, getattr(request, name).extend, list(values or ()))
    if baseline is not None:
        _baseline(request, baseline)
    return request


def batch_request(items: Sequence[Mapping[str, Any]], offset: int = 0) -> pb.DecideBatchRequest:
    """A ``DecideBatchRequest`` from dicts of ``decide``'s keywords plus ``user_id``; every item gets an
    event id. ``offset`` is the index of ``items[0]`` in the caller's list (for messages)."""
    batch = pb.DecideBatchRequest()
    for i, item in enumerate(items, start=offset):
        if not isinstance(item, Mapping):
            raise _invalid(f"requests[{i}] must be a dict of decide's keyword arguments plus user_id")
        unknown = sorted(set(item) - DECIDE_KEYWORDS - {"user_id"})
        if unknown:
            raise _invalid(f"requests[{i}] has unknown keys {unknown} (decide's keyword names plus user_id)")
        fields = dict(item)
        try:
            batch.requests.append(decide_request(fields.pop("user_id", ""), **fields))
        except RpcInvalidArgument as exc:
            raise _invalid(f"requests[{i}].{exc.details}") from exc
    return batch


def reward_request(event_id: str, value: float, reward_id: str = "") -> pb.RewardRequest:
    """A ``RewardRequest``; an empty ``reward_id`` gets a fresh one, reused by every retry of this call."""
    request = pb.RewardRequest()
    _fill("event_id", lambda v: setattr(request, "event_id", v), event_id)
    _fill("value", lambda v: setattr(request, "value", v), value)
    _fill("reward_id", lambda v: setattr(request, "reward_id", v), reward_id or new_id())
    return request


def chunks(items: Sequence[Any], size: int) -> Iterator[tuple[int, Sequence[Any]]]:
    """``(offset, slice)`` pairs of at most ``size`` items, in order."""
    for start in range(0, len(items), size):
        yield start, items[start:start + size]


_INDEX = re.compile(r"requests\[(\d+)\]")


def reindex(details: str, offset: int) -> str:
    """The server names items by their index in one DecideBatch; shift them to the caller's list."""
    if offset == 0:
        return details
    return _INDEX.sub(lambda m: f"requests[{int(m.group(1)) + offset}]", details)

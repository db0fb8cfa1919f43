"""Turn wire messages into validated domain inputs. Every refusal names the field it is about.

Nothing here touches state: a request that passes is safe to decide on, one that fails raises
``InvalidInput`` (``SensitiveFeature`` for deny-listed keys) before anything is logged. Keys of
``context``, ``numeric`` and offer features are matched against the deny-list after normalisation, and
context and offer-feature values are checked for personal contact data (service/privacy.py).
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from offers.v1 import decision_pb2 as pb

from offerbandit.errors import InvalidInput, SensitiveFeature
from policies.bounded import ByteLRU, text_bytes
from policies.types import JointArm, Offer
from service.config import LimitsConfig, PrivacyConfig


@dataclass(frozen=True, slots=True)
class DecideInput:
    """A validated DecideRequest. Empty candidate tuples mean "use the campaign's catalogue"."""

    event_id: str
    user_id: str
    campaign: str
    context: tuple[tuple[str, str], ...]
    numeric: tuple[tuple[str, float], ...]
    offers: tuple[Offer, ...]
    formats: tuple[str, ...]
    time_slots: tuple[str, ...]
    deferred: bool
    ranking_limit: int
    baseline: JointArm | None
    excluded_offers: frozenset[str]
    consented_formats: frozenset[str] | None
    #: a digest of the offers' wire bytes (empty: no offers sent): the engine's candidate caches key on it
    offers_key: bytes = b""
    #: ``event_id`` was made by the server (the caller sent none): no earlier call can have used it
    server_made_id: bool = False


@dataclass(frozen=True, slots=True)
class RewardInput:
    event_id: str
    value: float
    reward_id: str


def _check_text(value: str, field: str, limits: LimitsConfig, *, required: bool = False) -> str:
    if required and not value:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > limits.max_string_length:
        raise InvalidInput(f"{field} is longer than {limits.max_string_length} characters", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character", field=field)
    return value


def _check_unique(values: Sequence[str], field: str, limit: int, limits: LimitsConfig) -> tuple[str, ...]:
    if len(values) > limit:
        raise InvalidInput(f"{field} has {len(values)} entries, more than the limit of {limit}", field=field)
    seen: set[str] = set()
    for i, value in enumerate(values):
        _check_text(value, f"{field}[{i}]", limits, required=True)
        if value in seen:
            raise InvalidInput(f"{field} has a duplicate entry {value!r}", field=field)
        seen.add(value)
    return tuple(values)


def _check_key(key: str, field: str, name: str, limits: LimitsConfig, privacy: PrivacyConfig) -> None:
    """A feature key: text, no personal data, not sensitive. ``name`` is how the field names this key."""
    _check_text(key, f"{field} key", limits, required=True)
    found = privacy.value_scanner.find(key)
    if found:
        raise InvalidInput(f"{field} has a key that looks like {found}; personal contact data is never stored",
                           field=field)
    matched = privacy.key_matcher.match(key)
    if matched:
        raise SensitiveFeature(f"{name} is a sensitive key (deny-list: {matched}); it is never used for decisions",
                               field=name)


def _check_personal(value: str, name: str, privacy: PrivacyConfig) -> None:
    found = privacy.value_scanner.find(value)
    if found:
        # Never echo the value: it is the personal data we refuse to store or log.
        raise InvalidInput(f"{name} looks like {found}; personal contact data is never stored", field=name)


def _check_features(field: str, items: Iterable[tuple[str, object]], check_value: Callable[[str, object], None],
                    limits: LimitsConfig, privacy: PrivacyConfig) -> tuple:
    """Keys of ``context`` or ``numeric``: count, text, deny-list; values by ``check_value``."""
    pairs = sorted(items)
    if len(pairs) > limits.max_context_keys:
        raise InvalidInput(f"{field} has {len(pairs)} keys, more than the limit of {limits.max_context_keys}",
                           field=field)
    for key, value in pairs:
        name = f"{field}[{key!r}]"
        _check_key(key, field, name, limits, privacy)
        check_value(name, value)
    return tuple(pairs)


def _check_context(items: Iterable[tuple[str, str]], limits: LimitsConfig,
                   privacy: PrivacyConfig) -> tuple[tuple[str, str], ...]:
    def check_value(name: str, value: str) -> None:
        _check_text(value, name, limits)
        _check_personal(value, name, privacy)

    return _check_features("context", items, check_value, limits, privacy)


def _check_numeric(items: Iterable[tuple[str, float]], limits: LimitsConfig,
                   privacy: PrivacyConfig) -> tuple[tuple[str, float], ...]:
    bound = limits.max_abs_numeric

    def check_value(name: str, value: float) -> None:
        if not math.isfinite(value):
            raise InvalidInput(f"{name} must be a finite number, got {value}", field=name)
        if abs(value) > bound:
            raise InvalidInput(f"{name} must lie in [-{bound:g}, {bound:g}] (limits.max_abs_numeric), got {value:g}",
                               field=name)

    return _check_features("numeric", items, check_value, limits, privacy)


def _check_offers(offers: Sequence[pb.Offer], limits: LimitsConfig, privacy: PrivacyConfig) -> tuple[Offer, ...]:
    if len(offers) > limits.max_offers:
        raise InvalidInput(f"offers has {len(offers)} entries, more than the limit of {limits.max_offers}",
                           field="offers")
    seen: set[str] = set()
    result = []
    longest, find, match = limits.max_string_length, privacy.value_scanner.find, privacy.key_matcher.match
    for i, offer in enumerate(offers):
        _check_text(offer.id, f"offers[{i}].id", limits, required=True)
        if offer.id in seen:
            raise InvalidInput(f"offers has a duplicate id {offer.id!r}", field="offers")
        seen.add(offer.id)
        if len(offer.features) > limits.max_offer_features:
            raise InvalidInput(f"offers[{i}].features has more than {limits.max_offer_features} entries",
                               field=f"offers[{i}].features")
        features = dict(offer.features)
        for key, value in features.items():
            # Fast path without building field names; a refusal re-runs the checks that name the field.
            if (not key or len(key) > longest or len(value) > longest or "\x00" in key or "\x00" in value
                    or find(key) or match(key) or find(value)):
                name = f"offers[{i}].features[{key!r}]"
                _check_key(key, f"offers[{i}].features", name, limits, privacy)
                _check_text(value, name, limits)
                _check_personal(value, name, privacy)
        result.append(Offer(offer.id, features))
    return tuple(result)


def _offer_list_bytes(key: bytes, offers: tuple[Offer, ...]) -> int:
    return 200 + len(key) + sum(300 + text_bytes(o.id) + sum(100 + text_bytes(k, v) for k, v in o.features.items())
                                for o in offers)


class ValidatedOffers:
    """Offer lists that passed validation, by a digest of their wire bytes, within ``max_bytes``.

    Callers send the same candidates again and again; checking 8 offers' features for length, NULs,
    personal data and the deny-list and building `Offer` records costs ~70 µs a request, the digest a few.
    The digest covers each offer's bytes with its length (a list's encoding, not a concatenation two
    different lists could share), so equal digests mean equal offers and the same verdict. It only saves
    work: equal offers sent in other bytes (another map order) are validated again.
    """

    def __init__(self, max_bytes: int) -> None:
        self._lists: ByteLRU[bytes, tuple[Offer, ...]] = ByteLRU(max_bytes, _offer_list_bytes)

    def check(self, offers: Sequence[pb.Offer], limits: LimitsConfig,
              privacy: PrivacyConfig) -> tuple[tuple[Offer, ...], bytes]:
        if not offers:
            return (), b""
        digest = hashlib.blake2b(digest_size=16)
        for offer in offers:
            data = offer.SerializeToString()
            digest.update(len(data).to_bytes(4, "little"))
            digest.update(data)
        key = digest.digest()
        found = self._lists.get(key)
        if found is None:
            found = _check_offers(offers, limits, privacy)
            self._lists.put(key, found)
        return found, key

    @property
    def nbytes(self) -> int:
        return self._lists.nbytes


def decide_input(request: pb.DecideRequest, limits: LimitsConfig, privacy: PrivacyConfig,
                 known_offers: ValidatedOffers | None = None) -> DecideInput:
    """Validate one DecideRequest (joint-arm count is checked later, once candidates are resolved);
    ``known_offers`` remembers offer lists already validated."""
    baseline = None
    if request.HasField("baseline"):
        b = request.baseline
        if not (b.offer_id and b.format and b.time_slot):
            raise InvalidInput("baseline needs offer_id, format and time_slot", field="baseline")
        baseline = JointArm(_check_text(b.offer_id, "baseline.offer_id", limits),
                            _check_text(b.format, "baseline.format", limits),
                            _check_text(b.time_slot, "baseline.time_slot", limits))
    consented = _check_unique(list(request.consented_formats), "consented_formats", limits.max_formats, limits)
    if known_offers is None:
        offers, offers_key = _check_offers(request.offers, limits, privacy), b""
    else:
        offers, offers_key = known_offers.check(request.offers, limits, privacy)
    return DecideInput(
        event_id=_check_text(request.event_id, "event_id", limits),
        user_id=_check_text(request.user_id, "user_id", limits, required=True),
        campaign=_check_text(request.campaign, "campaign", limits) or "default",
        context=_check_context(request.context.items(), limits, privacy),
        numeric=_check_numeric(request.numeric.items(), limits, privacy),
        offers=offers,
        formats=_check_unique(list(request.formats), "formats", limits.max_formats, limits),
        time_slots=_check_unique(list(request.time_slots), "time_slots", limits.max_time_slots, limits),
        deferred=request.deferred,
        ranking_limit=int(request.ranking_limit),
        baseline=baseline,
        excluded_offers=frozenset(_check_unique(list(request.excluded_offers), "excluded_offers",
                                                limits.max_offers, limits)),
        consented_formats=frozenset(consented) if consented else None,
        offers_key=offers_key,
    )


def batch_inputs(request: pb.DecideBatchRequest, limits: LimitsConfig, privacy: PrivacyConfig,
                 known_offers: ValidatedOffers | None = None) -> list[DecideInput]:
    """Validate every item first; the first bad one fails the whole batch, naming its index."""
    if len(request.requests) == 0:
        raise InvalidInput("requests must hold at least one DecideRequest", field="requests")
    if len(request.requests) > limits.max_batch:
        raise InvalidInput(f"requests has {len(request.requests)} items, more than the limit of {limits.max_batch}",
                           field="requests")
    inputs = []
    seen_ids: set[str] = set()
    for i, item in enumerate(request.requests):
        try:
            parsed = decide_input(item, limits, privacy, known_offers)
        except InvalidInput as exc:
            raise type(exc)(f"requests[{i}]: {exc}", field=f"requests[{i}].{exc.field}") from exc
        if parsed.event_id:
            if parsed.event_id in seen_ids:
                raise InvalidInput(f"requests[{i}]: event_id {parsed.event_id!r} appears twice in the batch",
                                   field=f"requests[{i}].event_id")
            seen_ids.add(parsed.event_id)
        inputs.append(parsed)
    return inputs


def reward_input(request: pb.RewardRequest, limits: LimitsConfig) -> RewardInput:
    _check_text(request.event_id, "event_id", limits, required=True)
    if not math.isfinite(request.value):
        raise InvalidInput(f"value must be a finite number, got {request.value}", field="value")
    return RewardInput(request.event_id, float(request.value), _check_text(request.reward_id, "reward_id", limits))


def event_id_input(event_id: str, limits: LimitsConfig) -> str:
    return _check_text(event_id, "event_id", limits, required=True)

"""The request fingerprint is the documented hash of the canonical request, whatever caches build it."""
from __future__ import annotations

import hashlib
import json

import pytest

from service.config import ServiceConfig
from service.fingerprint import request_fingerprint
from service.validation import ValidatedOffers, decide_input
from tests.conftest import make_request

CONFIG = ServiceConfig()


def canonical_fingerprint(inp, user_key: str) -> str:
    """The canonical form as service/fingerprint.py's docstring states it, dumped in one piece."""
    baseline = None if inp.baseline is None else [inp.baseline.offer_id, inp.baseline.format, inp.baseline.time_slot]
    canonical = [user_key, inp.campaign or "default", sorted(inp.context),
                 [[key, repr(float(value))] for key, value in sorted(inp.numeric)],
                 [[offer.id, sorted(offer.features.items())] for offer in inp.offers], list(inp.formats),
                 list(inp.time_slots), bool(inp.deferred), baseline, sorted(inp.excluded_offers),
                 None if inp.consented_formats is None else sorted(inp.consented_formats)]
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return "f1:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@pytest.mark.parametrize("request_", [
    make_request(),
    make_request(user="zoë", context={"segment": "naïve", "city": "x"}, numeric={"tenure": 3.0}, deferred=True),
    make_request(offers=[], formats=[], slots=[]),
    make_request(excluded_offers=["o2", "o1"], consented_formats=["sms"], campaign="default"),
])
def test_the_fingerprint_is_the_canonical_hash_with_and_without_the_offer_cache(request_):
    known = ValidatedOffers(1 << 20)
    for _ in range(2):  # the second time the offers' text comes from the cache
        cached = decide_input(request_, CONFIG.limits, CONFIG.privacy, known)
        assert request_fingerprint(cached, "k" * 16) == canonical_fingerprint(cached, "k" * 16)
    plain = decide_input(request_, CONFIG.limits, CONFIG.privacy)
    assert request_fingerprint(plain, "k" * 16) == request_fingerprint(cached, "k" * 16)


def test_different_requests_have_different_fingerprints():
    base = decide_input(make_request(), CONFIG.limits, CONFIG.privacy, ValidatedOffers(1 << 20))
    other = decide_input(make_request(offers=[("o1", {"category": "toys"})]), CONFIG.limits, CONFIG.privacy,
                         ValidatedOffers(1 << 20))
    assert request_fingerprint(base, "k") != request_fingerprint(other, "k")
    assert request_fingerprint(base, "k") != request_fingerprint(base, "j")

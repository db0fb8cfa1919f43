"""The fingerprint of a request: what makes two DecideRequests with one ``event_id`` *the same* request.

A hash of the parsed, canonical request: every field except ``event_id`` and ``ranking_limit`` (a repeat
may ask for a different cut of the same ranking); maps sorted by key; repeated fields in the order sent
(candidates as sent: an empty list means "the catalogue" and stays empty); set-valued fields
(``excluded_offers``, ``consented_formats``) sorted; the user by the keyed hash, never the clear id.
Stored in ``decisions.fingerprint`` so repeats are checked after a restart too. Wire bytes are never
compared: two encodings of one request (map order, default fields) are the same request.
"""
from __future__ import annotations

import hashlib
import json

from policies.bounded import ByteLRU
from service.validation import DecideInput

__all__ = ["FINGERPRINT_VERSION", "request_fingerprint"]

#: Bumped if the canonical form changes; a stored fingerprint of another version never matches.
FINGERPRINT_VERSION = "f1"


_OFFERS_TEXT_BYTES = 4 * 1024 * 1024
#: canonical JSON of offer lists by their wire digest (`DecideInput.offers_key`): callers resend the same
#: candidates, and their part is most of the canonical text
_offers_text: ByteLRU[bytes, str] = ByteLRU(_OFFERS_TEXT_BYTES, lambda key, text: 100 + len(key) + len(text))


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _offers_part(inp: DecideInput) -> str:
    text = _offers_text.get(inp.offers_key) if inp.offers_key else None
    if text is None:
        text = _dumps([[offer.id, sorted(offer.features.items())] for offer in inp.offers])
        if inp.offers_key:
            _offers_text.put(inp.offers_key, text)
    return text


def request_fingerprint(inp: DecideInput, user_key: str) -> str:
    """``f1:`` + the first 32 hex digits of SHA-256 over the canonical JSON of ``inp``.

    The JSON of a list is ``[`` + its items' JSON joined by ``,`` + ``]``: the text is built that way so
    the offers' part can be reused (the same text, hence the same fingerprint, as dumping the whole list)."""
    baseline = None if inp.baseline is None else [inp.baseline.offer_id, inp.baseline.format, inp.baseline.time_slot]
    parts = [
        _dumps(user_key),
        _dumps(inp.campaign or "default"),
        _dumps(sorted(inp.context)),
        _dumps([[key, repr(float(value))] for key, value in sorted(inp.numeric)]),
        _offers_part(inp),
        _dumps([list(inp.formats), list(inp.time_slots), bool(inp.deferred), baseline, sorted(inp.excluded_offers),
                None if inp.consented_formats is None else sorted(inp.consented_formats)])[1:-1],
    ]
    text = "[" + ",".join(parts) + "]"
    return f"{FINGERPRINT_VERSION}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"

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

from service.validation import DecideInput

__all__ = ["FINGERPRINT_VERSION", "request_fingerprint"]

#: Bumped if the canonical form changes; a stored fingerprint of another version never matches.
FINGERPRINT_VERSION = "f1"


def request_fingerprint(inp: DecideInput, user_key: str) -> str:
    """``f1:`` + the first 32 hex digits of SHA-256 over the canonical JSON of ``inp``."""
    baseline = None if inp.baseline is None else [inp.baseline.offer_id, inp.baseline.format, inp.baseline.time_slot]
    canonical = [
        user_key,
        inp.campaign or "default",
        sorted(inp.context),
        [[key, repr(float(value))] for key, value in sorted(inp.numeric)],
        [[offer.id, sorted(offer.features.items())] for offer in inp.offers],
        list(inp.formats),
        list(inp.time_slots),
        bool(inp.deferred),
        baseline,
        sorted(inp.excluded_offers),
        None if inp.consented_formats is None else sorted(inp.consented_formats),
    ]
    text = json.dumps(canonical, ensure_ascii=False, separators=(",", ":"))
    return f"{FINGERPRINT_VERSION}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"

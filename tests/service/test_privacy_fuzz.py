"""Seeded fuzzing of the edge's privacy checks with a corpus of hostile characters (format characters,
combining marks, look-alike letters, fullwidth forms, other scripts' digits, NUL, emoji):

- normalisation never raises and is idempotent;
- every mutation of a deny-listed word (case, invisible characters, accents, look-alikes, fullwidth,
  separators, camelCase, inside a longer key) is refused, and every mutation of an e-mail, phone or
  card number is found;
- random hostile requests through a real server are answered OK or INVALID_ARGUMENT, never anything
  else, and the server keeps serving.
"""
from __future__ import annotations

import random

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from offers.v1 import decision_pb2 as pb
from service.config import DEFAULT_SENSITIVE_KEYS, PrivacyConfig
from service.privacy import ValueScanner, key_tokens
from tests.conftest import make_request

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f", "\u202a", "\u2066"]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303", "\u030c"]
LOOKALIKE = {"a": ["\u0430", "\u03b1"], "e": ["\u0435"], "o": ["\u043e", "\u03bf"], "p": ["\u0440", "\u03c1"],
             "c": ["\u0441"], "x": ["\u0445"], "i": ["\u0456", "\u03b9"], "h": ["\u04bb"], "s": ["\u0455"],
             "k": ["\u03ba"], "t": ["\u03c4"], "y": ["\u0443"], "j": ["\u0458"], "l": ["\u04cf"]}
SEPARATORS = ["_", "-", " ", ".", "__", " - "]
HOSTILE = INVISIBLE + COMBINING + [c for v in LOOKALIKE.values() for c in v] + [
    "\x00", "\U0001f600", "\u202e", "\u0661", "\u0967", "\uff10", "\uff20", "@", "+", "(", ")", "ß", "İ", "ﬁ",
    "\u2028", "\t", "\n", "Ω", "Å", "ǅ", "ⅷ", "²", "\ufdfa", "𝔥", "ʰ"]


def fullwidth(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def mutate_word(rng: random.Random, word: str) -> str:
    """A spelling of ``word`` the normaliser must see through."""
    parts = word.split("_")
    style = rng.randrange(3)
    if style == 0:
        key = rng.choice(SEPARATORS).join(parts)
    elif style == 1:
        key = parts[0] + "".join(p.title() for p in parts[1:])
    else:
        key = "".join(parts)
    out = []
    for ch in key:
        roll = rng.random()
        if roll < 0.15 and ch.lower() in LOOKALIKE:
            ch = rng.choice(LOOKALIKE[ch.lower()])
        elif roll < 0.25:
            ch = fullwidth(ch)
        elif roll < 0.35 and ch.isalpha():
            ch = ch.upper() if style != 1 else ch
        out.append(ch)
        if rng.random() < 0.15:
            out.append(rng.choice(INVISIBLE))
        if rng.random() < 0.1 and ch.isalpha():
            out.append(rng.choice(COMBINING))
    key = "".join(out)
    if rng.random() < 0.5:
        key = rng.choice(["customer", "x", "is", "last"]) + rng.choice(SEPARATORS[:4]) + key
    if rng.random() < 0.5:
        key = key + rng.choice(SEPARATORS[:4]) + rng.choice(["status", "flag", "2024", "level"])
    return key


def mutate_value(rng: random.Random, value: str) -> str:
    out = []
    for ch in value:
        if rng.random() < 0.3:
            ch = fullwidth(ch)
        out.append(ch)
        if rng.random() < 0.1:
            out.append(rng.choice(INVISIBLE[:6]))
    return rng.choice(["", "note: ", "x "]) + "".join(out) + rng.choice(["", " ok", "."])


def random_text(rng: random.Random, n: int) -> str:
    alphabet = HOSTILE + list("abcdefghijklmnopqrstuvwxyzHEALTH0123456789_-. ")
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_normalisation_never_raises_and_is_idempotent():
    rng = random.Random(1414)
    for _ in range(3000):
        key = random_text(rng, rng.randrange(0, 40))
        tokens = key_tokens(key)
        assert all(tokens), key
        assert key_tokens(" ".join(tokens)) == tokens, (key, tokens)


def test_every_mutation_of_a_deny_listed_word_is_refused():
    rng = random.Random(14)
    matcher = PrivacyConfig().key_matcher
    misses = []
    for _ in range(3000):
        word = rng.choice(DEFAULT_SENSITIVE_KEYS)
        key = mutate_word(rng, word)
        if matcher.match(key) is None:
            misses.append((word, key))
    assert not misses, misses[:10]


SAMPLES = {
    "an e-mail address": ["bob@example.com", "a.b+c@sub.example.org", "x_y@mail.co"],
    "a phone number": ["+44 20 7946 0958", "0049 30 1234567", "+1 555 123 4567", "555-123-4567"],
    "a payment card number": ["4111111111111111", "5500 0000 0000 0004", "378282246310005",
                              "6011-1111-1111-1117"],
}


def test_every_mutation_of_personal_data_is_found():
    rng = random.Random(7)
    scanner = ValueScanner()
    misses = []
    for _ in range(2000):
        kind = rng.choice(sorted(SAMPLES))
        value = mutate_value(rng, rng.choice(SAMPLES[kind]))
        if scanner.find(value) != kind:
            misses.append((kind, value, scanner.find(value)))
    assert not misses, misses[:10]


def test_random_text_never_raises_in_the_value_scanner():
    rng = random.Random(99)
    scanner = ValueScanner()
    for _ in range(3000):
        scanner.find(random_text(rng, rng.randrange(0, 60)))


@pytest.mark.timeout(300)
def test_hostile_requests_never_hurt_the_server(served):
    rng = random.Random(2024)
    codes = {}
    for i in range(300):
        request = make_request(user=f"fuzz-{i}")
        for _ in range(rng.randrange(1, 4)):
            request.context[random_text(rng, rng.randrange(1, 12))] = random_text(rng, rng.randrange(0, 24))
        if rng.random() < 0.3:
            request.numeric[random_text(rng, rng.randrange(1, 8))] = rng.choice(
                [0.0, 1.0, -3.5, 1e6, 1e7, -1e300, float("nan"), float("inf"), 5e-324])
        if rng.random() < 0.3:
            request.offers[0].features[random_text(rng, rng.randrange(1, 8))] = random_text(rng, 10)
        try:
            served.stub.Decide(request, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
            assert exc.details(), exc
        codes[code] = codes.get(code, 0) + 1
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}, codes
    assert codes.get(grpc.StatusCode.OK, 0) > 0 and codes.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0, codes
    status = health_pb2_grpc.HealthStub(served.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    batch = pb.DecideBatchRequest(requests=[make_request(user=f"after-{i}") for i in range(5)])
    assert len(served.stub.DecideBatch(batch, timeout=10).decisions) == 5

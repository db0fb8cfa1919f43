"""Sensitive keys are matched after normalisation (issue 14 item 6): a table of spellings that must be
refused and of look-alike keys that must be accepted, then a representative subset through a real
server for context, numeric and offer-feature keys (refused, nothing logged)."""
from __future__ import annotations

import re
import sqlite3

import grpc
import pytest

from offerbandit.errors import InvalidInput
from service.config import DEFAULT_SENSITIVE_KEYS, PrivacyConfig, parse_config
from service.privacy import KeyMatcher, key_tokens, normalise_key
from tests.conftest import make_request

DEFAULT = PrivacyConfig().key_matcher

REFUSED = [
    ("health", "health"),
    ("health_status", "health"),
    ("health-status", "health"),
    ("health status", "health"),
    ("health.status", "health"),
    ("healthStatus", "health"),
    ("HealthStatus", "health"),
    ("HEALTH_STATUS", "health"),
    ("customer_health", "health"),
    ("mental_health_flag", "health"),
    ("ｈｅａｌｔｈ", "health"),                    # fullwidth
    ("health\u200b", "health"),                    # zero-width space
    ("\u200bhe\u200dalth", "health"),               # zero-width joiner inside
    ("he\u00adalth", "health"),                    # soft hyphen
    ("\ufeffhealth", "health"),                    # BOM
    ("h\u0435alth", "health"),                     # Cyrillic е
    ("\u041dealth", "health"),                     # Cyrillic Н
    ("he\u03b1lth", "health"),                     # Greek α
    ("h.e.a.l.t.h", "health"),                     # spelled with separators
    ("Religión", "religion"),
    ("RELIGIÓN", "religion"),
    ("religion\u0301", "religion"),                # combining accent
    ("religions", "religion"),                     # plural
    ("sexual orientation", "sexual_orientation"),
    ("sexual_orientation", "sexual_orientation"),
    ("sexualOrientation", "sexual_orientation"),
    ("sexualorientation", "sexual_orientation"),
    ("sexual-orientation-self-reported", "sexual_orientation"),
    ("medical_condition", "medical"),
    ("MedicalCondition", "medical"),
    ("current_medication", "medication"),
    ("diagnosis_code", "diagnosis"),
    ("chronic_disease", "disease"),
    ("is_pregnant", "pregnant"),
    ("pregnancy_week", "pregnancy"),
    ("ethnicity", "ethnicity"),
    ("ethnic_group", "ethnic"),
    ("politicalViews", "political_views"),
    ("political_party", "political"),
    ("trade_union_member", "trade_union"),
    ("tradeUnion", "trade_union"),
    ("genetic_risk", "genetic"),
    ("biometricId", "biometric"),
    ("disability2", "disability"),                  # letter/digit boundary
    ("ＲＥＬＩＧＩＯＮ", "religion"),
]

ACCEPTED = [
    "segment", "weekday", "device", "tier", "region", "age_band", "channel",
    "healthy_snacks_interest",   # "healthy" is another word
    "trace_id", "grace_period", "embrace", "racetrack",  # "race" only as a whole token
    "regional", "generic", "metric",
    "orientation",               # screen orientation: only the sequence "sexual orientation" is sensitive
    "healthstatus",              # glued without a boundary: not a token match (patterns catch it)
    "politic", "unionized_store",
]


@pytest.mark.parametrize("key,word", REFUSED, ids=[repr(k) for k, _ in REFUSED])
def test_refused_spellings(key, word):
    assert DEFAULT.match(key) == word


@pytest.mark.parametrize("key", ACCEPTED)
def test_accepted_keys(key):
    assert DEFAULT.match(key) is None


@pytest.mark.parametrize("key,tokens", [
    ("healthStatus", ("health", "status")),
    ("HTTPStatusCode", ("http", "status", "code")),
    ("ｈｅａｌｔｈ\u200b", ("health",)),
    ("Religión  -_. x", ("religion", "x")),
    ("sexual orientation", ("sexual", "orientation")),
    ("abc123def", ("abc", "123", "def")),
    ("Straße", ("strasse",)),
    ("", ()),
])
def test_key_tokens(key, tokens):
    assert key_tokens(key) == tokens


def test_patterns_search_the_normalised_key():
    matcher = KeyMatcher(["religion"], [r"health", r"^diag"])
    assert matcher.match("healthstatus") == "pattern 'health'"
    assert matcher.match("ＨｅａｌｔｈScore") == "pattern 'health'"
    assert matcher.match("DiagCode") == "pattern '^diag'"
    assert matcher.match("pre_diag") is None
    assert normalise_key("DiagCode") == "diag_code"


def test_every_default_word_is_refused_in_its_own_spellings():
    for word in DEFAULT_SENSITIVE_KEYS:
        parts = word.split("_")
        camel = parts[0] + "".join(p.title() for p in parts[1:])
        for key in (word, word.upper(), camel, " ".join(parts), f"x_{word}_y"):
            assert DEFAULT.match(key) == word or DEFAULT.match(key) in DEFAULT_SENSITIVE_KEYS, key


@pytest.mark.parametrize("toml,field", [
    ('[privacy]\nsensitive_key_patterns = ["("]\n', "privacy.sensitive_key_patterns[0]"),
    ('[privacy]\npii_patterns = ["ok", "[z-a]"]\n', "privacy.pii_patterns[1]"),
    ('[privacy]\npii_checks = ["email", "ssn"]\n', "privacy.pii_checks[1]"),
    ('[privacy]\nsensitive_context_keys = ["health", "__"]\n', "privacy.sensitive_context_keys[1]"),
    ('[limits]\nmax_abs_numeric = 0\n', "limits.max_abs_numeric"),
    ('[privacy]\nuser_hash_key = "short"\n', "privacy.user_hash_key"),
])
def test_bad_privacy_config_names_the_field(toml, field):
    with pytest.raises(InvalidInput) as err:
        parse_config(toml)
    assert err.value.field == field, (err.value.field, str(err.value))


def _count(data_dir) -> int:
    con = sqlite3.connect(data_dir / "decisions.db")
    try:
        return con.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        con.close()


def _context(key):
    return make_request(context={"segment": "young", key: "x"})


def _numeric(key):
    request = make_request()
    request.numeric[key] = 1.0
    return request


def _offer_feature(key):
    return make_request(offers=[("o1", {"category": "travel"}), ("o2", {"category": "food", key: "yes"})])


THROUGH_SERVER = [
    ("context", _context, "healthStatus", r"context\['healthStatus'\]"),
    ("context", _context, "ｈｅａｌｔｈ", "context"),
    ("context", _context, "he\u00adalth", "context"),
    ("context", _context, "h\u0435alth", "context"),
    ("context", _context, "Religión", "Religión"),
    ("context", _context, "sexual orientation", "sexual orientation"),
    ("numeric", _numeric, "medical_condition", r"numeric\['medical_condition'\]"),
    ("numeric", _numeric, "health\u200b_score", "numeric"),
    ("offer feature", _offer_feature, "health-benefit", r"offers\[1\]\.features\['health-benefit'\]"),
    ("offer feature", _offer_feature, "targetEthnicity", r"offers\[1\]\.features"),
]


@pytest.mark.parametrize("where,build,key,pattern", THROUGH_SERVER,
                         ids=[f"{w}-{k!r}" for w, _, k, _ in THROUGH_SERVER])
def test_server_refuses_sensitive_keys_and_logs_nothing(served, where, build, key, pattern):
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(build(key), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(pattern, err.value.details()), err.value.details()
    assert "sensitive" in err.value.details()
    assert _count(served.data_dir) == 0


def test_server_accepts_look_alike_harmless_keys(served):
    request = make_request(context={"segment": "young", "healthy_snacks_interest": "high", "trace_id": "t1"},
                           offers=[("o1", {"category": "health", "orientation": "landscape"})])
    request.numeric["grace_period"] = 3.0
    assert served.stub.Decide(request, timeout=10).offer_id == "o1"
    assert _count(served.data_dir) == 1


def test_configured_pattern_through_the_server(start_server):
    served = start_server('[privacy]\nsensitive_key_patterns = ["health"]\n')
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(_context("healthstatus"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pattern 'health'" in err.value.details()

"""Personal contact data in values is refused (issue 14 item 6): tables of e-mail, phone and card
variants that must be refused and of look-alike values that must pass (ISO dates and times, ids,
numbers failing Luhn or lacking an issuer prefix), then a subset through a real server: context and
offer-feature values refused naming the field (never echoing the value), nothing logged; numeric
context bounded by ``limits.max_abs_numeric``."""
from __future__ import annotations

import sqlite3

import grpc
import pytest

from offers.v1 import decision_pb2 as pb
from offerbandit.errors import InvalidInput
from policies.types import Offer
from service.config import parse_config
from service.config_toml import catalog_toml
from service.privacy import ValueScanner
from tests.conftest import make_request

SCANNER = ValueScanner()

REFUSED = [
    ("bob@example.com", "an e-mail address"),
    ("Bob.Smith+promo@mail.example.co.uk", "an e-mail address"),
    ("contact: bob@example.com today", "an e-mail address"),
    ("bob＠example.com", "an e-mail address"),              # fullwidth at sign
    ("bob\u200b@example.com", "an e-mail address"),          # zero-width space before @
    ("ｂｏｂ@ｅｘａｍｐｌｅ.ｃｏｍ", "an e-mail address"),
    ("+44 20 7946 0958", "a phone number"),
    ("+1 (555) 123-4567", "a phone number"),
    ("+4915112345678", "a phone number"),
    ("0044 20 7946 0958", "a phone number"),
    ("0033142685300", "a phone number"),
    ("+49 151 1234 5678", "a phone number"),
    ("555-123-4567", "a phone number"),
    ("555.123.4567", "a phone number"),
    ("(030) 1234 5678", "a phone number"),
    ("(555) 123-4567", "a phone number"),
    ("030 1234 5678", "a phone number"),
    ("call +33 1 42 68 53 00", "a phone number"),
    ("＋４４ ２０ ７９４６ ０９５８", "a phone number"),      # fullwidth
    ("4111111111111111", "a payment card number"),            # Visa
    ("4111 1111 1111 1111", "a payment card number"),
    ("4111-1111-1111-1111", "a payment card number"),
    ("5500 0000 0000 0004", "a payment card number"),         # Mastercard
    ("2221000000000009", "a payment card number"),            # Mastercard 2-series
    ("378282246310005", "a payment card number"),             # Amex, 15 digits
    ("6011111111111117", "a payment card number"),            # Discover
    ("3530111333300000", "a payment card number"),            # JCB
    ("30569309025904", "a payment card number"),              # Diners, 14 digits
    ("6250941006528599", "a payment card number"),            # UnionPay
    ("card 4012888888881881 exp", "a payment card number"),
    ("٤١١١١١١١١١١١١١١١", "a payment card number"),           # Arabic-Indic digits
]

ACCEPTED = [
    "young", "commuter", "food", "sms", "", "yes",
    "2024-01-15", "2024-01-15T12:30:00", "2024-01-15T12:30:00+01:00", "2024-01-15T12:30:00Z",
    "2024-01-15 12:30:00", "12:30", "12:30:45.123", "20240115", "20240115T123000",
    "2024-W03-1", "P1DT2H", "1705321800",                     # ISO week, duration, epoch seconds
    "12345", "v1.2.3", "192.168.1.1", "10.0.0.255", "3.14159", "-42", "1,234,567",
    "+1234", "+01:00", "00123", "ab-12-cd", "SKU-000123",
    "4111111111111112",                                       # fails Luhn
    "1234567890123452",                                       # Luhn ok, no issuer prefix
    "8000000000000009",                                       # Luhn ok, prefix 8: not an issuer
    "411111111111",                                           # 12 digits: too short
    "user at example dot com", "@handle", "a@b", "price@10",  # not addresses
]


@pytest.mark.parametrize("value,kind", REFUSED, ids=[repr(v) for v, _ in REFUSED])
def test_refused_values(value, kind):
    assert SCANNER.find(value) == kind


@pytest.mark.parametrize("value", ACCEPTED, ids=[repr(v) for v in ACCEPTED])
def test_accepted_values(value):
    assert SCANNER.find(value) is None


def test_checks_and_patterns_are_configurable():
    only_email = ValueScanner(["email"], [r"\b\d{3}-\d{2}-\d{4}\b"])
    assert only_email.find("4111111111111111") is None
    assert only_email.find("+44 20 7946 0958") is None
    assert only_email.find("bob@example.com") == "an e-mail address"
    assert only_email.find("ssn 078-05-1120") == r"a match of the PII pattern '\\b\\d{3}-\\d{2}-\\d{4}\\b'"
    assert ValueScanner([], []).find("bob@example.com") is None


def _count(data_dir) -> int:
    con = sqlite3.connect(data_dir / "decisions.db")
    try:
        return con.execute("SELECT count(*) FROM decisions").fetchone()[0]
    finally:
        con.close()


THROUGH_SERVER = [
    (lambda v: make_request(context={"segment": "young", "note": v}), "bob@example.com", r"context['note']"),
    (lambda v: make_request(context={"segment": "young", "note": v}), "+44 20 7946 0958", r"context['note']"),
    (lambda v: make_request(context={"segment": v}), "4111 1111 1111 1111", r"context['segment']"),
    (lambda v: make_request(offers=[("o1", {"category": "food"}), ("o2", {"owner": v})]), "ann@example.org",
     r"offers[1].features['owner']"),
]


@pytest.mark.parametrize("build,value,field", THROUGH_SERVER, ids=[v for _, v, _ in THROUGH_SERVER])
def test_server_refuses_personal_data_without_echoing_it(served, build, value, field):
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(build(value), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details()
    assert details.startswith(field) and "personal contact data" in details, details
    assert value not in details and "example" not in details
    assert _count(served.data_dir) == 0


def test_batch_with_personal_data_names_the_item_and_logs_nothing(served):
    items = [make_request(user=f"u{i}") for i in range(3)]
    items[1].context["email"] = "carol@example.com"
    with pytest.raises(grpc.RpcError) as err:
        served.stub.DecideBatch(pb.DecideBatchRequest(requests=items), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("requests[1]: context['email']"), err.value.details()
    assert _count(served.data_dir) == 0


def test_server_accepts_dates_times_and_ids(served):
    request = make_request(context={"segment": "young", "date": "2024-01-15", "at": "2024-01-15T12:30:00+01:00",
                                    "order": "4111111111111112", "ip": "10.0.0.1"})
    assert served.stub.Decide(request, timeout=10).event_id
    assert _count(served.data_dir) == 1


def test_pii_checks_can_be_switched_off(start_server):
    served = start_server("[privacy]\npii_checks = []\n")
    assert served.stub.Decide(make_request(context={"segment": "bob@example.com"}), timeout=10).event_id


@pytest.mark.parametrize("value,ok", [(1e6, True), (-1e6, True), (999_999.5, True), (1e6 + 1, False),
                                      (-1e30, False), (1e300, False), (1.7e9, False)])
def test_numeric_context_is_bounded(served, value, ok):
    request = make_request()
    request.numeric["score"] = value
    if ok:
        assert served.stub.Decide(request, timeout=10).event_id
        return
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Decide(request, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "numeric['score']" in err.value.details() and "max_abs_numeric" in err.value.details()
    assert _count(served.data_dir) == 0


def test_max_abs_numeric_is_configurable_for_epoch_seconds(start_server):
    served = start_server("[limits]\nmax_abs_numeric = 1e10\n")
    request = make_request()
    request.numeric["last_purchase_epoch_s"] = 1.7e9
    assert served.stub.Decide(request, timeout=10).event_id


@pytest.mark.parametrize("features, refused, why", [
    ({"category": "food", "owner": "bob@example.com"}, "features['owner']", "looks like an e-mail address"),
    ({"category": "food", "religion": "any"}, "features['religion']", "sensitive key"),
])
def test_a_catalogue_offer_with_personal_data_or_a_sensitive_key_is_refused_at_start(features, refused, why):
    """The catalogue is logged with every decision (offer snapshots), so its offers pass the request's checks."""
    offers = [Offer("ok", {"category": "travel"}), Offer("bad", features)]
    with pytest.raises(InvalidInput, match=why) as err:
        parse_config(catalog_toml("spring", offers, ["sms"], ["morning"]))
    assert err.value.field == f"campaigns.spring.offers[1].{refused}"
    assert "bob@example.com" not in str(err.value)  # never echoed
    assert parse_config(catalog_toml("spring", offers[:1], ["sms"], ["morning"])).campaigns["spring"]

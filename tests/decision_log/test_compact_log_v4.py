"""Schema 4 of the compact log (issue 15: at most 1 KB a 128-arm decision), on both backends: rows reference
their arm set by an integer key, store the request fingerprint as bytes and the context's values without their
keys (held once in the arm set); a log of schema 3 upgrades in place and every row it held reads as before,
beside the new ones; a key another arm set holds is never used."""
from __future__ import annotations

import json

import numpy as np
import pytest

from decision_log import SCHEMA_VERSION, arm_set_code, arm_set_key, encode_offers, open_log
from decision_log.codec import blob_to_fingerprint, features_of, fingerprint_to_blob, values_text
from tests.conftest import FORMATS, SLOTS
from tests.decision_log.test_compact_log import CANDIDATES, _compact_row, _old_row

OFFER_SET_ID = encode_offers(CANDIDATES.offers.values())[0]
V3_ARM_SET = arm_set_code(OFFER_SET_ID, tuple(FORMATS), tuple(SLOTS))  # (id, text) without feature keys
V4_ARM_SET = arm_set_code(OFFER_SET_ID, tuple(FORMATS), tuple(SLOTS), ("segment", "device"), ("x",))


def test_fingerprints_and_keys_encode_and_decode():
    fingerprint = "f1:" + "0123456789abcdef" * 2
    blob = fingerprint_to_blob(fingerprint)
    assert len(blob) == 19 and blob_to_fingerprint(blob) == fingerprint
    assert blob_to_fingerprint(fingerprint_to_blob("f1:3a3a")) == "f1:3a3a"  # a digest byte may be ":"
    for other in ("f1:ABCD", "f1:abc", "plain", "a:b:c", "f1:ab cd", None):  # not of the shape: kept as text
        assert fingerprint_to_blob(other) is None
    key = arm_set_key("f" * 32)
    assert key == 2**63 - 1 and arm_set_key("0" * 32) == 0 and arm_set_key(V3_ARM_SET[0]) < 2**63
    assert values_text(["ios", "d4"]) == "\x1fios\x1fd4" and values_text([]) == "" and values_text([""]) == "\x1f"
    assert values_text(["a\x1fb", "c"]) == '["a\\u001fb","c"]'  # a value holding the separator: a JSON list
    for values in (["ios", "d4"], [], [""], ["a\x1fb", "[", "{"], ["é", " "]):
        assert list(features_of(values_text(values), tuple(f"k{i}" for i in range(len(values)))).values()) == values
    numbers = [81.58171113360575, 36.0, -0.0, 1e-300]
    decoded = features_of(values_text(numbers), ("a", "b", "c", "d"), float)
    assert list(decoded.values()) == numbers and all(type(v) is float for v in decoded.values())
    assert features_of('{"k":"a"}', ()) == {"k": "a"} and features_of(None, ()) == {}  # rows before schema 4
    with pytest.raises(ValueError):
        features_of(values_text(["a"]), ("k", "x"))


def _downgrade_to_3(log_place) -> None:
    """What a log of schema 3 looks like: the columns and index of migration 4 absent, version 3 recorded."""
    log_place.sql("DROP INDEX idx_arm_sets_key")
    log_place.sql("ALTER TABLE arm_sets DROP COLUMN key")
    for column in ("arm_set_key", "request_hash"):
        log_place.sql(f"ALTER TABLE decisions DROP COLUMN {column}")
    log_place.set_schema_version(3)


def _v4_row(event_id: str, **fields):
    arm_set_id, arm_set_text = V4_ARM_SET
    values = dict(arm_set_id=arm_set_id, arm_set_text=arm_set_text, arm_set_key=arm_set_key(arm_set_id),
                  context_json=values_text(["new", "ios"]), numeric_json=values_text([2.5]), fingerprint="f1:" + "cd" * 16,
                  user_key="n" * 32, decided_at=1002.0)
    values.update(fields)
    return _compact_row(event_id, None, None, np.full(12, 1 / 12), 3, arm=CANDIDATES.arms[3], **values)


def test_a_schema_3_log_upgrades_and_old_rows_read_beside_new_ones(log_place):
    old_pmf = np.array([0.1, 0.2, 0.3, 0.4]) / 1.0000001
    v3_pmf = np.full(12, 1 / 12)
    with open_log(log_place.url, writable=True) as log:  # rows as logs of schema 3 hold them
        log.insert_decisions([
            _old_row("old", old_pmf, [1, 4, 6, 11], chosen=2),
            _compact_row("v3", None, None, v3_pmf, 5, arm=CANDIDATES.arms[5], context_json='{"segment":"v3"}',
                         numeric_json='{"x":1.5}', fingerprint="f1:" + "ab" * 16),
        ]).result(10)
    _downgrade_to_3(log_place)
    assert log_place.schema_version() == 3
    with open_log(log_place.url, writable=True) as log:
        assert log_place.schema_version() == SCHEMA_VERSION == 4
        # the arm set stored before got its key, so a new row over it is keyed too
        assert log_place.sql("SELECT key FROM arm_sets WHERE id = ?", (V3_ARM_SET[0],)) == [(arm_set_key(V3_ARM_SET[0]),)]
        log.insert_decisions([
            _v4_row("new"),
            _v4_row("same", arm_set_id=V3_ARM_SET[0], arm_set_text=V3_ARM_SET[1], arm_set_key=arm_set_key(V3_ARM_SET[0]),
                    context_json="", numeric_json="", fingerprint="f1:" + "ef" * 16),
        ]).result(10)
        stored = {e: log.stored_decision(e) for e in ("old", "v3", "new", "same")}
        listed = {d.event_id: d for d in log.decisions()}
        held = {d.event_id: d for d in log.user_data(["n" * 32, "u" * 32]).decisions}
    raw = {r[0]: r[1:] for r in log_place.sql("SELECT event_id, arm_set_id, arm_set_key, fingerprint, request_hash, "
                                              "context FROM decisions")}
    assert raw["old"][:4] == (None, None, "f1:old", None)
    assert raw["v3"][:4] == (V3_ARM_SET[0], None, "f1:" + "ab" * 16, None) and raw["v3"][4] == '{"segment":"v3"}'
    for event_id, arm_set in (("new", V4_ARM_SET), ("same", V3_ARM_SET)):
        text_id, key, text_fingerprint, request_hash, _ = raw[event_id]
        assert (text_id, key, text_fingerprint) == (None, arm_set_key(arm_set[0]), None) and len(bytes(request_hash)) == 19
        assert stored[event_id].arm_set_id == arm_set[0] and stored[event_id].compact
    # every row decodes as it was written, through one decoder, in one log
    assert not stored["old"].compact and stored["old"].arm_set_id is None
    np.testing.assert_array_equal(stored["old"].decision.pmf, old_pmf)
    assert stored["old"].decision.context.context == {"segment": "old"} and stored["old"].decision.fingerprint == "f1:old"
    v3 = stored["v3"].decision
    assert stored["v3"].arm_set_id == V3_ARM_SET[0] and v3.fingerprint == "f1:" + "ab" * 16
    assert (v3.context.context, v3.context.numeric) == ({"segment": "v3"}, {"x": 1.5})
    assert v3.chosen_arm == CANDIDATES.arms[5] and v3.pmf[5] == v3_pmf[5]
    new = stored["new"].decision
    assert (new.context.context, new.context.numeric) == ({"segment": "new", "device": "ios"}, {"x": 2.5})
    assert new.fingerprint == "f1:" + "cd" * 16 and new.chosen_arm == CANDIDATES.arms[3]
    assert new.arm_set.arms == CANDIDATES.arms and (stored["new"].formats, stored["new"].time_slots) == (
        tuple(FORMATS), tuple(SLOTS))
    same = stored["same"].decision
    assert (same.context.context, same.context.numeric, same.fingerprint) == ({}, {}, "f1:" + "ef" * 16)
    assert all(listed[e].context == stored[e].decision.context for e in stored)
    # what the log holds about a customer shows the features by name, whichever way the row stores them
    assert json.loads(held["new"].context_json) == {"segment": "new", "device": "ios"}
    assert json.loads(held["new"].numeric_json) == {"x": 2.5} and json.loads(held["v3"].context_json) == {"segment": "v3"}


def test_a_key_another_arm_set_holds_is_not_used(log_where):
    """Two arm sets whose 63-bit keys collide (forced here): the second one's rows reference its text id."""
    with open_log(log_where, writable=True) as log:
        log.insert_decisions([_v4_row("first")]).result(10)
        other_id, other_text = arm_set_code(OFFER_SET_ID, tuple(FORMATS), tuple(SLOTS), ("segment", "device"), ("y",))
        log.insert_decisions([_v4_row("second", arm_set_id=other_id, arm_set_text=other_text,
                                      arm_set_key=arm_set_key(V4_ARM_SET[0]), numeric_json="[4.0]",
                                      context_json='["a\\u001fb","ios"]')]).result(10)
        first, second = log.stored_decision("first"), log.stored_decision("second")
    assert first.arm_set_id == V4_ARM_SET[0] and first.decision.context.numeric == {"x": 2.5}
    assert second.arm_set_id == other_id and second.decision.context.numeric == {"y": 4.0}
    assert second.decision.context.context == {"segment": "a\x1fb", "device": "ios"}
    assert second.decision.fingerprint == "f1:" + "cd" * 16 and second.decision.arm_set.arms == CANDIDATES.arms

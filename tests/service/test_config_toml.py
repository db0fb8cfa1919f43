"""The one TOML writer: whatever ends up in ids, features or parameters, tomllib reads back the same."""
from __future__ import annotations

import tomllib

import pytest

from policies.types import Offer
from service.config import parse_config
from service.config_toml import campaign_policy_toml, catalog_toml, toml_key, toml_string

AWKWARD = ['say "hi"', "back\\slash", "two\nlines", "tab\there", "cr\rlf", "nul\x00del\x7f", "ünïcødé ✓",
           "\\u0041 stays literal", "'single'", "#not a comment", "= [x]"]


@pytest.mark.parametrize("text", AWKWARD + ["", "plain"])
def test_a_string_round_trips(text):
    assert tomllib.loads(f"k = {toml_string(text)}\n")["k"] == text
    assert tomllib.loads(f"{toml_key(text or 'x')} = 1\n") == {text or "x": 1}


def test_a_catalogue_with_quotes_backslashes_and_newlines_round_trips():
    offers = [Offer(text, {"category": text, f"feat {text}": "v\\\"\n"}) for text in AWKWARD]
    formats, slots = ['e"mail', "sms\\n"], ["morning\nlate", "eve"]
    for campaign in ("default", 'odd "campaign"\n'):
        parsed = tomllib.loads(catalog_toml(campaign, offers, formats, slots, extra="reward_window_seconds = 60"))
        section = parsed["campaigns"][campaign]
        assert section["formats"] == formats and section["time_slots"] == slots
        assert section["reward_window_seconds"] == 60
        assert [(o["id"], o["features"]) for o in section["offers"]] == [(o.id, dict(o.features)) for o in offers]


def test_the_service_reads_the_catalogue_it_was_written():
    offers = [Offer('a"b', {"category": "x\\y"}), Offer("c\nd", {})]
    config = parse_config(catalog_toml("default", offers, ["sms"], ["morning"]))
    assert config.campaigns["default"].catalog.offers == tuple(offers)


def test_policy_toml_escapes_parameters():
    campaign = parse_config("").campaigns["default"]
    params = {'na"me': 'va\\l\nue', "rate": 0.5, "on": True, "tags": ["x\"y", "z"]}
    parsed = tomllib.loads(campaign_policy_toml(campaign, params))
    assert parsed["policy_params"] == {**params, "tags": ["x\"y", "z"]}
    assert parsed["campaign"]["name"] == "default"

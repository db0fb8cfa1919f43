"""The TOML configuration: the README's reference parses as documented; bad values name their field."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from offerbandit.errors import InvalidInput
from service.config import ServiceConfig, parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_reference_parses():
    text = README.read_text()
    section = text[text.index("## Configuration"):]
    block = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    config = parse_config(block)
    campaign = config.campaigns["default"]
    assert campaign.rules.caps[0].max_contacts == 2
    assert campaign.rules.quiet_hours[0].start_hour == 21
    assert campaign.novelty.floor == 0.1 and campaign.novelty.shrink_half_life == 20
    assert campaign.reward_window("email") == 259200 and campaign.reward_window("web") == 86400
    assert config.server.max_concurrent_rpcs == 256 and config.log.synchronous == "FULL"
    assert not config.guardrail.enabled and config.guardrail.alpha == 0.05 and config.guardrail.min_rewards == 200


def test_defaults_serve_without_a_file():
    config = ServiceConfig()
    assert list(config.campaigns) == ["default"]
    assert config.campaigns["default"].policy == "vw"
    assert len(config.campaigns["default"].catalog.offers) > 1


@pytest.mark.parametrize("toml,field", [
    ("[server]\nmax_workers = 0\n", "server.max_workers"),
    ("[server]\nmax_combined_decides = 0\n", "server.max_combined_decides"),
    ("[server]\nbogus = 1\n", "server"),
    ("[nonsense]\n", "config"),
    ("[log]\nsynchronous = \"SOMETIMES\"\n", "log.synchronous"),
    ("[limits]\nmax_offers = 0\n", "limits.max_offers"),
    ("[campaigns.default]\nmode = \"sometimes\"\n", "campaigns.default.mode"),
    ("[campaigns.default]\naggregation = \"max\"\n", "campaigns.default.aggregation"),
    ("[campaigns.default]\nreward_window_seconds = 0\n", "campaigns.default.reward_window_seconds"),
    ("[campaigns.default]\nexploration_slice = 2\n", "campaigns.default.exploration_slice"),
    ("[campaigns.default]\nformats = []\n", "campaigns.default.formats"),
    ("[campaigns.default]\ntime_slots = [\"a\", \"a\"]\n", "campaigns.default.time_slots"),
    ("[[campaigns.default.offers]]\nfeatures = {}\n", "campaigns.default.offers"),
    ("[campaigns.default.novelty]\nbeta = 1.5\n", "campaigns.default.novelty.beta"),
    ("[[campaigns.default.rules.caps]]\nformat = \"sms\"\nmax_contacts = -1\nwindow_s = 10\n",
     "campaigns.default.rules.caps[0]"),
    ("[mlflow]\nmodel_name_template = \"fixed\"\n", "mlflow.model_name_template"),
    ("not toml at all [", "config"),
    ("[guardrail]\nalpha = 0\n", "guardrail.alpha"),
    ("[guardrail]\nmin_rewards = 0\n", "guardrail.min_rewards"),
    ("[guardrail]\nenabled = \"yes\"\n", "guardrail.enabled"),
    ("[guardrail]\nbogus = 1\n", "guardrail"),
])
def test_bad_config_names_the_field(toml, field):
    with pytest.raises(InvalidInput) as err:
        parse_config(toml)
    assert err.value.field.startswith(field), (err.value.field, str(err.value))

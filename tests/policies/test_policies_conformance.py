"""Every registered policy passes every conformance check (each its own test)."""
import pytest

from policies.baselines import UniformPolicy
from policies.conformance import check_policy, registered_factories, yield_checks

CASES = [
    pytest.param(factory, check, id=f"{name}-{check.__name__}")
    for name, factory in registered_factories().items()
    for check in yield_checks(factory)
]


@pytest.mark.parametrize("factory, check", CASES)
def test_policy_conforms(factory, check):
    check(factory)


def test_check_policy_runs_the_whole_battery():
    check_policy(lambda seed: UniformPolicy())


class _LeakyUniform(UniformPolicy):
    """Breaks the contract: its pmf does not sum to 1."""

    def pmf(self, context, arm_set):
        return super().pmf(context, arm_set) * 0.5


def test_check_policy_names_the_check_that_fails():
    with pytest.raises(AssertionError, match="check_pmf_is_a_distribution"):
        check_policy(lambda seed: _LeakyUniform())


def _double_buffered_vw(seed):
    """VW with a serving and a learning workspace; publishing by event count only (deterministic), so
    the battery sees pmfs that lag learning between publishes."""
    from policies.vw import DoubleBuffer, VWPolicy, VWPolicyConfig
    return VWPolicy(VWPolicyConfig(seed=seed, bits=18),
                    double_buffer=DoubleBuffer(publish_every_events=25, publish_every_seconds=1e9))


@pytest.mark.parametrize("check", list(yield_checks(_double_buffered_vw)), ids=lambda check: check.__name__)
def test_double_buffered_vw_conforms(check):
    check(_double_buffered_vw)


def _posterior_vw(seed):
    """VW as the population model under the per-customer posterior (issue 16); the battery's contexts carry
    customer features half the time, cells included."""
    from policies.vw import VWPolicy, VWPolicyConfig
    return VWPolicy(VWPolicyConfig(seed=seed, bits=18, personal_model="posterior"))


@pytest.mark.parametrize("check", list(yield_checks(_posterior_vw)), ids=lambda check: check.__name__)
def test_posterior_vw_conforms(check):
    check(_posterior_vw)

"""Every registered policy passes every conformance check (each its own test)."""
import pytest

from policies.checks import registered_factories, yield_checks

CASES = [
    pytest.param(factory, check, id=f"{name}-{check.__name__}")
    for name, factory in registered_factories().items()
    for check in yield_checks(factory)
]


@pytest.mark.parametrize("factory, check", CASES)
def test_policy_conforms(factory, check):
    check(factory)

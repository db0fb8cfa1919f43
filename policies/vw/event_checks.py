"""What a learning event must be before VW learns from it: one InvalidInput naming the field, else the event."""
from __future__ import annotations

from offerbandit.checks import check_range, check_scalar
from offerbandit.errors import InvalidInput
from policies.types import ArmSet, DecisionContext, LearningEvent

__all__ = ["check_event", "check_event_arms", "check_event_fields", "check_event_numbers"]


def check_event(event: LearningEvent, index: int) -> LearningEvent:
    """``event`` (the ``index``-th of a batch) if VW can learn from it, else InvalidInput naming the field."""
    check_event_fields(event, index)
    check_event_arms(event, index)
    return check_event_numbers(event, index)


def check_event_fields(event: LearningEvent, index: int) -> None:
    if not isinstance(event, LearningEvent):
        raise InvalidInput(f"events[{index}] must be a LearningEvent", field=f"events[{index}]")
    if not isinstance(event.context, DecisionContext):
        raise InvalidInput(f"events[{index}].context must be a DecisionContext", field=f"events[{index}].context")
    if not isinstance(event.arm_set, ArmSet):
        raise InvalidInput(f"events[{index}].arm_set must be an ArmSet", field=f"events[{index}].arm_set")


def check_event_arms(event: LearningEvent, index: int) -> None:
    offers = event.arm_set.offers
    for arm_index, arm in enumerate(event.arm_set.arms):
        if arm.offer_id not in offers:
            raise InvalidInput(f"events[{index}] arm {arm_index} refers to an unknown offer {arm.offer_id!r}",
                               field=f"events[{index}].arm_set.arms[{arm_index}].offer_id")


def check_event_numbers(event: LearningEvent, index: int) -> LearningEvent:
    n_arms = len(event.arm_set.arms)
    if n_arms == 0:
        raise InvalidInput(f"events[{index}].chosen cannot index an empty arm set", field=f"events[{index}].chosen")
    if _plainly_valid_numbers(event, n_arms):
        return event
    check_scalar(event.chosen, f"events[{index}].chosen", int, low=0, high=n_arms - 1)
    check_scalar(event.probability, f"events[{index}].probability", low=0.0, high=1.0, low_open=True)
    low, high = check_range(event.reward_range, f"events[{index}].reward_range")
    check_scalar(event.reward, f"events[{index}].reward", low=low, high=high)
    return event


def _plainly_valid_numbers(event: LearningEvent, n_arms: int) -> bool:
    """The common case checked without building ``check_scalar``'s messages: plain ints and floats in
    range (NaN fails every comparison). Anything else goes through ``check_scalar``, which decides."""
    chosen, probability, reward, reward_range = event.chosen, event.probability, event.reward, event.reward_range
    if type(chosen) is not int or not 0 <= chosen < n_arms:
        return False
    if type(probability) is not float or not 0.0 < probability <= 1.0:
        return False
    if type(reward_range) is not tuple or len(reward_range) != 2:
        return False
    low, high = reward_range
    if type(low) is not float or type(high) is not float or not -_FINITE < low < high < _FINITE:
        return False
    return type(reward) is float and low <= reward <= high


_FINITE = float("inf")

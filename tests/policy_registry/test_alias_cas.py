"""Champion moves are compare-and-set (a checkpoint never undoes another move) and rollback returns to
the newest version of the lineage the last operator move replaced (across checkpoints)."""
from __future__ import annotations

import pytest

from offerbandit.errors import NotFound
from policy_registry import CHAMPION, PREVIOUS_CHAMPION, PolicyRegistry
from tests.policy_registry.test_model_registry import make_artifact


def _publish(registry: PolicyRegistry, parent: str | None = None) -> str:
    return registry.publish(make_artifact(parent=parent), aliases=())


def test_a_checkpoint_moves_champion_only_from_its_parent(mlflow_registry: PolicyRegistry) -> None:
    first = _publish(mlflow_registry)
    assert mlflow_registry.move_champion("default", first, expected=None)  # no champion yet
    again = _publish(mlflow_registry)
    assert not mlflow_registry.move_champion("default", again, expected=None)  # one exists now
    checkpoint = _publish(mlflow_registry, parent=first)
    assert mlflow_registry.move_champion("default", checkpoint, expected=first)
    stale = _publish(mlflow_registry, parent=first)
    assert not mlflow_registry.move_champion("default", stale, expected=first)  # champion moved on
    assert mlflow_registry.resolve("default", CHAMPION) == checkpoint


def test_rollback_returns_to_the_head_of_the_replaced_lineage(mlflow_registry: PolicyRegistry) -> None:
    v1 = _publish(mlflow_registry)
    mlflow_registry.move_champion("default", v1, expected=None)
    v2 = _publish(mlflow_registry, parent=v1)
    mlflow_registry.move_champion("default", v2, expected=v1)
    other = _publish(mlflow_registry)
    assert mlflow_registry.promote("default", other, gate=None, force=True, who="ops", why="new").promoted
    late = _publish(mlflow_registry, parent=v2)  # a checkpoint of the old lineage published without the alias
    other_ckpt = _publish(mlflow_registry, parent=other)
    mlflow_registry.move_champion("default", other_ckpt, expected=other)

    result = mlflow_registry.rollback("default", who="oncall", why="bad")
    assert (result.champion_before, result.champion_after) == (other_ckpt, late)
    assert mlflow_registry.resolve("default", PREVIOUS_CHAMPION) == other_ckpt
    after_rollback = _publish(mlflow_registry, parent=late)
    mlflow_registry.move_champion("default", after_rollback, expected=late)
    undo = mlflow_registry.rollback("default", who="oncall", why="false alarm")
    assert undo.champion_after == other_ckpt
    assert mlflow_registry.rollback_target("default") == after_rollback


def test_rollback_to_the_champion_itself_is_refused(mlflow_registry: PolicyRegistry) -> None:
    v1 = _publish(mlflow_registry)
    assert mlflow_registry.promote("default", v1, gate=None, who="x", why="first").promoted  # replaced nothing
    with pytest.raises(NotFound, match="previous champion"):
        mlflow_registry.rollback("default", who="x", why="nothing to return to")

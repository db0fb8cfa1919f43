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


def test_the_guardrail_rolls_the_judged_lineage_back_and_never_an_operators_later_move(
        mlflow_registry: PolicyRegistry) -> None:
    old = _publish(mlflow_registry)
    mlflow_registry.move_champion("default", old, expected=None)
    judged = _publish(mlflow_registry)
    assert mlflow_registry.promote("default", judged, gate=None, force=True, who="ops", why="new").promoted
    checkpoint = _publish(mlflow_registry, parent=judged)
    mlflow_registry.move_champion("default", checkpoint, expected=judged)
    assert mlflow_registry.lineage_versions("default", judged) == {judged, checkpoint}

    result = mlflow_registry.guardrail_rollback("default", judged=judged, target=old, why="worse: -0.3",
                                                metrics={"guardrail_estimate": -0.3})
    assert (result.champion_before, result.champion_after) == (checkpoint, old)
    client = mlflow_registry._store.client()
    for version in (judged, checkpoint):  # the metric on the promoted version's run and the rolled-back one's
        record = client.get_model_version("offerbandit-default", version)
        assert record.tags["guardrail.verdict"] == "rolled_back"
        metrics = client.get_run(record.run_id).data.metrics
        assert (metrics["guardrail_rollback"], metrics["guardrail_estimate"]) == (1.0, -0.3)
    assert client.get_model_version("offerbandit-default", old).tags["champion.set_by"] == "guardrail"
    assert mlflow_registry.rollback_target("default") == checkpoint  # it is the last operator move: undoable
    # judged again later (its promote no longer the last operator move): nothing moves
    assert mlflow_registry.guardrail_rollback("default", judged=judged, target=old, why="again", metrics={}) is None

    other = _publish(mlflow_registry)
    assert mlflow_registry.promote("default", other, gate=None, force=True, who="ops", why="newer").promoted
    assert mlflow_registry.guardrail_rollback("default", judged=judged, target=old, why="stale", metrics={}) is None
    assert mlflow_registry.resolve("default", CHAMPION) == other  # an operator's move is never undone

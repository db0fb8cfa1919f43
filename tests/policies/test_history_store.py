"""UserHistoryStore: horizon, LRU bound, deferred contacts, per-user locking, rebuild from records."""
from __future__ import annotations

import random
import threading

import pytest

from offerbandit.errors import InvalidInput
from policies.history import HistoryConfig, HistoryRecord, UserHistory, UserHistoryStore
from policies.types import JointArm

SMS_MORNING = JointArm("o1", "sms", "morning")
EMAIL_EVENING = JointArm("o2", "email", "evening")


def _store(**kwargs) -> UserHistoryStore:
    return UserHistoryStore(HistoryConfig(**kwargs))


def test_unknown_user_has_empty_history_and_is_not_added():
    store = _store()
    history = store.snapshot("nobody", now=100.0)
    assert history == UserHistory.empty(100.0)
    assert history.is_new
    assert "nobody" not in store


def test_counted_contact_shows_every_dimension():
    store = _store()
    store.record_contact("u", event_id="e1", when=10.0, arm=SMS_MORNING, category="food", counts=True)
    h = store.snapshot("u", now=20.0)
    assert h.n_contacts == 1
    assert h.shown("category") == {"food"}
    assert h.shown("format") == {"sms"}
    assert h.shown("time_slot") == {"morning"}
    assert h.shown("offer") == {"o1"}
    assert h.contact_times == {"sms": (10.0,)}
    assert h.responded("category") == frozenset()


def test_repeated_event_id_is_recorded_once():
    store = _store()
    for _ in range(3):
        store.record_contact("u", event_id="e1", when=10.0, arm=SMS_MORNING, category="food", counts=True)
    assert store.snapshot("u", now=11.0).n_contacts == 1


def test_entries_older_than_horizon_are_dropped():
    store = _store(horizon_s=100.0)
    store.record_contact("u", event_id="e1", when=0.0, arm=SMS_MORNING, category="food", counts=True)
    store.record_contact("u", event_id="e2", when=50.0, arm=EMAIL_EVENING, category="travel", counts=True)
    store.record_response("u", event_id="e1", when=5.0, arm=SMS_MORNING, category="food", reward=1.0)
    assert store.snapshot("u", now=100.0).shown("category") == {"food", "travel"}
    later = store.snapshot("u", now=120.0)
    assert later.shown("category") == {"travel"}
    assert later.responded("category") == frozenset()
    assert later.n_contacts == 1
    assert store.snapshot("u", now=151.0).is_new


def test_deferred_contact_counts_only_after_activate_and_from_activation_time():
    store = _store(horizon_s=1000.0)
    store.record_contact("u", event_id="d1", when=10.0, arm=SMS_MORNING, category="food", counts=False)
    before = store.snapshot("u", now=20.0)
    assert before.n_contacts == 0 and before.shown("category") == frozenset()
    assert store.activate("u", "d1", when=30.0) is True
    after = store.snapshot("u", now=40.0)
    assert after.n_contacts == 1
    assert after.contact_times == {"sms": (30.0,)}
    assert after.contacts_since("sms", 25.0) == 1
    assert store.activate("u", "d1", when=50.0) is False  # already active
    assert store.activate("u", "unknown", when=50.0) is False


def test_response_marks_responded_only_when_positive():
    store = _store()
    store.record_contact("u", event_id="e1", when=1.0, arm=SMS_MORNING, category="food", counts=True)
    store.record_contact("u", event_id="e2", when=2.0, arm=EMAIL_EVENING, category="travel", counts=True)
    store.record_response("u", event_id="e1", when=3.0, arm=SMS_MORNING, category="food", reward=0.0)
    store.record_response("u", event_id="e2", when=3.0, arm=EMAIL_EVENING, category="travel", reward=2.5)
    h = store.snapshot("u", now=4.0)
    assert h.responded("category") == {"travel"}
    assert h.responded("format") == {"email"}


def test_contacts_since_counts_per_format_and_any():
    store = _store()
    for i, arm in enumerate([SMS_MORNING, SMS_MORNING, EMAIL_EVENING]):
        store.record_contact("u", event_id=f"e{i}", when=float(i * 10), arm=arm, category="c", counts=True)
    h = store.snapshot("u", now=30.0)
    assert h.contacts_since("sms", -1.0) == 2
    assert h.contacts_since("sms", 0.0) == 1  # strictly after
    assert h.contacts_since("email", 5.0) == 1
    assert h.contacts_since("push", -1.0) == 0
    assert h.contacts_since("*", 5.0) == 2


def test_per_user_entries_are_bounded():
    store = _store(max_entries_per_user=3)
    for i in range(10):
        store.record_contact("u", event_id=f"e{i}", when=float(i), arm=SMS_MORNING, category=f"c{i}", counts=True)
    h = store.snapshot("u", now=10.0)
    assert h.n_contacts == 3
    assert h.shown("category") == {"c7", "c8", "c9"}


def test_lru_bound_drops_least_recently_used_user():
    store = _store(max_users=2)
    store.record_contact("a", event_id="e1", when=1.0, arm=SMS_MORNING, category="x", counts=True)
    store.record_contact("b", event_id="e2", when=1.0, arm=SMS_MORNING, category="x", counts=True)
    store.snapshot("a", now=2.0)  # touch a: b becomes the least recently used
    store.record_contact("c", event_id="e3", when=1.0, arm=SMS_MORNING, category="x", counts=True)
    assert len(store) == 2
    assert "a" in store and "c" in store and "b" not in store
    assert store.snapshot("b", now=2.0).is_new


def test_locked_user_is_not_evicted_while_in_use():
    store = _store(max_users=1)
    with store.locked("a") as a:
        a.record_contact(event_id="e1", when=1.0, arm=SMS_MORNING, category="x", counts=True)
        store.record_contact("b", event_id="e2", when=1.0, arm=SMS_MORNING, category="x", counts=True)
        assert a.snapshot(2.0).n_contacts == 1
    assert len(store) == 1 and "a" in store  # the bound holds again once the lock is released


def test_per_user_lock_makes_read_modify_write_atomic():
    """Threads each read the contact count and record one more under the lock: no update is lost."""
    store = _store(max_entries_per_user=10_000)
    n_threads, per_thread = 8, 200
    barrier = threading.Barrier(n_threads)
    seen_counts: list[int] = []

    def work(thread: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            with store.locked("shared") as user:
                n = user.snapshot(1e6).n_contacts
                user.record_contact(event_id=f"t{thread}-{i}", when=float(n), arm=SMS_MORNING,
                                    category="c", counts=True)
                seen_counts.append(n)
            store.record_contact(f"own-{thread}", event_id=f"{i}", when=float(i), arm=SMS_MORNING,
                                 category="c", counts=True)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = n_threads * per_thread
    assert store.snapshot("shared", now=1e6).n_contacts == total
    # Under the lock every reader saw a distinct count: 0, 1, ..., total - 1.
    assert sorted(seen_counts) == list(range(total))
    assert all(store.snapshot(f"own-{t}", now=1e6).n_contacts == per_thread for t in range(n_threads))


def _random_decisions(seed: int):
    rng = random.Random(seed)
    arms = [JointArm(f"o{i}", f, s) for i in range(5) for f in ("sms", "email") for s in ("morning", "evening")]
    t = 0.0
    for i in range(300):
        t += rng.uniform(0.0, 20.0)
        arm = rng.choice(arms)
        deferred = rng.random() < 0.3
        activated_at = t + rng.uniform(1.0, 30.0) if deferred and rng.random() < 0.6 else None
        reward = rng.choice([None, 0.0, 1.0])
        yield dict(user=f"u{rng.randrange(7)}", event_id=f"e{i}", when=t, arm=arm, category=f"cat{arm.offer_id[-1]}",
                   deferred=deferred, activated_at=activated_at, reward=reward, reward_at=t + 40.0)


def test_rebuild_from_records_equals_incremental_updates():
    decisions = list(_random_decisions(7))
    incremental = _store(horizon_s=500.0)
    # Apply the incremental operations in global time order, as the live server would.
    operations = []
    for d in decisions:
        operations.append((d["when"], 0, "contact", d))
        if d["activated_at"] is not None:
            operations.append((d["activated_at"], 1, "activate", d))
        if d["reward"] is not None:
            operations.append((d["reward_at"], 2, "reward", d))
    for _, _, kind, d in sorted(operations, key=lambda op: (op[0], op[1])):
        if kind == "contact":
            incremental.record_contact(d["user"], event_id=d["event_id"], when=d["when"], arm=d["arm"],
                                       category=d["category"], counts=not d["deferred"])
        elif kind == "activate":
            incremental.activate(d["user"], d["event_id"], d["activated_at"])
        else:
            incremental.record_response(d["user"], event_id=d["event_id"], when=d["reward_at"], arm=d["arm"],
                                        category=d["category"], reward=d["reward"])

    records = []
    for d in decisions:
        counted = not d["deferred"] or d["activated_at"] is not None
        if not counted:
            continue  # never activated: never counted, nothing to rebuild
        when = d["activated_at"] if d["deferred"] else d["when"]
        records.append(HistoryRecord(user_key=d["user"], event_id=d["event_id"], when=when, arm=d["arm"],
                                     category=d["category"], counted=True, reward=d["reward"],
                                     reward_when=d["reward_at"]))
    rebuilt = _store(horizon_s=500.0)
    rebuilt.record_contact("stale", event_id="x", when=0.0, arm=SMS_MORNING, category="c", counts=True)
    rebuilt.rebuild(reversed(records))

    assert "stale" not in rebuilt
    end = max(op[0] for op in operations)
    users = {d["user"] for d in decisions}
    for now in (end, end + 100.0, end + 400.0):
        for user in users:
            assert rebuilt.snapshot(user, now) == incremental.snapshot(user, now), (user, now)
    assert any(not rebuilt.snapshot(u, end).is_new for u in users)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_users": 0}, "max_users"),
        ({"max_users": 2.5}, "max_users"),
        ({"max_users": True}, "max_users"),
        ({"horizon_s": 0.0}, "horizon_s"),
        ({"horizon_s": -5.0}, "horizon_s"),
        ({"horizon_s": float("inf")}, "horizon_s"),
        ({"horizon_s": float("nan")}, "horizon_s"),
        ({"max_entries_per_user": 0}, "max_entries_per_user"),
    ],
)
def test_invalid_history_config_names_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as info:
        HistoryConfig(**kwargs)
    assert info.value.field == field
    assert field in str(info.value)


def test_unknown_dimension_is_refused():
    with pytest.raises(InvalidInput) as info:
        UserHistory.empty().shown("colour")
    assert info.value.field == "dimension"


def test_shown_counts_follow_contacts_and_the_horizon():
    store = _store(horizon_s=100.0)
    store.record_contact("u", event_id="e1", when=0.0, arm=SMS_MORNING, category="food", counts=True)
    store.record_contact("u", event_id="e2", when=10.0, arm=EMAIL_EVENING, category="food", counts=True)
    store.record_contact("u", event_id="e3", when=20.0, arm=SMS_MORNING, category="travel", counts=True)
    store.record_contact("u", event_id="e4", when=30.0, arm=SMS_MORNING, category="books", counts=False)
    h = store.snapshot("u", now=50.0)
    assert h.shown_counts("category") == {"food": 2, "travel": 1}  # the deferred one does not count yet
    assert h.shown_counts("format") == {"sms": 2, "email": 1}
    assert h.shown_counts("offer") == {"o1": 2, "o2": 1}
    assert store.snapshot("u", now=105.0).shown_counts("category") == {"food": 1, "travel": 1}
    assert store.snapshot("u", now=1_000.0).shown_counts("category") == {}
    with pytest.raises(InvalidInput):
        h.shown_counts("colour")


def test_hand_built_history_counts_each_shown_value_once():
    history = UserHistory(as_of=0.0, n_contacts=2, shown_categories=frozenset({"food", "travel"}))
    assert history.shown_counts("category") == {"food": 1, "travel": 1}
    with pytest.raises(InvalidInput):
        UserHistory(as_of=0.0, shown_value_counts={"colour": {"red": 1}})


# --- issue 14: contacts count once committed; the log answers for users not held ------------------

def test_a_pending_contact_counts_at_once_and_a_discarded_one_never_happened():
    store = _store()
    with store.locked("u") as user:
        user.record_contact(event_id="p1", when=10.0, arm=SMS_MORNING, category="food", counts=True, committed=False)
        assert user.snapshot(11.0).contacts_since("sms", 0.0) == 1  # the next item of the batch sees it
    store.discard("u", "p1")
    after = store.snapshot("u", 12.0)
    assert after.contacts_since("sms", 0.0) == 0 and after.shown("category") == frozenset()
    store.record_contact("u", event_id="p2", when=13.0, arm=SMS_MORNING, category="food", counts=True)
    store.discard("u", "p2")  # a committed contact is never discarded
    assert store.snapshot("u", 14.0).contacts_since("sms", 0.0) == 1


def test_a_confirmed_contact_stays_and_discarding_a_deferred_one_removes_it():
    store = _store()
    with store.locked("u") as user:
        user.record_contact(event_id="c", when=1.0, arm=SMS_MORNING, category="food", counts=True, committed=False)
        user.record_contact(event_id="d", when=2.0, arm=EMAIL_EVENING, category="x", counts=False, committed=False)
    store.confirm("u", "c")
    store.discard("u", "c")
    store.discard("u", "d")
    assert not store.activate("u", "d", 3.0)  # the deferred decision was never committed
    assert store.snapshot("u", 4.0).contacts_since("*", 0.0) == 1


def test_users_with_pending_contacts_are_not_evicted():
    store = _store(max_users=1)
    with store.locked("a") as user:
        user.record_contact(event_id="a1", when=1.0, arm=SMS_MORNING, category="x", counts=True, committed=False)
    store.record_contact("b", event_id="b1", when=1.0, arm=SMS_MORNING, category="x", counts=True)
    assert "a" in store
    store.confirm("a", "a1")
    store.record_contact("c", event_id="c1", when=1.0, arm=SMS_MORNING, category="x", counts=True)
    assert "a" not in store


def test_a_user_not_held_is_loaded_so_eviction_never_lifts_a_cap():
    committed = {"a": [HistoryRecord("a", "a1", 5.0, SMS_MORNING, "food", True, reward=1.0)]}
    calls = []

    def loader(key):
        calls.append(key)
        return committed.get(key, [])

    store = UserHistoryStore(HistoryConfig(max_users=2), loader=loader)
    for i in range(10):
        store.snapshot(f"flood{i}", 6.0)
    history = store.snapshot("a", 6.0)
    assert history.contacts_since("sms", 0.0) == 1 and history.responded("category") == {"food"}
    store.snapshot("a", 7.0)
    assert calls.count("a") == 1  # loaded once while held
    assert len(store) <= 2


def test_a_failing_loader_leaves_the_user_unloaded():
    attempts = []

    def loader(key):
        attempts.append(key)
        if len(attempts) == 1:
            raise OSError("log unavailable")
        return [HistoryRecord(key, "e", 1.0, SMS_MORNING, "food", True)]

    store = UserHistoryStore(HistoryConfig(), loader=loader)
    with pytest.raises(OSError):
        store.snapshot("u", 2.0)
    assert store.snapshot("u", 2.0).contacts_since("sms", 0.0) == 1


def test_a_complete_rebuild_skips_the_loader_until_the_first_eviction():
    committed = {"a": [HistoryRecord("a", "a1", 5.0, SMS_MORNING, "food", True)],
                 "b": [HistoryRecord("b", "b1", 5.0, SMS_MORNING, "food", True)]}
    calls = []

    def loader(key):
        calls.append(key)
        return committed.get(key, [])

    store = UserHistoryStore(HistoryConfig(max_users=3), loader=loader)
    store.rebuild(committed["a"], complete=True)
    assert store.complete
    assert store.snapshot("new", 6.0).contacts_since("sms", 0.0) == 0 and calls == []  # none: not read
    assert store.snapshot("a", 6.0).contacts_since("sms", 0.0) == 1 and calls == []
    for i in range(5):  # past max_users: someone is evicted, the store no longer knows everyone
        store.snapshot(f"flood{i}", 6.0)
    assert not store.complete
    assert store.snapshot("b", 6.0).contacts_since("sms", 0.0) == 1 and calls[-1] == "b"  # read from the log
    assert "new" not in calls and "a" not in calls and calls[0] == "flood1"  # flood0 came before any eviction
    store.rebuild([], complete=False)
    assert not store.complete


def test_forget_drops_the_committed_past_rereads_the_log_and_keeps_contacts_in_flight():
    """After an erasure: what the log still holds (a decision committed since) and the contacts whose commit
    is under way stay; everything else of the customer goes, responses included."""
    log = {"u": []}
    store = UserHistoryStore(HistoryConfig(), loader=lambda key: log[key])
    with store.locked("u") as user:
        user.record_contact(event_id="erased", when=100.0, arm=SMS_MORNING, category="food", counts=True)
        user.record_response(event_id="erased", when=101.0, arm=SMS_MORNING, category="food", reward=1.0)
        user.record_contact(event_id="in-flight", when=102.0, arm=EMAIL_EVENING, category="tech", counts=True,
                            committed=False)
    log["u"] = [HistoryRecord(user_key="u", event_id="since", when=103.0, arm=SMS_MORNING, category="travel",
                              counted=True, reward=None)]
    assert store.forget("u") and not store.forget("never-seen")
    history = store.snapshot("u", 104.0)
    assert history.n_contacts == 2 and history.shown_categories == {"tech", "travel"}
    assert not history.responded_offers
    store.discard("u", "in-flight")  # its commit failed after all: it goes as if never recorded
    assert store.snapshot("u", 104.0).n_contacts == 1


def test_cells_count_the_joint_category_format_and_slot_not_the_product_of_the_marginals():
    """Travel by SMS in the morning answered, food by e-mail in the evening ignored: the marginals alone cannot
    tell travel-by-e-mail from travel-by-SMS; the cells can, and they leave the horizon with their contacts."""
    from policies.history.customer import customer_features
    from policies.types import cell_key

    store = _store(horizon_s=100.0)
    store.record_contact("u", event_id="a", when=1.0, arm=SMS_MORNING, category="travel", counts=True)
    store.record_response("u", event_id="a", when=2.0, arm=SMS_MORNING, category="travel", reward=1.0)
    store.record_contact("u", event_id="b", when=50.0, arm=EMAIL_EVENING, category="food", counts=True)
    store.record_contact("u", event_id="c", when=60.0, arm=EMAIL_EVENING, category="food", counts=True)
    cells = customer_features(store.snapshot("u", 70.0)).counts["cell"]
    assert dict(cells) == {cell_key("travel", "sms", "morning"): (1, 1), cell_key("food", "email", "evening"): (2, 0)}
    assert cell_key("travel", "email", "morning") not in cells
    later = customer_features(store.snapshot("u", 140.0)).counts["cell"]  # contact "a" and its answer expired
    assert dict(later) == {cell_key("food", "email", "evening"): (2, 0)}


def _tracked_objects_of(root: object) -> int:
    """Objects the garbage collector tracks that ``root`` reaches (``root`` included, classes not: they are
    shared by every instance), shared ones once."""
    import gc

    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or not gc.is_tracked(obj):
            continue
        seen.add(id(obj))
        stack.extend(gc.get_referents(obj))
    return len(seen)


def test_a_held_user_costs_the_garbage_collector_four_objects_whatever_its_history():
    """A full collection walks every tracked object, stopping every thread: at a million users, an object per
    entry (the layout before: ~23 a user with three contacts) made it seconds. Here a user is its state, its
    lock and its two timelines, whether it holds one entry or a hundred."""
    import gc

    store = _store()
    for n in (1, 100):
        for i in range(n):
            store.record_contact(f"u{n}", event_id=f"e{n}-{i}", when=float(i), arm=SMS_MORNING, category="food",
                                 counts=True)
            store.record_response(f"u{n}", event_id=f"e{n}-{i}", when=float(i), arm=SMS_MORNING, category="food",
                                  reward=1.0)
        store.record_contact(f"u{n}", event_id=f"deferred-{n}", when=float(n), arm=EMAIL_EVENING, category="tech",
                             counts=False)
        store.activate(f"u{n}", f"deferred-{n}", float(n) + 1)
    gc.collect()  # tuples and dicts of atomic values stop being tracked in a collection
    gc.collect()
    for n in (1, 100):
        state = store._users[f"u{n}"]
        assert store.snapshot(f"u{n}", float(n) + 2).n_contacts == n + 1
        assert _tracked_objects_of(state) == 4  # the state, its lock, its contacts and its responses

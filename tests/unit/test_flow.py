"""Flow control's policy and ledger: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from events.catalog import GoalCompleted, GoalDequeued, GoalQueued
from events.errors import ConfigurationError
from events.flow import FlowPolicy, goal_keys, key_limits, parse_flow_policy
from events.model import Event
from services.planner.flow import FlowLedger, Start, Wait

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _policy(text: str) -> FlowPolicy:
    policy = parse_flow_policy(text)
    assert policy is not None
    return policy


def _admit(ledger: FlowLedger, goal_id: str, *, at: datetime = T0, **metadata: object):
    keys = ledger.keys_of(dict(metadata))
    priority = int(str(metadata.pop("priority", 0)))
    return ledger.admit(goal_id, keys, priority, at)


def test_keys_come_from_metadata_and_a_value_rule_overrides_its_field() -> None:
    policy = _policy(
        '{"limits": [{"key": "tenant", "concurrency": 3},'
        ' {"key": "tenant", "value": "acme", "concurrency": 10},'
        ' {"key": "*", "rate": {"goals": 5, "per_s": 1}}]}'
    )
    assert goal_keys(policy, {"tenant": "acme"}) == ("tenant=acme", "*")
    assert goal_keys(policy, {"tenant": 7}) == ("tenant=7", "*")
    assert goal_keys(policy, {"tenant": {"nested": 1}}) == ("*",)
    assert goal_keys(policy, {}) == ("*",)
    long_key = goal_keys(policy, {"tenant": "x" * 500})[0]
    assert long_key.startswith("tenant=sha256:")
    assert len(long_key) < 100
    assert key_limits(policy, "tenant=acme").concurrency == 10
    assert key_limits(policy, "tenant=globex").concurrency == 3
    assert key_limits(policy, "user=bob").concurrency is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"limits": [{"key": "tenant"}]}', "neither concurrency nor rate"),
        ('{"limits": [{"key": "tenant", "concurrency": 0}]}', ">= 1"),
        ('{"limits": [{"key": "a", "concurrency": 1}, {"key": "a", "concurrency": 2}]}', "twice"),
        ('{"limits": [{"key": "*", "value": "x", "concurrency": 1}]}', "takes no value"),
        ('{"limit": []}', "unknown field"),
        ("[" * 10_000, "not a flow policy"),
    ],
)
def test_a_bad_policy_is_refused_with_what_to_fix(text: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse_flow_policy(text)


def test_off_and_empty_policies_limit_nothing() -> None:
    assert parse_flow_policy("off") is None
    assert parse_flow_policy("") is None
    assert parse_flow_policy('{"limits": []}') is None


def test_at_most_n_run_and_the_rest_start_in_arrival_order() -> None:
    ledger = FlowLedger(_policy('{"limits": [{"key": "tenant", "concurrency": 2}]}'))
    outcomes = [_admit(ledger, f"a{n}", tenant="a")[0] for n in range(5)]
    assert [type(o) for o in outcomes] == [Start, Start, Wait, Wait, Wait]
    assert isinstance(outcomes[2], Wait)
    assert outcomes[2].reason == "tenant=a: 2 of 2 running"
    # Another key is not held back.
    assert isinstance(_admit(ledger, "b0", tenant="b")[0], Start)
    assert [s.goal_id for s in ledger.finish("a1", T0)] == ["a2"]
    assert [s.goal_id for s in ledger.finish("a0", T0)] == ["a3"]
    assert ledger.running_of("tenant=a") == 2
    # Asked again, the ledger answers as before and starts nothing more.
    again, others = _admit(ledger, "a4", tenant="a")
    assert isinstance(again, Wait)
    assert others == []


def test_priority_goes_first_then_arrival() -> None:
    ledger = FlowLedger(_policy('{"limits": [{"key": "*", "concurrency": 1}]}'))
    _admit(ledger, "first")
    for goal_id, priority in [("low", -1), ("mid1", 0), ("high", 5), ("mid2", 0)]:
        assert isinstance(_admit(ledger, goal_id, priority=priority)[0], Wait)
    order = []
    running = "first"
    while True:
        started = ledger.finish(running, T0)
        if not started:
            break
        running = started[0].goal_id
        order.append(running)
    assert order == ["high", "mid1", "mid2", "low"]


def test_a_rate_limit_spaces_starts_and_says_when_it_opens() -> None:
    ledger = FlowLedger(_policy('{"limits": [{"key": "user", "rate": {"goals": 2, "per_s": 10}}]}'))
    kinds = [type(_admit(ledger, f"g{n}", user="u", at=T0)[0]) for n in range(3)]
    assert kinds == [Start, Start, Wait]
    assert ledger.next_opening(T0) == T0 + timedelta(seconds=10)
    assert ledger.due(T0 + timedelta(seconds=9.9)) == []
    # A newcomer arriving as the window opens does not overtake the goal that waited.
    newcomer, others = _admit(ledger, "late", user="u", at=T0 + timedelta(seconds=10))
    assert isinstance(newcomer, Start)
    assert [s.goal_id for s in others] == ["g2"]


def test_a_goal_held_by_one_key_does_not_hold_back_its_other_keys() -> None:
    ledger = FlowLedger(
        _policy(
            '{"limits": [{"key": "tenant", "concurrency": 2}, {"key": "user", "concurrency": 1}]}'
        )
    )
    assert isinstance(_admit(ledger, "x1", tenant="t", user="u1")[0], Start)
    assert isinstance(_admit(ledger, "x2", tenant="t", user="u1")[0], Wait)  # held by user=u1
    assert isinstance(_admit(ledger, "x3", tenant="t", user="u2")[0], Start)


def test_a_withdrawn_goal_never_starts_and_an_undone_start_waits_again() -> None:
    ledger = FlowLedger(_policy('{"limits": [{"key": "*", "concurrency": 1}]}'))
    _admit(ledger, "run")
    _admit(ledger, "cancelled")
    _admit(ledger, "next")
    ledger.withdraw("cancelled")
    [start] = ledger.finish("run", T0)
    assert start.goal_id == "next"
    ledger.undo_start(start)
    assert [s.goal_id for s in ledger.due(T0)] == ["next"]


def _stamped(cls: type[Event], goal_id: str, at: datetime, **fields: object) -> Event:
    return cls(
        event_id=f"{goal_id}-{cls.__name__}",
        goal_id=goal_id,
        occurred_at=at,
        causation_id=None,
        correlation_id=goal_id,
        producer="planner@test",
        **fields,
    )


def test_restore_rebuilds_who_holds_slots_and_who_waits() -> None:
    policy = _policy('{"limits": [{"key": "*", "concurrency": 2}]}')
    record = [
        _stamped(GoalDequeued, "done", T0, keys=("*",)),
        _stamped(GoalDequeued, "running", T0, keys=("*",)),
        _stamped(GoalQueued, "waits1", T0, keys=("*",), ticket=7),
        _stamped(GoalQueued, "waits2", T0, keys=("*",), ticket=8),
        _stamped(GoalCompleted, "done", T0, result="", iterations=1, score=1.0),
    ]
    ledger = FlowLedger(policy)
    assert [s.goal_id for s in ledger.restore(record, T0)] == ["waits1"]
    assert ledger.held() == 2
    assert ledger.waiting() == 1
    # Tickets go on after the highest recorded one.
    assert isinstance(wait := _admit(ledger, "new")[0], Wait)
    assert wait.ticket == 9
    # Without a policy any more, everything that waited starts.
    assert [s.goal_id for s in FlowLedger(None).restore(record, T0)] == ["waits1", "waits2"]


def test_keys_of_goals_long_gone_are_dropped() -> None:
    ledger = FlowLedger(
        _policy('{"limits": [{"key": "tenant", "rate": {"goals": 1, "per_s": 1}}]}')
    )
    for n in range(10_000):
        at = T0 + timedelta(seconds=n)  # each tenant's start has left its window by the next
        assert isinstance(_admit(ledger, f"g{n}", at=at, tenant=f"t{n}")[0], Start)
        ledger.finish(f"g{n}", at)
    assert ledger.keys_held() < 5_000

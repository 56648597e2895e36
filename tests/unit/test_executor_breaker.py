"""The per-tool circuit breaker, driven by a hand-moved clock: no sleeping."""

from __future__ import annotations

from services.executor.breaker import BreakerBoard, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(clock=clock, threshold=5, cooldown_s=30.0)


def _fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert breaker.try_acquire()
        breaker.record_failure()


def test_stays_closed_below_the_threshold() -> None:
    breaker = _breaker(FakeClock())
    _fail(breaker, 4)
    assert breaker.state == "closed"
    assert breaker.try_acquire()


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = _breaker(FakeClock())
    _fail(breaker, 4)
    breaker.record_success()
    _fail(breaker, 4)
    assert breaker.state == "closed"


def test_opens_after_threshold_consecutive_failures_and_fails_fast() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _fail(breaker, 5)

    assert breaker.state == "open"
    assert not breaker.try_acquire()
    clock.now += 29.9
    assert not breaker.try_acquire()
    assert 0.09 < breaker.seconds_until_half_open() < 0.11


def test_half_open_after_cooldown_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _fail(breaker, 5)
    clock.now += 30.0

    assert breaker.state == "half_open"
    assert breaker.try_acquire()
    assert not breaker.try_acquire()  # a second caller while the probe is in flight


def test_a_successful_probe_closes_the_circuit() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _fail(breaker, 5)
    clock.now += 30.0
    assert breaker.try_acquire()

    breaker.record_success()

    assert breaker.state == "closed"
    assert breaker.try_acquire()
    assert breaker.try_acquire()


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _fail(breaker, 5)
    clock.now += 30.0
    assert breaker.try_acquire()

    breaker.record_failure()

    assert breaker.state == "open"
    clock.now += 29.0
    assert not breaker.try_acquire()
    clock.now += 1.0
    assert breaker.try_acquire()


def test_an_abandoned_probe_frees_the_slot_for_the_next_caller() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    _fail(breaker, 5)
    clock.now += 30.0
    assert breaker.try_acquire()

    breaker.record_abandoned()

    assert breaker.state == "half_open"
    assert breaker.try_acquire()


def test_the_board_keeps_one_breaker_per_destination_and_forgets_the_least_recent() -> None:
    board = BreakerBoard(clock=lambda: 0.0, threshold=1, max_destinations=2)
    board.get("a").record_failure()
    board.get("b")
    assert board.get("a").state == "open"  # a is now the most recent
    board.get("c")
    assert len(board) == 2
    assert board.get("a").state == "open"  # b was forgotten, not a
    assert board.get("b").state == "closed"

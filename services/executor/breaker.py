"""Circuit breakers, one per destination a tool call reaches.

After ``threshold`` consecutive transient failures the circuit opens: calls fail fast for
``cooldown_s`` instead of piling onto a dependency that is down. Then it is half-open: one
probe call goes through; its success closes the circuit, its failure opens it again. The clock
is injected, so tests move time by hand instead of sleeping.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

__all__ = ["DEFAULT_MAX_DESTINATIONS", "BreakerBoard", "BreakerState", "CircuitBreaker"]

# Destinations come from untrusted goals (any URL's host), so the board is bounded.
DEFAULT_MAX_DESTINATIONS = 4096

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self, *, clock: Callable[[], float], threshold: int = 5, cooldown_s: float = 30.0
    ) -> None:
        self._clock = clock
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._cooldown_s:
            return "half_open"
        return "open"

    def seconds_until_half_open(self) -> float:
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown_s - self._clock())

    def try_acquire(self) -> bool:
        """May a call go through now? In half-open state only one probe at a time may."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        """The tool answered (a non-transient error counts: the dependency is reachable)."""
        self._consecutive_failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """A transient failure."""
        self._consecutive_failures += 1
        if self._probe_in_flight or self._consecutive_failures >= self._threshold:
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def record_abandoned(self) -> None:
        """The call was cancelled before it had a verdict: free the probe slot, change nothing."""
        self._probe_in_flight = False


class BreakerBoard:
    """One ``CircuitBreaker`` per destination, the least recently used forgotten beyond a bound.

    Keying by destination keeps one goal's unreachable host from failing every other goal's
    calls; the bound keeps a goal that names a million hosts from growing the map without end
    (a forgotten breaker only means its next call is tried).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        threshold: int = 5,
        cooldown_s: float = 30.0,
        max_destinations: int = DEFAULT_MAX_DESTINATIONS,
    ) -> None:
        self._clock = clock
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._max_destinations = max_destinations
        self._breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()

    def __len__(self) -> int:
        return len(self._breakers)

    def get(self, destination: str) -> CircuitBreaker:
        breaker = self._breakers.get(destination)
        if breaker is None:
            breaker = CircuitBreaker(
                clock=self._clock, threshold=self._threshold, cooldown_s=self._cooldown_s
            )
            self._breakers[destination] = breaker
            if len(self._breakers) > self._max_destinations:
                self._breakers.popitem(last=False)
        else:
            self._breakers.move_to_end(destination)
        return breaker

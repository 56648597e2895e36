"""The tailing projector's linger: short for a trickle, longer once batches show load."""

from __future__ import annotations

from projections.service import BUSY_BATCH_EVENTS, BUSY_LINGER_S, TAIL_LINGER_S, linger_after


def test_a_trickle_keeps_the_short_linger_and_load_doubles_it() -> None:
    assert linger_after(0) == linger_after(1) == TAIL_LINGER_S
    assert linger_after(BUSY_BATCH_EVENTS - 1) == TAIL_LINGER_S
    assert linger_after(BUSY_BATCH_EVENTS) == linger_after(10_000) == BUSY_LINGER_S
    assert BUSY_LINGER_S == 2 * TAIL_LINGER_S

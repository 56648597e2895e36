"""Raw batches of the stream reader: gathered from several reads, taken off in order."""

from __future__ import annotations

from infra.bus.reader import RawBatch


def _batch(first: int, count: int, pending: int) -> RawBatch:
    seqs = list(range(first, first + count))
    return RawBatch(seqs, [f"e{s}".encode() for s in seqs], [s * 10 for s in seqs], pending)


def test_extended_batches_keep_stream_order_and_the_latest_pending_count() -> None:
    gathered = RawBatch()
    gathered.extend(_batch(1, 3, pending=7))
    gathered.extend(_batch(4, 2, pending=5))
    assert gathered.seqs == [1, 2, 3, 4, 5]
    assert gathered.payloads == [b"e1", b"e2", b"e3", b"e4", b"e5"]
    assert gathered.timestamps_ns == [10, 20, 30, 40, 50]
    assert gathered.pending == 5


def test_take_removes_the_oldest_messages_and_leaves_the_rest() -> None:
    gathered = _batch(1, 5, pending=2)
    first = gathered.take(3)
    assert (first.seqs, first.payloads, first.timestamps_ns) == (
        [1, 2, 3],
        [b"e1", b"e2", b"e3"],
        [10, 20, 30],
    )
    assert (gathered.seqs, gathered.payloads, gathered.timestamps_ns) == (
        [4, 5],
        [b"e4", b"e5"],
        [40, 50],
    )
    assert gathered.take(10).seqs == [4, 5]
    assert len(gathered) == 0

"""What agora status calls a problem: storage near or at a limit, consumers that stalled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events.errors import ConfigurationError
from infra.clients.health import StorageLimit, stalled_consumers, storage_problems
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings

MiB = 1024 * 1024
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_storage_below_the_warning_or_without_a_limit_is_fine() -> None:
    limits = [StorageLimit("account", 10 * MiB, 100 * MiB), StorageLimit("stream X", 5, -1)]
    assert storage_problems(limits, room_bytes=MiB) == []


def test_nine_tenths_is_a_warning_and_no_room_for_a_message_is_full() -> None:
    warned = storage_problems([StorageLimit("account", 91 * MiB, 100 * MiB)], room_bytes=MiB)
    assert warned == [f"account is 91% full ({91 * MiB:,} of {100 * MiB:,} bytes)"]
    # 97% used, but less than one message of room left: full, not nearly full.
    full = storage_problems([StorageLimit("store", 97 * MiB, 98 * MiB - 1)], room_bytes=MiB)
    assert len(full) == 1
    assert full[0].startswith("store is full")
    assert "refused" in full[0]


def _row(**fields: object) -> dict[str, object]:
    return {"stream": "S", "consumer": "c", "provisioned": True, **fields}


def test_waiting_work_without_an_ack_for_long_is_stalled() -> None:
    old = NOW - timedelta(seconds=90)
    rows = [
        _row(pending=3, ack_pending=1, last_ack=old),
        _row(consumer="idle", pending=0, ack_pending=0, last_ack=old),  # nothing to do
        _row(consumer="busy", pending=5, last_ack=NOW - timedelta(seconds=5)),  # progressing
        _row(consumer="never", pending=2, created=old),  # never delivered, never acked
        _row(consumer="gone", provisioned=False),
    ]
    assert stalled_consumers(rows, now=NOW, stall_after_s=60) == [
        "consumer S/c is stalled: 4 message(s) waiting, nothing acknowledged for 90s",
        "consumer S/never is stalled: 2 message(s) waiting, nothing acknowledged for 90s",
    ]


def test_the_embedded_store_limit_comes_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({"AGORA_NATS_MAX_STORE_MB": "64"})
    assert settings.nats_max_store_mb == 64
    assert Settings.from_env(settings.to_env()).nats_max_store_mb == 64
    config = EmbeddedNats(tmp_path, max_store_bytes=64 * MiB).config_text()
    assert f"max_file_store: {64 * MiB}" in config
    assert "max_file_store" not in EmbeddedNats(tmp_path).config_text()
    with pytest.raises(ConfigurationError, match="AGORA_NATS_MAX_STORE_MB"):
        Settings.from_env({"AGORA_NATS_MAX_STORE_MB": "-1"}).check()

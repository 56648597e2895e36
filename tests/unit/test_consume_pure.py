"""The pure parts of the consume loop, provisioning and supervision: no broker, no clock."""

from __future__ import annotations

from dataclasses import replace

import pytest
from nats.js.api import AckPolicy, DeliverPolicy

from events.errors import ConfigurationError
from events.subjects import DLQ_STREAM, EVENTS_STREAM, INTAKE_STREAM
from infra.bus.consume import Delivery, nak, no_ordering, retry_delay_s
from infra.bus.core import Inbound
from infra.bus.frames import ProtocolError
from infra.bus.streams import ConsumerSpec, consumer_config, stream_configs
from infra.platform.supervisor import restart_delay_s
from infra.platform.topology import SERVICE_CONSUMERS, consumers_for
from infra.settings import MiB, Settings

# --- backoff -------------------------------------------------------------------------------


def test_retry_delay_doubles_from_the_base_with_each_delivery() -> None:
    assert [retry_delay_s(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]


def test_retry_delay_is_capped() -> None:
    assert retry_delay_s(7) == 15.0
    assert retry_delay_s(50) == 15.0


def test_retry_delay_stays_capped_for_any_number_of_deliveries() -> None:
    # A message whose dead letter cannot be written is nak'd again and again: its delivery
    # count grows without bound, and the backoff must stay a number.
    assert retry_delay_s(5_000) == 15.0


def test_retry_delay_of_a_first_or_nonsense_count_is_the_base() -> None:
    assert retry_delay_s(0) == 0.25
    assert retry_delay_s(-3) == 0.25


def test_retry_delay_honours_its_base_and_cap() -> None:
    assert [retry_delay_s(n, base_s=1.0, cap_s=3.0) for n in range(1, 5)] == [1.0, 2.0, 3.0, 3.0]


def test_restart_delay_doubles_then_caps_at_thirty_seconds() -> None:
    assert [restart_delay_s(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_restart_delay_stays_capped_however_long_a_service_crash_loops() -> None:
    assert restart_delay_s(5_000) == 30.0


# --- deliveries ----------------------------------------------------------------------------


def jetstream_msg(reply: str, headers: dict[str, str] | None = None) -> Inbound:
    return Inbound("agora.events.g-1.task_scheduled", reply, headers or {}, b"{}")


def test_a_delivery_reads_stream_sequence_and_delivery_count_from_the_ack_subject() -> None:
    msg = jetstream_msg(
        "$JS.ACK.AGORA_EVENTS.executor.3.42.7.1700000000000000000.5", {"Nats-Msg-Id": "e-1"}
    )

    delivery = Delivery.of(msg)

    assert delivery.stream_seq == 42
    assert delivery.num_delivered == 3
    assert delivery.redelivered
    assert delivery.subject == "agora.events.g-1.task_scheduled"
    assert delivery.headers == {"Nats-Msg-Id": "e-1"}


def test_a_first_delivery_without_headers() -> None:
    delivery = Delivery.of(
        jetstream_msg("$JS.ACK.AGORA_EVENTS.executor.1.9.9.1700000000000000000.0")
    )

    assert not delivery.redelivered
    assert delivery.headers == {}


def test_a_v2_ack_subject_with_a_domain_reads_the_same() -> None:
    delivery = Delivery.of(
        jetstream_msg("$JS.ACK.hub.ACC.AGORA_EVENTS.executor.2.77.7.1700000000000000000.5.tok")
    )

    assert (delivery.stream_seq, delivery.num_delivered) == (77, 2)


def test_a_message_without_an_ack_subject_is_no_delivery() -> None:
    with pytest.raises(ProtocolError):
        Delivery.of(jetstream_msg("_INBOX.abc.1"))


def test_a_nak_carries_its_delay_in_nanoseconds() -> None:
    assert nak() == b"-NAK"
    assert nak(0.25) == b'-NAK {"delay":250000000}'


def test_without_an_ordering_key_nothing_is_serialised() -> None:
    delivery = Delivery.of(
        jetstream_msg("$JS.ACK.AGORA_EVENTS.executor.1.9.9.1700000000000000000.0")
    )

    assert no_ordering(delivery) is None


# --- streams and consumers as data ---------------------------------------------------------


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, a trailing ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for n, token in enumerate(want):
        if token == ">":
            return len(have) > n
        if n >= len(have) or token not in ("*", have[n]):
            return False
    return len(want) == len(have)


def test_every_service_consumer_filters_inside_its_stream() -> None:
    streams = {config.name: config for config in stream_configs(Settings())}
    for service, specs in SERVICE_CONSUMERS.items():
        for spec in specs:
            stream_subjects = streams[spec.stream].subjects or []
            for subject in spec.filter_subjects:
                assert any(
                    subject_matches(s, subject.replace("*", "x")) for s in stream_subjects
                ), f"{service}: {subject} is outside {spec.stream}"


def test_the_event_log_cannot_be_rewritten_and_dedupes_per_settings() -> None:
    settings = replace(Settings(), duplicate_window_s=300.0, max_message_bytes=2 * MiB)

    configs = {config.name: config for config in stream_configs(settings)}

    assert set(configs) == {INTAKE_STREAM, EVENTS_STREAM, DLQ_STREAM}
    events = configs[EVENTS_STREAM]
    assert events.deny_delete
    assert events.deny_purge
    assert events.duplicate_window == 300.0
    assert events.max_msg_size == 2 * MiB


def test_a_consumer_with_one_filter_uses_the_single_filter_field() -> None:
    spec = ConsumerSpec(EVENTS_STREAM, "executor", ("agora.events.*.task_scheduled",), "x")

    config = consumer_config(spec, replace(Settings(), ack_wait_s=7.0), max_ack_pending=16)

    assert config.filter_subject == "agora.events.*.task_scheduled"
    assert config.filter_subjects is None
    assert config.durable_name == "executor"
    assert config.ack_policy == AckPolicy.EXPLICIT
    assert config.deliver_policy == DeliverPolicy.ALL
    assert config.ack_wait == 7.0
    assert config.max_ack_pending == 16
    # The loop dead-letters at AGORA_MAX_DELIVER; the server must never give up first.
    assert config.max_deliver == -1


def test_a_consumer_with_several_filters_lists_them_all() -> None:
    [_, planner_events] = consumers_for("planner")

    config = consumer_config(planner_events, Settings(), max_ack_pending=16)

    assert config.filter_subject is None
    assert config.filter_subjects == list(planner_events.filter_subjects)


def test_an_unknown_service_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="unknown service 'plannr'") as refused:
        consumers_for("plannr")

    assert "evaluator, executor, memory, planner" in str(refused.value)

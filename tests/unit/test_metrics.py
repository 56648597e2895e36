"""What each event adds to the OpenTelemetry metrics (projections.metrics), on a recorded log,
with the names the semantic conventions' own package gives them."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.attributes import messaging_attributes as messaging
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics

from events.catalog import LlmResponded
from infra.settings import Settings
from projections import metrics as conv
from projections.metrics import ConsumerState, consumer_measurements, event_measurements
from tests.unit.test_timeline import LLM_LOG


def test_the_names_are_the_conventions() -> None:
    assert conv.TOKEN_USAGE == gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
    assert conv.OPERATION_DURATION == gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
    assert conv.TOKEN_TYPE == gen_ai.GEN_AI_TOKEN_TYPE
    assert conv.CONSUMER_GROUP == messaging.MESSAGING_CONSUMER_GROUP_NAME
    units = {i.name: i.unit for i in conv.INSTRUMENTS}
    assert units[conv.TOKEN_USAGE] == "{token}"
    assert units[conv.OPERATION_DURATION] == "s"
    buckets = {i.name: i.buckets for i in conv.INSTRUMENTS}
    assert buckets[conv.TOKEN_USAGE][-1] == 67_108_864  # the conventions' advice, 4^13
    assert buckets[conv.OPERATION_DURATION][-1] == 81.92


def test_a_log_measures_its_model_calls_and_its_outcome() -> None:
    measured = [m for event in LLM_LOG for m in event_measurements(event)]
    calls = [e for e in LLM_LOG if isinstance(e, LlmResponded)]
    tokens = {
        kind: sum(
            m.value
            for m in measured
            if m.instrument == conv.TOKEN_USAGE and (conv.TOKEN_TYPE, kind) in m.attributes
        )
        for kind in (gen_ai.GenAiTokenTypeValues.INPUT.value, "output")
    }
    assert tokens == {
        "input": sum(c.tokens_in for c in calls),
        "output": sum(c.tokens_out for c in calls),
    }
    durations = [m for m in measured if m.instrument == conv.OPERATION_DURATION]
    assert sum(m.value for m in durations) * 1000 == sum(c.latency_ms for c in calls)
    first = dict(durations[0].attributes)
    assert first[gen_ai.GEN_AI_OPERATION_NAME] == "chat"
    assert first[gen_ai.GEN_AI_PROVIDER_NAME] == calls[0].provider
    assert first[gen_ai.GEN_AI_REQUEST_MODEL] == (calls[0].request_model or calls[0].model)
    ends = [m for m in measured if m.instrument == conv.GOALS_FINISHED]
    # The recording holds two goals, both completed.
    assert [dict(m.attributes) for m in ends] == [{"agora.goal.status": "completed"}] * 2
    assert [m.instrument for m in measured].count(conv.GOALS_ACCEPTED) == 2


def test_a_consumers_lag_is_what_it_has_not_finished() -> None:
    state = ConsumerState("AGORA_EVENTS", "executor", pending=3, ack_pending=2)
    values = {m.instrument: m.value for m in consumer_measurements(state)}
    assert values == {conv.CONSUMER_PENDING: 3, conv.CONSUMER_ACK_PENDING: 2, conv.CONSUMER_LAG: 5}


def test_metrics_have_their_own_otlp_variables() -> None:
    settings = Settings.from_env(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        }
    )
    assert settings.otlp_metrics.protocol == "http/protobuf"
    assert settings.otlp.protocol == "grpc"
    assert settings.otlp_metrics.url == "http://collector:4318/v1/metrics"
    assert settings.metric_export_interval_s == 5.0
    own = Settings.from_env({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m/x"})
    assert own.otlp_metrics.url == "http://m/x"

"""Measurements handed to the official OpenTelemetry SDK's instruments and OTLP metric exporter.

The exporter is the one the standard environment names: ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``
/ ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``), with the
endpoint, headers, timeout, compression, certificates and temporality preference of the
``OTEL_EXPORTER_OTLP_*`` / ``OTEL_EXPORTER_OTLP_METRICS_*`` variables, read by the exporter
itself. Exports happen when ``export`` is called (the follower's own clock decides when), so a
receiver that refuses them is known, not only logged by the SDK.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from events.errors import AgoraError
from infra.traces.otlp import agora_resource, sdk_exporter
from projections.metrics import INSTRUMENTS, Attributes, Instrument, Measurement
from projections.spans import SCHEMA_URL

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    from infra.settings import OtlpTarget

__all__ = ["MetricsExportError", "MetricsTarget"]


class MetricsExportError(AgoraError):
    """The OTLP receiver did not take the metrics."""


def _http_exporter() -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _grpc_exporter() -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _on_demand_reader(exporter: MetricExporter) -> Any:
    """A reader that collects only when asked and keeps the exporter's answer."""
    from opentelemetry.sdk.metrics.export import MetricReader, MetricsData

    class OnDemandReader(MetricReader):
        def __init__(self) -> None:
            # The exporter's preferences (the temporality variable), as the SDK's own periodic
            # reader passes them on.
            super().__init__(
                preferred_temporality=exporter._preferred_temporality,
                preferred_aggregation=exporter._preferred_aggregation,
            )
            self.result: MetricExportResult | None = None

        def _receive_metrics(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_: Any
        ) -> None:
            self.result = exporter.export(metrics_data, timeout_millis=timeout_millis)

        def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
            exporter.shutdown(timeout_millis=timeout_millis)

    return OnDemandReader()


def _instrument(provider: MeterProvider, version: str, spec: Instrument) -> Any:
    meter = provider.get_meter("agora", version, schema_url=SCHEMA_URL)
    if spec.kind == "histogram":
        return meter.create_histogram(
            spec.name, spec.unit, spec.description, explicit_bucket_boundaries_advisory=spec.buckets
        ).record
    if spec.kind == "counter":
        return meter.create_counter(spec.name, spec.unit, spec.description).add
    return meter.create_gauge(spec.name, spec.unit, spec.description).set


@dataclass
class MetricsTarget:
    """The OTLP receiver the settings name, agora's instruments, and an exporter to it."""

    version: str
    otlp: OtlpTarget

    def __post_init__(self) -> None:
        self.protocol = self.otlp.protocol
        self.endpoint = self.otlp.url
        exporter = sdk_exporter("metrics", self.protocol, _http_exporter, _grpc_exporter)
        from opentelemetry.sdk.metrics import MeterProvider

        self._reader = _on_demand_reader(exporter)
        self._provider = MeterProvider(
            resource=agora_resource(self.version), metric_readers=[self._reader]
        )
        self._record = {
            spec.name: _instrument(self._provider, self.version, spec) for spec in INSTRUMENTS
        }
        self._counters = {spec.name for spec in INSTRUMENTS if spec.kind == "counter"}

    def record(self, measurements: Iterable[Measurement]) -> None:
        """Hand ``measurements`` to the instruments. A counter's are summed by attributes
        first: one ``add`` for a batch of goals costs what one goal's did (the SDK's ``add``
        is the follower's dearest step per event)."""
        sums: dict[tuple[str, Attributes], float] = {}
        for measurement in measurements:
            if measurement.instrument in self._counters:
                key = (measurement.instrument, measurement.attributes)
                sums[key] = sums.get(key, 0) + measurement.value
            else:
                self._record[measurement.instrument](
                    measurement.value, attributes=dict(measurement.attributes)
                )
        for (instrument, attributes), value in sums.items():
            self._record[instrument](value, attributes=dict(attributes))

    def export(self) -> None:
        """Send every instrument's current data (blocking: call it from a thread). Raises when
        the receiver does not take it."""
        from opentelemetry.sdk.metrics.export import MetricExportResult

        self._reader.result = None
        self._reader.collect()
        # None: nothing recorded yet, nothing sent.
        if self._reader.result not in (None, MetricExportResult.SUCCESS):
            raise MetricsExportError(
                f"the OTLP receiver at {self.endpoint} ({self.protocol}) did not take the "
                "metrics; is it running? (OTEL_EXPORTER_OTLP_ENDPOINT)"
            )

    def close(self) -> None:
        self._provider.shutdown()

"""Exporting OpenTelemetry metrics over OTLP, derived from the log and the consumers' state."""

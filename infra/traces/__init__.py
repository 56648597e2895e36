"""Exporting goals' traces over OTLP: the spans of ``projections.spans``, read from the log."""

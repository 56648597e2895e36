"""agora's public Python API. ``agora.client`` is the client library (docs/clients.md)."""

__all__: list[str] = []

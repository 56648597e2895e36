"""The wire contract as documents: the AsyncAPI description of every subject."""

__all__: list[str] = []

"""The event catalogue: envelope, event types, intake commands, codec and subjects. No I/O.

Import what you need from the submodules: ``events.catalog`` (event types), ``events.model``
(envelope and value objects), ``events.commands`` (intake), ``events.codec``, ``events.subjects``.
"""

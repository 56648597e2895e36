"""What a service consumes and produces, declared once, as event classes.

Each service's ``manifest.py`` holds one :class:`ServiceManifest`. That one declaration drives
the service's durable consumers (their filter subjects), the NATS permissions its identity gets
(it may publish exactly the event types it produces), and its routing (the composition root
maps each consumed event class to a handler, and :func:`route` refuses a map that does not
cover the declaration exactly). Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from events.errors import ConfigurationError
from events.model import Event

__all__ = ["Input", "ServiceManifest", "event_tag", "route"]


def event_tag(cls: type[Event]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


@dataclass(frozen=True, slots=True)
class Input:
    """One durable consumer of the service, shared by its replicas.

    ``events`` are taken from the event log, ``commands`` are intake subjects (untrusted JSON,
    validated by the service). ``pinned``: one replica at a time receives everything (a pinned
    priority group); the others stand by and take over when it stops pulling.
    """

    stream: str
    description: str
    events: tuple[type[Event], ...] = ()
    commands: tuple[str, ...] = ()
    pinned: bool = False

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(event_tag(cls) for cls in self.events)


@dataclass(frozen=True, slots=True)
class ServiceManifest:
    name: str
    inputs: tuple[Input, ...]
    produces: tuple[type[Event], ...]
    # Events every replica reads in order into a read model of its own (no durable consumer).
    follows: tuple[type[Event], ...] = ()
    # Core NATS request subjects the service answers (queries), beside $SRV and its stats.
    answers: tuple[str, ...] = ()
    # Whether it publishes ephemeral progress on agora.live.<goal>.* (model token deltas).
    live: bool = False
    # Intake subjects it publishes on itself: scheduled messages nats-server delivers later.
    schedules: tuple[str, ...] = ()

    @property
    def produced_tags(self) -> tuple[str, ...]:
        return tuple(event_tag(cls) for cls in self.produces)

    @property
    def followed_tags(self) -> tuple[str, ...]:
        return tuple(event_tag(cls) for cls in self.follows)

    def input_on(self, stream: str) -> Input:
        for declared in self.inputs:
            if declared.stream == stream:
                return declared
        raise ConfigurationError(f"service {self.name} declares no input on {stream}")


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[None]])


def route(declared: Input, handlers: Mapping[type[Event], Handler]) -> dict[type[Event], Handler]:
    """``handlers`` for exactly the event classes ``declared`` consumes, or a clear error."""
    missing = [event_tag(cls) for cls in declared.events if cls not in handlers]
    extra = [event_tag(cls) for cls in handlers if cls not in declared.events]
    if missing or extra:
        raise ConfigurationError(
            f"routing does not match the manifest ({declared.description}): "
            f"no handler for {missing or 'nothing'}, handlers for undeclared {extra or 'nothing'}"
        )
    return dict(handlers)

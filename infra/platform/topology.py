"""The platform's services and what their manifests derive: durable consumers, event owners.

Every service declares its inputs and outputs once (``services/<name>/manifest.py``); the
consumer filters here, the permission table (``infra.platform.auth``) and each composition
root's routing are all read off those declarations.
"""

from __future__ import annotations

from collections.abc import Mapping

from events.errors import ConfigurationError
from events.subjects import event_type_filter
from infra.bus.streams import ConsumerSpec
from projections.manifest import MANIFEST as PROJECTOR
from services.evaluator.manifest import MANIFEST as EVALUATOR
from services.executor.manifest import MANIFEST as EXECUTOR
from services.manifest import Input, ServiceManifest
from services.memory.manifest import MANIFEST as MEMORY
from services.planner.manifest import MANIFEST as PLANNER

__all__ = [
    "MANIFESTS",
    "PINNED_GROUP",
    "SERVICE_CONSUMERS",
    "consumer_spec",
    "consumers_for",
    "event_owners",
    "manifest_of",
]

MANIFESTS: Mapping[str, ServiceManifest] = {
    m.name: m for m in (PLANNER, EXECUTOR, MEMORY, EVALUATOR, PROJECTOR)
}
# The priority group of a pinned input (one active replica); one per consumer, so one name.
PINNED_GROUP = "active"


def manifest_of(service: str) -> ServiceManifest:
    try:
        return MANIFESTS[service]
    except KeyError:
        known = ", ".join(sorted(MANIFESTS))
        raise ConfigurationError(f"unknown service {service!r}; known: {known}") from None


def consumer_spec(service: str, declared: Input) -> ConsumerSpec:
    """The durable consumer behind one declared input (named after the service)."""
    filters = declared.commands or tuple(event_type_filter(tag) for tag in declared.tags)
    return ConsumerSpec(
        declared.stream,
        service,
        filters,
        declared.description,
        priority_group=PINNED_GROUP if declared.pinned else None,
    )


# What each agent service consumes. Each service's replicas share its durable consumers.
SERVICE_CONSUMERS: Mapping[str, tuple[ConsumerSpec, ...]] = {
    name: tuple(consumer_spec(name, declared) for declared in manifest.inputs)
    for name, manifest in MANIFESTS.items()
    if manifest.inputs
}


def consumers_for(service: str) -> tuple[ConsumerSpec, ...]:
    if service not in SERVICE_CONSUMERS:
        manifest_of(service)  # an unknown name says so; a known one simply has no consumers
        return ()
    return SERVICE_CONSUMERS[service]


def event_owners() -> dict[str, tuple[str, ...]]:
    """Event type -> the services that may publish it, from what each manifest produces."""
    owners: dict[str, tuple[str, ...]] = {}
    for name, manifest in MANIFESTS.items():
        for tag in manifest.produced_tags:
            owners[tag] = (*owners.get(tag, ()), name)
    return owners

"""The AsyncAPI document carries every event type of the catalogue, with headers and owners."""

from __future__ import annotations

import inspect

import events.catalog
from events.model import Event
from infra.contract.asyncapi import asyncapi_document
from infra.platform.auth import EVENT_OWNERS


def _catalogue_tags() -> set[str]:
    """Every event class defined in events/catalog.py, found by looking, not by its lists."""
    return {
        cls.__struct_config__.tag
        for _, cls in inspect.getmembers(events.catalog, inspect.isclass)
        if issubclass(cls, Event) and cls is not Event and cls.__module__ == "events.catalog"
    }


def test_every_event_type_of_the_catalogue_is_a_message_of_the_events_channel() -> None:
    document = asyncapi_document()
    channel = document["channels"]["events"]
    tags = _catalogue_tags()
    assert len(tags) >= 20
    assert set(channel["messages"]) == tags
    assert set(channel["parameters"]["event_type"]["enum"]) == tags
    for tag in tags:
        message = document["components"]["messages"][tag]
        assert message["headers"]["required"] == ["Nats-Msg-Id"]
        assert "Nats-Expected-Last-Subject-Sequence" in message["headers"]["properties"]
        assert message["x-agora-publishers"] == list(EVENT_OWNERS[tag])
        schema = message["payload"]["$ref"].rsplit("/", 1)[-1]
        assert document["components"]["schemas"][schema]["properties"]["type"]["enum"] == [tag]


def test_every_reference_points_at_a_component_that_exists() -> None:
    document = asyncapi_document()
    refs: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            refs.extend(v for k, v in value.items() if k == "$ref" and isinstance(v, str))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(document)
    assert refs
    for ref in refs:
        node: object = document
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict), ref
            assert part in node, ref
            node = node[part]


def test_the_contract_names_the_subjects_a_client_uses() -> None:
    document = asyncapi_document()
    addresses = {c["address"] for c in document["channels"].values()}
    assert {"agora.intake.goal", "agora.query", "agora.events.{goal_id}.{event_type}"} <= addresses
    assert {"agora.dlq.{consumer}", "agora.live.{goal_id}.llm"} <= addresses
    assert {"agora.intake.cancel", "agora.intake.pause", "agora.intake.resume"} <= addresses
    for name in ("CancelCommand", "PauseCommand", "ResumeCommand"):
        schema = document["components"]["schemas"][name]
        assert schema["required"] == ["goal_id"]
    client = document["x-agora-permissions"]["client"]
    assert "agora.events.>" in client["subscribe_allow"]

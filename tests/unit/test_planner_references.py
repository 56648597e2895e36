"""Argument references: given args with {{steps.<id>.output}} -> then found and resolved."""

from __future__ import annotations

from services.planner.references import (
    contains_reference_marker,
    referenced_step_ids,
    resolve_references,
    step_reference,
)


def test_references_are_found_in_nested_values_in_order_without_repeats() -> None:
    args = {
        "text": "{{steps.b.output}} and {{ steps.a.output }}",
        "items": ["{{steps.c-1.output}}", {"deep": "{{steps.b.output}}"}],
        "count": 3,
    }

    assert referenced_step_ids(args) == ("b", "a", "c-1")


def test_references_are_replaced_by_outputs_everywhere() -> None:
    args = {
        "text": "x={{steps.a.output}}, y={{ steps.b.output }}",
        "items": ["{{steps.a.output}}", {"deep": "{{steps.b.output}}"}, 7],
        "flag": True,
    }

    resolved = resolve_references(args, {"a": "1", "b": "two"})

    assert resolved == {"text": "x=1, y=two", "items": ["1", {"deep": "two"}, 7], "flag": True}
    assert args["text"] == "x={{steps.a.output}}, y={{ steps.b.output }}"  # input untouched


def test_a_reference_without_an_output_stays_visible() -> None:
    assert resolve_references({"text": "{{steps.z.output}}"}, {}) == {"text": "{{steps.z.output}}"}


def test_other_braces_are_plain_text() -> None:
    args = {"text": "{{name}} and {{steps.a.result}}"}

    assert referenced_step_ids(args) == ()
    assert contains_reference_marker(args)
    assert resolve_references(args, {"a": "1"}) == args
    assert not contains_reference_marker({"text": "plain", "n": 1})


def test_outputs_containing_reference_syntax_are_not_expanded_again() -> None:
    resolved = resolve_references(
        {"text": "{{steps.a.output}}"}, {"a": "{{steps.b.output}}", "b": "secret"}
    )

    assert resolved == {"text": "{{steps.b.output}}"}


def test_the_canonical_reference_is_understood() -> None:
    assert referenced_step_ids({"text": step_reference("s9")}) == ("s9",)

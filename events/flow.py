"""Flow control: how many goals of a key may run at once, and how fast they may start. Pure.

A policy is data (``AGORA_FLOW_POLICY``: inline JSON or a file's path; docs/flow.md)::

    {"limits": [
        {"key": "tenant", "concurrency": 3},
        {"key": "tenant", "value": "acme", "concurrency": 10, "rate": {"goals": 5, "per_s": 1}},
        {"key": "*", "concurrency": 200}
    ]}

A rule's ``key`` names a field of a goal's ``metadata`` (``*``: every goal, one shared key).
Each value of that field is a key of its own: ``tenant=acme``, ``tenant=globex``. A rule with a
``value`` applies to that value only, and takes the place of the field's rule without one. A
goal is held by every key it has: it starts once each of them has room. A goal whose metadata
lacks the field (or holds an object, a list or null there) is not limited by that rule.

:func:`goal_keys` names a goal's keys; :func:`key_limits` says what limits a key has now.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

import msgspec

from events.errors import ConfigurationError

__all__ = [
    "ALL_GOALS",
    "MAX_KEY_VALUE_CHARS",
    "FlowPolicy",
    "FlowRule",
    "KeyLimits",
    "RateLimit",
    "goal_keys",
    "key_limits",
    "parse_flow_policy",
]

# The key every goal has, under a rule whose key is "*".
ALL_GOALS = "*"
# A longer metadata value is named by its hash in the key (events stay small).
MAX_KEY_VALUE_CHARS = 200
_MAX_RULES = 100
_FIELD = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^=]+$")]


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """At most ``goals`` goals of the key start in any ``per_s`` seconds."""

    goals: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    per_s: Annotated[float, msgspec.Meta(gt=0, le=86_400)]


class FlowRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: _FIELD
    value: Annotated[str, msgspec.Meta(max_length=MAX_KEY_VALUE_CHARS)] | None = None
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    rate: RateLimit | None = None


class FlowPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limits: Annotated[tuple[FlowRule, ...], msgspec.Meta(max_length=_MAX_RULES)] = ()


class KeyLimits(msgspec.Struct, frozen=True, kw_only=True):
    """What one key allows: None, no limit of that kind."""

    concurrency: int | None = None
    rate: RateLimit | None = None


def parse_flow_policy(text: str | None) -> FlowPolicy | None:
    """``AGORA_FLOW_POLICY``'s value (a JSON object), read; None when unset or ``off``."""
    stripped = (text or "").strip()
    if stripped.lower() in ("", "off"):
        return None
    try:
        policy = msgspec.json.decode(stripped, type=FlowPolicy)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise ConfigurationError(
            f"AGORA_FLOW_POLICY is not a flow policy: {exc} "
            '(a JSON object such as {"limits": [{"key": "tenant", "concurrency": 3}]}, '
            "or the path of a JSON file; docs/flow.md)"
        ) from None
    seen: set[tuple[str, str | None]] = set()
    for rule in policy.limits:
        where = f"rule for {rule.key!r}" + ("" if rule.value is None else f"={rule.value!r}")
        if rule.concurrency is None and rule.rate is None:
            raise ConfigurationError(
                f"AGORA_FLOW_POLICY: {where} sets neither concurrency nor rate"
            )
        if rule.key == ALL_GOALS and rule.value is not None:
            raise ConfigurationError(f"AGORA_FLOW_POLICY: {where}: key '*' takes no value")
        if (rule.key, rule.value) in seen:
            raise ConfigurationError(f"AGORA_FLOW_POLICY: {where} is given twice")
        seen.add((rule.key, rule.value))
    return policy if policy.limits else None


def _value_text(value: object) -> str | None:
    """A metadata value as a key's text; None for what names no key (objects, lists, null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = json.dumps(value)
    else:
        return None
    if len(text) > MAX_KEY_VALUE_CHARS:
        return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


def goal_keys(policy: FlowPolicy | None, metadata: dict[str, Any]) -> tuple[str, ...]:
    """The keys that limit a goal with this ``metadata`` (``tenant=acme``, ``*``), in the
    policy's order; empty: nothing limits it."""
    if policy is None:
        return ()
    keys: dict[str, None] = {}
    for rule in policy.limits:
        if rule.key == ALL_GOALS:
            keys[ALL_GOALS] = None
            continue
        if rule.key not in metadata:
            continue
        text = _value_text(metadata[rule.key])
        if text is not None and (rule.value is None or rule.value == text):
            keys[f"{rule.key}={text}"] = None
    return tuple(keys)


def key_limits(policy: FlowPolicy | None, key: str) -> KeyLimits:
    """The limits of ``key`` under ``policy``: its value's own rule, else its field's. A key
    no rule names any more (the policy changed) has no limits."""
    if policy is None:
        return KeyLimits()
    field, _, value = key.partition("=")
    general: FlowRule | None = None
    for rule in policy.limits:
        if rule.key != field:
            continue
        if rule.value is not None and rule.value == value:
            return KeyLimits(concurrency=rule.concurrency, rate=rule.rate)
        if rule.value is None:
            general = rule
    if general is None:
        return KeyLimits()
    return KeyLimits(concurrency=general.concurrency, rate=general.rate)

"""JSON from outside (clients, models): decoded so that every failure is a ``DecodeError``.

msgspec raises ``RecursionError``, not ``DecodeError``, for nesting deeper than its limit, so a
handler that catches only the latter crashes on ``[[[[...]]]]`` and the message is redelivered
until it is dead-lettered. :func:`decode_json` closes that gap.

:func:`object_fields` reads a command that msgspec refused (too deep, a number out of range, a
lone surrogate) far enough to tell whether it is a JSON object and which ``command_id`` and
``goal_id`` it names, so the intake can reject it on its goal instead of dead-lettering it. It
is an iterative scanner: linear in the input, no recursion, whatever the nesting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any, TypeVar

import msgspec

from events.errors import DecodeError

__all__ = ["decode_command_object", "decode_json", "object_fields", "strip_code_fence", "text_of"]

T = TypeVar("T")


_any_json = msgspec.json.Decoder()


def decode_command_object(data: bytes, what: str) -> dict[str, Any]:
    """The JSON object of an intake command (``what`` names it in the error); bytes that are
    not a JSON object raise ``events.errors.DecodeError``: there is nothing to reject."""
    try:
        raw = decode_json(_any_json, data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"{what} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DecodeError(f"{what} must be a JSON object, got {type(raw).__name__}")
    return raw


def text_of(value: Any) -> str:
    """``value`` if it is a string, else "" (a field of a command not validated yet)."""
    return value if isinstance(value, str) else ""


def decode_json(decoder: msgspec.json.Decoder[T], data: bytes | str) -> T:
    """``decoder.decode(data)``; too deep a nesting is a ``msgspec.DecodeError`` as well."""
    try:
        return decoder.decode(data)
    except RecursionError:
        raise msgspec.DecodeError("JSON is nested too deeply") from None


def strip_code_fence(text: str) -> str:
    """The body of a Markdown code fence (``` or ```json) around ``text``, else ``text``.

    Some model servers fence structured output anyway. No regex: a backtracking one is
    quadratic on whitespace, and the text is a model's.
    """
    body = text.strip()
    if not (body.startswith("```") and body.endswith("```") and len(body) >= 6):
        return text
    body = body[3:-3]
    if body.startswith("json"):
        body = body[4:]
    return body.strip()


# Linear tokens: each alternative starts with its own character, the string body is the
# unrolled loop of "no quote, no backslash" and "an escape", so nothing backtracks.
_SPACE = re.compile(r"[ \t\r\n]*")
_STRING_REST = re.compile(
    r'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
)
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = ("true", "false", "null")


class _NotAnObjectError(Exception):
    pass


def object_fields(data: bytes, names: Collection[str]) -> dict[str, Any] | None:
    """The top-level string ``names`` of a syntactically valid JSON object, else None.

    Values other than strings, and strings that are not valid Unicode, are left out.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return _ObjectScanner(text, frozenset(names)).scan()
    except _NotAnObjectError:
        return None


class _ObjectScanner:
    """A JSON grammar check with an explicit stack of open containers (no recursion)."""

    def __init__(self, text: str, names: frozenset[str]) -> None:
        self.text = text
        self.names = names
        self.found: dict[str, Any] = {}
        self.stack: list[str] = []
        self.position = 0
        self.key: str | None = None  # the top-level key whose value comes next

    def scan(self) -> dict[str, Any]:
        self._skip_space()
        if not self.text.startswith("{", self.position):
            raise _NotAnObjectError
        expect = self._open("{")
        while self.stack:
            self._skip_space()
            char = self.text[self.position : self.position + 1]
            if not char:
                raise _NotAnObjectError
            if expect in ("key", "key_or_close"):
                expect = self._key(char, may_close=expect == "key_or_close")
            elif expect in ("value", "value_or_close"):
                expect = self._value(char, may_close=expect == "value_or_close")
            else:
                expect = self._after_value(char)
        self._skip_space()
        if self.position != len(self.text):
            raise _NotAnObjectError
        return self.found

    def _key(self, char: str, *, may_close: bool) -> str:
        if char == "}" and may_close:
            return self._close("{")
        if char != '"':
            raise _NotAnObjectError
        start = self.position
        self._skip_string()
        self.key = self.text[start : self.position] if len(self.stack) == 1 else None
        self._skip_space()
        if not self.text.startswith(":", self.position):
            raise _NotAnObjectError
        self.position += 1
        return "value"

    def _value(self, char: str, *, may_close: bool) -> str:
        key, self.key = self.key, None
        if char == "]" and may_close:
            return self._close("[")
        if char in "{[":
            return self._open(char)
        if char == '"':
            start = self.position
            self._skip_string()
            if key is not None:
                self._keep(key, self.text[start : self.position])
        else:
            self._skip_scalar()
        return "after_value"

    def _after_value(self, char: str) -> str:
        if char == ",":
            self.position += 1
            return "key" if self.stack[-1] == "{" else "value"
        if char in "}]":
            return self._close("{" if char == "}" else "[")
        raise _NotAnObjectError

    def _open(self, char: str) -> str:
        self.stack.append(char)
        self.position += 1
        return "key_or_close" if char == "{" else "value_or_close"

    def _close(self, opener: str) -> str:
        if self.stack[-1] != opener:
            raise _NotAnObjectError
        self.stack.pop()
        self.position += 1
        return "after_value"

    def _keep(self, key_token: str, value_token: str) -> None:
        name = json.loads(key_token)
        if name in self.names:
            value = json.loads(value_token)
            if _is_unicode(value):
                self.found[name] = value

    def _skip_space(self) -> None:
        match = _SPACE.match(self.text, self.position)
        if match:
            self.position = match.end()

    def _skip_string(self) -> None:
        match = _STRING_REST.match(self.text, self.position + 1)
        if match is None:
            raise _NotAnObjectError
        self.position = match.end()

    def _skip_scalar(self) -> None:
        for literal in _LITERALS:
            if self.text.startswith(literal, self.position):
                self.position += len(literal)
                return
        match = _NUMBER.match(self.text, self.position)
        if match is None or match.end() == self.position:
            raise _NotAnObjectError
        self.position = match.end()


def _is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate (valid JSON, not valid Unicode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

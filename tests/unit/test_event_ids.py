"""Derived event ids never change between versions: a resend must meet its first copy."""

from __future__ import annotations

import hashlib
import uuid

from hypothesis import given
from hypothesis import strategies as st

from events.ids import derive_id


@given(st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=6))
def test_a_derived_id_is_the_uuid_form_of_the_blake2b_digest_of_its_parts(
    parts: list[object],
) -> None:
    material = "\x1f".join(str(part) for part in parts).encode()
    digest = hashlib.blake2b(material, digest_size=16).digest()
    assert derive_id(*parts) == str(uuid.UUID(bytes=digest))


def test_known_ids_stay_what_earlier_versions_derived() -> None:
    assert (
        derive_id("planner", "g-1", "task_scheduled", "s1", 1)
        == "55fe693e-39bd-cb21-a229-e777c9da7dfa"
    )

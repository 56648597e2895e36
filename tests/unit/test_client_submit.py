"""The client resends a command whose ack was lost, and says what to do when none comes."""

from __future__ import annotations

import nats.errors
import pytest

from infra.clients.goals import SubmitError, check_goal_id, publish_with_retries


async def test_a_lost_ack_is_resent_until_one_arrives() -> None:
    attempts: list[int] = []

    async def publish() -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) < 3:
            raise nats.errors.TimeoutError
        return "ack"

    assert await publish_with_retries(publish, attempts=4, command_id="c-1") == "ack"
    assert attempts == [1, 2, 3]


async def test_no_ack_at_all_says_the_resend_is_safe() -> None:
    async def publish() -> str:
        raise nats.errors.TimeoutError

    with pytest.raises(SubmitError, match="resend it with the same command_id"):
        await publish_with_retries(publish, attempts=2, command_id="c-9")


async def test_no_stream_says_to_start_the_platform() -> None:
    async def publish() -> str:
        raise nats.errors.NoRespondersError

    with pytest.raises(SubmitError, match="agora up"):
        await publish_with_retries(publish, attempts=3, command_id="c-2")


@pytest.mark.parametrize("goal_id", ["g.with.dots", "g 1", "", "g>", "x" * 129])
def test_goal_ids_that_are_not_one_subject_token_are_refused(goal_id: str) -> None:
    from infra.clients.goals import InvalidGoalIdError

    with pytest.raises(InvalidGoalIdError, match="no dots or spaces"):
        check_goal_id(goal_id)

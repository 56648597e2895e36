"""agora's A2A agent card: who it is, where its JSON-RPC endpoint is, what it can do, and how
to authenticate. Pure: no I/O."""

from __future__ import annotations

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import PROTOCOL_VERSION_1_0, TransportProtocol

__all__ = ["BEARER_SCHEME", "SKILL_IDS", "agent_card"]

BEARER_SCHEME = "bearer"
_TEXT = "text/plain"
_JSON = "application/json"

_SKILLS = (
    AgentSkill(
        id="run-goal",
        name="Run a goal from free text",
        description=(
            "The message's text is the goal. agora plans it (with rules, or a model when one "
            "is configured), runs the steps with its tools, checks the result and revises the "
            "plan when it falls short. Each step's output is an artifact; the last is `result`."
        ),
        tags=["goal", "planning", "tools"],
        examples=["compute 17*23 then summarize", "fetch https://example.com and count words"],
        input_modes=[_TEXT],
        output_modes=[_TEXT],
    ),
    AgentSkill(
        id="run-steps",
        name="Run explicit steps",
        description=(
            "A data part carries agora's intake command (the JSON Schema `agora schema` "
            'prints): `steps` such as [{"tool": "calculator", "args": {"expression": '
            '"17*23"}}] (with `id`/`depends_on`: a DAG; `{{steps.<id>.output}}` refers to '
            "an earlier output), `expect`, `max_iterations`, `allowed_tools`, budgets. The "
            "text part is the goal's text. A command agora refuses ends the task `rejected`, "
            "with the reason."
        ),
        tags=["steps", "dag", "tools"],
        examples=[
            '{"text": "multiply", "steps": [{"tool": "calculator", '
            '"args": {"expression": "17*23"}}], "expect": {"contains": "391"}}'
        ],
        input_modes=[_JSON, _TEXT],
        output_modes=[_TEXT],
    ),
)
SKILL_IDS = tuple(skill.id for skill in _SKILLS)


def agent_card(*, rpc_url: str, version: str) -> AgentCard:
    """The card of the endpoint at ``rpc_url`` (JSON-RPC, A2A 1.0, bearer token)."""
    bearer = SecurityScheme(
        http_auth_security_scheme=HTTPAuthSecurityScheme(
            scheme="Bearer",
            description="the token `agora a2a` was given (AGORA_A2A_TOKEN or its file)",
        )
    )
    return AgentCard(
        name="agora",
        description=(
            "An event-sourced multi-agent platform: a task is a goal, run by agora's planner, "
            "executor, memory and evaluator, every step an event in its log. Tasks survive "
            "restarts, and a message sent twice starts one task."
        ),
        supported_interfaces=[
            AgentInterface(
                url=rpc_url,
                protocol_binding=TransportProtocol.JSONRPC.value,
                protocol_version=PROTOCOL_VERSION_1_0,
            )
        ],
        version=version or "0",
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        security_schemes={BEARER_SCHEME: bearer},
        security_requirements=[SecurityRequirement(schemes={BEARER_SCHEME: StringList()})],
        default_input_modes=[_TEXT, _JSON],
        default_output_modes=[_TEXT],
        skills=_SKILLS,
    )

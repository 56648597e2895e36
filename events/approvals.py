"""Which tool calls need a person's approval: the policy, and the one function that applies it.

A policy is data (``AGORA_APPROVAL_POLICY``: ``default``, inline JSON or a file's path; plus
what a goal's intake adds under ``approval``). The planner merges the two when it admits a goal
and records the result on ``goal_accepted``, so every later decision about the goal reads the
policy it was admitted under, and a replay decides the same. :func:`approval_reason` says
whether one call (a tool and its resolved arguments) needs approval, and why. Pure: no I/O.

A rule names a tool (``write_file``), a prefix (``time.*``, every tool of an MCP server whose
tools are named ``time.…``) or every tool (``*``). It applies to a call of that tool unless
the call's ``url`` argument names a host of ``allow_hosts`` (``example.com`` or ``*.example.com``),
and, when it has ``when``, only if every named argument matches its pattern (RE2, searched in
the argument's text: its string value, or its JSON). ``untrusted`` makes every untrusted tool
(a tool of an MCP server not marked trusted) need approval; ``trust`` lists tools that never do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec

from events.errors import ConfigurationError
from events.linear_regex import PatternError, compile_user_pattern
from events.tools import ToolSpec

__all__ = [
    "DEFAULT_DEADLINE_S",
    "DEFAULT_POLICY",
    "MAX_DEADLINE_S",
    "ApprovalPolicy",
    "ApprovalPolicyError",
    "ApprovalRule",
    "GoalApproval",
    "approval_reason",
    "goal_policy",
    "parse_policy",
    "policy_problem",
]

DEFAULT_DEADLINE_S = 3600.0
# A week: a waiting goal costs nothing, but an approval nobody will ever give should end.
MAX_DEADLINE_S = 7 * 24 * 3600.0
_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_MAX_ENTRIES = 100


class ApprovalPolicyError(ConfigurationError):
    """An approval policy agora cannot apply, with what to fix."""


class ApprovalRule(msgspec.Struct, frozen=True, kw_only=True):
    """Calls of ``tool`` need approval (unless ``allow_hosts`` covers their url; if ``when``
    is set, only the calls whose arguments all match it)."""

    tool: str
    when: dict[str, str] = {}
    allow_hosts: tuple[str, ...] = ()


class ApprovalPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Which calls need approval, how long an approval may wait, and who may answer.

    ``answerers`` is recorded on every ``approval_requested`` and an answer must name one of
    them in ``by`` (empty: any answer counts). Who can answer at all is whoever may publish on
    ``agora.intake.approval`` (docs/approvals.md, "Who may answer").
    """

    rules: tuple[ApprovalRule, ...] = ()
    untrusted: bool = False
    trust: tuple[str, ...] = ()
    deadline_s: float = DEFAULT_DEADLINE_S
    answerers: tuple[str, ...] = ()
    # Whether a goal's intake may lift this policy's rules with ``approval.trust``.
    goals_may_trust: bool = False

    @property
    def requires_anything(self) -> bool:
        return bool(self.rules) or self.untrusted


# What ``AGORA_APPROVAL_POLICY=default`` means: every call with side effects on the workspace,
# every program, every fetch, and every tool an MCP server offers unless that server is trusted.
DEFAULT_POLICY = ApprovalPolicy(
    rules=(
        ApprovalRule(tool="write_file"),
        ApprovalRule(tool="append_line"),
        ApprovalRule(tool="python"),
        ApprovalRule(tool="http_get"),
    ),
    untrusted=True,
)


class GoalApproval(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A goal command's ``approval``: tools this goal's calls of need approval, tools it
    trusts (only where the platform's policy lets goals trust), and how long to wait."""

    require: Annotated[tuple[_NAME, ...], msgspec.Meta(max_length=50)] = ()
    trust: Annotated[tuple[_NAME, ...], msgspec.Meta(max_length=50)] = ()
    deadline_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_DEADLINE_S)] | None = None
    answerers: Annotated[tuple[_NAME, ...], msgspec.Meta(max_length=50)] = ()


def _selects(selector: str, tool: str) -> bool:
    if selector == "*":
        return True
    if selector.endswith("*"):
        return tool.startswith(selector[:-1])
    return selector == tool


def _host_allowed(allow_hosts: tuple[str, ...], args: Mapping[str, Any]) -> bool:
    url = args.get("url")
    if not allow_hosts or not isinstance(url, str):
        return False
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    for allowed in (name.lower() for name in allow_hosts):
        if allowed.startswith("*.") and host.endswith(allowed[1:]):
            return True
        if host == allowed:
            return True
    return False


def _argument_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _matches(when: Mapping[str, str], args: Mapping[str, Any]) -> bool:
    for name, pattern in when.items():
        if name not in args:
            return False
        try:
            compiled = compile_user_pattern(pattern)
        except PatternError:
            return True  # refused when the policy was loaded; never weaker if it gets here
        if compiled.search(_argument_text(args[name])) is None:
            return False
    return True


def approval_reason(
    policy: ApprovalPolicy | None, tool: str, args: Mapping[str, Any], spec: ToolSpec | None
) -> str | None:
    """Why a call of ``tool`` with ``args`` needs a person's approval, or None when it does not."""
    if policy is None or any(_selects(name, tool) for name in policy.trust):
        return None
    for rule in policy.rules:
        if not _selects(rule.tool, tool) or _host_allowed(rule.allow_hosts, args):
            continue
        if rule.when and not _matches(rule.when, args):
            continue
        detail = f" (its {', '.join(sorted(rule.when))} matched)" if rule.when else ""
        hosts = " outside the allowed hosts" if rule.allow_hosts else ""
        return (
            f"the approval policy requires approval for {tool}{hosts}{detail} (rule {rule.tool!r})"
        )
    if policy.untrusted and spec is not None and not spec.trusted:
        return f"{tool} comes from {spec.origin}, which is not trusted: every call needs approval"
    return None


def policy_problem(policy: ApprovalPolicy) -> str | None:
    """What makes ``policy`` unusable, or None."""
    if not 0 < policy.deadline_s <= MAX_DEADLINE_S:
        return f"deadline_s must be more than 0 and at most {MAX_DEADLINE_S:.0f} (a week)"
    if len(policy.rules) > _MAX_ENTRIES or len(policy.trust) > _MAX_ENTRIES:
        return f"a policy holds at most {_MAX_ENTRIES} rules and {_MAX_ENTRIES} trusted tools"
    for index, rule in enumerate(policy.rules, 1):
        if not rule.tool:
            return f"rule {index} names no tool"
        for name, pattern in rule.when.items():
            try:
                compile_user_pattern(pattern)
            except PatternError as exc:
                return (
                    f"rule {index} ({rule.tool}): when.{name} is not a pattern agora can run: {exc}"
                )
    return None


def parse_policy(text: str) -> ApprovalPolicy | None:
    """``AGORA_APPROVAL_POLICY``'s value, read: ``""``/``off`` none, ``default``
    :data:`DEFAULT_POLICY`, else a JSON object (the file's content, for a path)."""
    stripped = text.strip()
    if stripped.lower() in ("", "off"):
        return None
    if stripped.lower() == "default":
        return DEFAULT_POLICY
    try:
        policy = msgspec.json.decode(stripped, type=ApprovalPolicy)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise ApprovalPolicyError(
            f"AGORA_APPROVAL_POLICY is not an approval policy: {exc} "
            "(use 'default', 'off', a JSON object or the path of a JSON file; docs/approvals.md)"
        ) from None
    problem = policy_problem(policy)
    if problem is not None:
        raise ApprovalPolicyError(f"AGORA_APPROVAL_POLICY: {problem}")
    return policy


def goal_policy(
    platform: ApprovalPolicy | None, goal: GoalApproval | None
) -> ApprovalPolicy | str | None:
    """The policy a goal runs under: the platform's, with what its intake adds; a string says
    why the goal's part cannot be accepted. None when nothing of the goal needs approval."""
    base = platform or ApprovalPolicy()
    if goal is None:
        return platform if platform is not None and platform.requires_anything else None
    if goal.trust and platform is not None and not platform.goals_may_trust:
        return (
            "approval.trust: this platform's approval policy does not let a goal trust tools; "
            "drop approval.trust or ask the operator"
        )
    for name in goal.require:
        if name.endswith("*") and "*" in name[:-1]:
            return f"approval.require {name!r}: use a tool name, a prefix ending in '*', or '*'"
    merged = msgspec.structs.replace(
        base,
        rules=(*(ApprovalRule(tool=name) for name in dict.fromkeys(goal.require)), *base.rules),
        trust=(*base.trust, *goal.trust),
        deadline_s=goal.deadline_s if goal.deadline_s is not None else base.deadline_s,
        # A goal names who answers only where the platform names nobody.
        answerers=base.answerers or goal.answerers,
    )
    return merged if merged.requires_anything else None

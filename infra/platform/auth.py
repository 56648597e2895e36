"""Who may do what on the bus: per-identity NATS credentials and the server's permission table.

``agora up`` (and ``agora demo``) generate one identity per service plus ``admin`` (the
supervisor: provisions streams, the only one that may create, update, purge or delete them)
and ``client`` (the CLI and users: submit goals, query, read and follow the log). Each service may
publish only the event types it owns, its DLQ subject and the JetStream API requests its own
durable consumers need; it subscribes only to its own inboxes (``_INBOX_<identity>.>``) and
to the core subjects it serves. Anonymous connections are refused: the server configuration
has no ``no_auth_user``. ``client`` lives in an account of its own that reaches the platform's
account only through imports (see :data:`PLATFORM_ACCOUNT`), so no reply subject a client picks
can land in the log.

The permission table (:func:`permissions`) is pure data read off each service's manifest
(``services/<name>/manifest.py``, gathered in ``infra/platform/topology.py``): an identity may
publish exactly the event types its service produces. docs/security.md shows it.

Credentials are users with random passwords (``secrets.token_urlsafe``), one JSON file per
identity under ``<data dir>/nats/credentials`` (directory 0700, files 0600), reused across
restarts so running clients reconnect. The server configuration that embeds them is 0600 too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from events.errors import ConfigurationError
from events.outputs import CARRIES_OUTPUTS
from events.subjects import (
    DLQ_STREAM,
    INTAKE_TIMER_PREFIX,
    INTAKE_WAKEUP,
    dlq_subject,
    event_type_filter,
)
from infra.bus.outputs import OUTPUTS_BUCKET
from infra.bus.redrive import redrive_consumer
from infra.bus.snapshots import MEMORY_SNAPSHOTS
from infra.logging import get_logger
from infra.platform.credentials import (
    CLIENT,
    CREDENTIALS_DIR,
    Credentials,
    _write_private,
    client_credentials,
    client_tls,
    connect_options,
    credentials_path,
    inbox_prefix,
    load_credentials,
    loose_permissions,
    warn_if_loose,
)
from infra.platform.stats import stats_subject
from infra.platform.topology import MANIFESTS, SERVICE_CONSUMERS, event_owners
from infra.settings import Settings
from services.manifest import event_tag

__all__ = [
    "ADMIN",
    "CLIENT",
    "CLIENT_ACCOUNT",
    "CLIENT_SUBSCRIBE",
    "CREDENTIALS_DIR",
    "EVENT_OWNERS",
    "IDENTITIES",
    "PLATFORM_ACCOUNT",
    "SERVICE_IDENTITIES",
    "Credentials",
    "Permissions",
    "answer_subjects",
    "authorization_config",
    "check_secret_files",
    "client_credentials",
    "client_tls",
    "connect_options",
    "credentials_path",
    "ensure_credentials",
    "inbox_prefix",
    "load_credentials",
    "loose_permissions",
    "permissions",
    "prepare_embedded_security",
    "server_config",
    "service_env",
    "warn_if_loose",
]

ADMIN = "admin"
PROJECTOR = "projector"
SERVICE_IDENTITIES = ("planner", "executor", "memory", "evaluator", PROJECTOR)
IDENTITIES = (ADMIN, CLIENT, *SERVICE_IDENTITIES)
log = get_logger("agora.auth")

# Event type -> the services allowed to publish it, from what each manifest produces. The
# llm_* events are written by whichever service calls a model (LLM planning, the ReAct loop,
# an LLM judge).
EVENT_OWNERS: Mapping[str, tuple[str, ...]] = event_owners()

# What a client may subscribe to besides its own inboxes: the default inbox prefix of every
# NATS client library (so any language connects with only a user and password; the client
# identity is shared by its holders and services keep their own prefixes), the log's subjects
# for live core subscriptions (agora.events.<goal>.>), and the ephemeral live signals.
CLIENT_SUBSCRIBE = ("_INBOX.>", "agora.events.>", "agora.live.>")
# A client follows a goal from its start with an ordered consumer: a named create, which the
# read rules below allow for any name but the services' durables (nats-py and nats.js both
# name their ordered consumers when asked to; see docs/clients.md).

# Reading the log: stream info, short-lived (ephemeral) consumers, pulling from them, deleting
# them. Durable consumers are excluded below by name, so nobody can pull, ack or delete
# another service's work.
_READ_LOG = (
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.INFO.*",
    # One message by sequence or by subject (a goal's history since a sequence, the DLQ).
    "$JS.API.STREAM.MSG.GET.*",
    "$JS.API.DIRECT.GET.*",
    "$JS.API.DIRECT.GET.*.>",
    # Named creates only: an unnamed create ("$JS.API.CONSUMER.CREATE.<stream>") may carry
    # any consumer name in its body and would update that consumer, a durable included.
    "$JS.API.CONSUMER.CREATE.*.*",
    "$JS.API.CONSUMER.CREATE.*.*.>",
    "$JS.API.CONSUMER.INFO.*.*",
    "$JS.API.CONSUMER.MSG.NEXT.*.*",
    "$JS.API.CONSUMER.DELETE.*.*",
    "$JS.FC.>",
)


# Memory keeps its index snapshots in its own object store bucket (infra/bus/snapshots.py): it may
# create that bucket's stream, purge its old chunks and read it back. The event log and the
# other streams stay the admin's alone.
_SNAPSHOT_STREAM = f"OBJ_{MEMORY_SNAPSHOTS}"
_MEMORY_SNAPSHOTS = (
    f"$O.{MEMORY_SNAPSHOTS}.>",
    f"$JS.API.STREAM.CREATE.{_SNAPSHOT_STREAM}",
    f"$JS.API.STREAM.PURGE.{_SNAPSHOT_STREAM}",
    f"$JS.API.STREAM.MSG.GET.{_SNAPSHOT_STREAM}",
    f"$JS.API.DIRECT.GET.{_SNAPSHOT_STREAM}.>",
    # Reading an object is an unnamed ordered consumer; this stream has no durables to hijack.
    f"$JS.API.CONSUMER.CREATE.{_SNAPSHOT_STREAM}",
)
# Large outputs live in their own object store bucket (infra/bus/outputs.py), named by content.
# Everyone who reads the log may read it (an object is an unnamed ordered consumer: this
# stream has no durables to hijack); the writers of events that carry outputs may add objects.
# Nobody but the admin may purge or delete one: an output referred to by the log stays.
_OUTPUTS_STREAM = f"OBJ_{OUTPUTS_BUCKET}"
_READ_OUTPUTS = (f"$JS.API.CONSUMER.CREATE.{_OUTPUTS_STREAM}",)
_WRITE_OUTPUTS = (f"$O.{OUTPUTS_BUCKET}.>",)
_OUTPUT_TAGS = frozenset(event_tag(cls) for cls in CARRIES_OUTPUTS)

# Durable timers (events/timers.py) are scheduled messages on the intake stream that only the
# writer of timer_started arms; nats-server itself republishes them to the wake-up subject. A
# client may publish neither, so nobody outside can wake a waiting task early.
_TIMERS = (f"{INTAKE_TIMER_PREFIX}>", INTAKE_WAKEUP)

# Every service process answers NATS micro requests ($SRV.PING/INFO/STATS) and its stats
# endpoint (infra/platform/stats.py), which `agora status` gathers.
_SERVICE_DISCOVERY = "$SRV.>"


def _own_durables(identity: str) -> list[tuple[str, str]]:
    """(stream, durable) of every durable consumer ``identity`` runs, redrive ones included."""
    specs = SERVICE_CONSUMERS.get(identity, ())
    own = [(spec.stream, spec.durable) for spec in specs]
    own += [(DLQ_STREAM, redrive_consumer(d)) for d in sorted({spec.durable for spec in specs})]
    return own


def _durables() -> tuple[str, ...]:
    names = {durable for service in SERVICE_CONSUMERS for _, durable in _own_durables(service)}
    return tuple(sorted(names | {PROJECTOR}))


def _durable_denials(identity: str | None) -> list[str]:
    """Requests on durable consumers that are not ``identity``'s (and deleting even its own)."""
    own = {identity} | {durable for _, durable in _own_durables(identity)} if identity else set()
    denied = []
    for durable in _durables():
        denied.append(f"$JS.API.CONSUMER.DELETE.*.{durable}")
        if durable in own:
            continue
        denied += [
            f"$JS.API.CONSUMER.CREATE.*.{durable}",
            f"$JS.API.CONSUMER.CREATE.*.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.*.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.*.{durable}",
            f"$JS.ACK.*.{durable}.>",
        ]
    return denied


@dataclass(frozen=True, slots=True)
class Permissions:
    publish_allow: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    subscribe_allow: tuple[str, ...] = ()


def answer_subjects() -> tuple[str, ...]:
    """Where a service may send answers: inboxes only, every library's default and ours.

    Services get no ``allow_responses``: nats-server lets a response onto any reply subject
    the requester chose, even one the responder's ``deny`` list names (measured on 2.15), so
    a client could have aimed answers at the log, a dead-letter subject or the JetStream API.
    With an explicit allow on inbox prefixes instead, the server refuses any answer that is
    not going to an inbox and not a subject the service owns anyway; infra/bus/replies.py
    refuses those too, before a handler runs.
    """
    # _R_: the reply subject nats-server gives a request from the clients' account.
    inboxes = ("_INBOX.>", "_R_.>")
    return (*inboxes, *(f"{inbox_prefix(identity)}.>" for identity in IDENTITIES))


def permissions(identity: str) -> Permissions | None:
    """What ``identity`` may publish and subscribe to; None for admin (everything)."""
    if identity == ADMIN:
        return None
    inbox = f"{inbox_prefix(identity)}.>"
    if identity == CLIENT:
        return Permissions(
            publish_allow=(
                "agora.intake.>",
                # Every query subject a service answers (agora.query, memory's, control).
                *(subject for m in MANIFESTS.values() for subject in m.answers),
                _SERVICE_DISCOVERY,
                *_READ_LOG,
                *_READ_OUTPUTS,
            ),
            publish_deny=(*_durable_denials(None), *_TIMERS),
            subscribe_allow=(inbox, *CLIENT_SUBSCRIBE),
        )
    if identity not in SERVICE_IDENTITIES:
        raise ConfigurationError(f"unknown identity {identity!r}; known: {', '.join(IDENTITIES)}")
    manifest = MANIFESTS[identity]
    publish = [event_type_filter(t) for t, owners in EVENT_OWNERS.items() if identity in owners]
    publish.append(dlq_subject(identity))
    for stream, durable in _own_durables(identity):
        # A redrive that fails again is dead-lettered by its own consumer (redrive-<durable>).
        if durable != identity:
            publish.append(dlq_subject(durable))
        publish += [
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            # A pinned replica that stands down hands its pin on at once.
            f"$JS.API.CONSUMER.UNPIN.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ]
    if manifest.live:
        publish.append("agora.live.>")
    publish += manifest.schedules
    subscribe = [inbox, _SERVICE_DISCOVERY, stats_subject(identity), *manifest.answers]
    # A read model every replica keeps follows its events live (a doorbell on core NATS).
    subscribe += [event_type_filter(t) for t in manifest.followed_tags]
    if identity == "memory":
        publish += _MEMORY_SNAPSHOTS
    if identity in EVENT_OWNERS.get("timer_started", ()):
        publish += _TIMERS
    publish += _READ_OUTPUTS
    if any(identity in EVENT_OWNERS.get(tag, ()) for tag in _OUTPUT_TAGS):
        publish += _WRITE_OUTPUTS
    return Permissions(
        # Services answer requests (queries, $SRV, stats), onto inboxes only.
        publish_allow=(*publish, *_READ_LOG, *answer_subjects()),
        publish_deny=tuple(_durable_denials(identity)),
        subscribe_allow=tuple(subscribe),
    )


# -- credentials -------------------------------------------------------------------------


def ensure_credentials(
    nats_dir: Path, identities: Iterable[str] = IDENTITIES
) -> dict[str, Credentials]:
    """Every identity's credentials, generated on first use, reused afterwards."""
    directory = nats_dir / CREDENTIALS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    found: dict[str, Credentials] = {}
    for identity in identities:
        path = credentials_path(nats_dir, identity)
        if not path.exists():
            fresh = Credentials(user=identity, password=secrets.token_urlsafe(32))
            _write_private(path, json.dumps({"user": fresh.user, "password": fresh.password}))
        warn_if_loose(path, "NATS credentials")
        found[identity] = load_credentials(path)
    return found


def _user_block(creds: Credentials, perms: Permissions | None) -> str:
    user = f"user: {json.dumps(creds.user)}, password: {json.dumps(creds.password)}"
    if perms is None:
        return f"    {{{user}}}"
    publish = f"allow: {json.dumps(list(perms.publish_allow))}"
    if perms.publish_deny:
        publish += f", deny: {json.dumps(list(perms.publish_deny))}"
    parts = [
        f"publish: {{{publish}}}",
        f"subscribe: {{allow: {json.dumps(list(perms.subscribe_allow))}}}",
    ]
    return f"    {{{user},\n      permissions: {{\n        " + ",\n        ".join(parts) + "}}"


# The NATS accounts: the platform's (JetStream, admin, every service) and the clients'. A client
# reaches the platform only through the imports below, one per subject it may use, and a
# request crossing into the platform's account gets a fresh reply subject there (``_R_.…``),
# mapped back to the client's own. So no reply subject a client picks, not even for JetStream's
# own publish acknowledgements and API answers, can name a subject in the platform's account:
# nothing a client does by choosing a reply can reach AGORA_EVENTS, AGORA_DLQ or the JetStream
# API. (In one account, JetStream sent its acknowledgement onto any subject, the log included.)
PLATFORM_ACCOUNT = "AGORA"
CLIENT_ACCOUNT = "AGORA_CLIENTS"


def _client_bridge() -> tuple[list[str], list[str]]:
    """(exports, imports) carrying exactly what the client identity may publish (requests
    into the platform) and subscribe to (the log, live signals and inboxes, out of it)."""
    client = permissions(CLIENT)
    assert client is not None
    peer = json.dumps([CLIENT_ACCOUNT])
    exports, imports = [], []
    for subject in client.publish_allow:
        # "stream": a request may have several answers ($SRV from every replica, a pull batch).
        exports.append(
            f"{{service: {json.dumps(subject)}, response_type: stream, accounts: {peer}}}"
        )
        imports.append(
            f"{{service: {{account: {PLATFORM_ACCOUNT}, subject: {json.dumps(subject)}}}}}"
        )
    for subject in (f"{inbox_prefix(CLIENT)}.>", *CLIENT_SUBSCRIBE):
        exports.append(f"{{stream: {json.dumps(subject)}, accounts: {peer}}}")
        imports.append(
            f"{{stream: {{account: {PLATFORM_ACCOUNT}, subject: {json.dumps(subject)}}}}}"
        )
    return exports, imports


def authorization_config(credentials: Mapping[str, Credentials]) -> str:
    """The nats-server ``accounts`` block for ``credentials`` (identity -> credentials)."""

    def users(which: Iterable[str]) -> str:
        blocks = [_user_block(credentials[i], permissions(i)) for i in which if i in credentials]
        return "users: [\n" + ",\n".join(blocks) + "\n  ]"

    exports, imports = _client_bridge()
    platform = [identity for identity in credentials if identity != CLIENT]
    return (
        "accounts {\n"
        f"  {PLATFORM_ACCOUNT}: {{\n  jetstream: enabled\n  {users(platform)}\n"
        "  exports: [\n    " + ",\n    ".join(exports) + "\n  ]\n  }\n"
        f"  {CLIENT_ACCOUNT}: {{\n  {users([CLIENT])}\n"
        "  imports: [\n    " + ",\n    ".join(imports) + "\n  ]\n  }\n"
        "}\n"
    )


# -- file permissions --------------------------------------------------------------------


def check_secret_files(settings: Settings) -> list[Path]:
    """Warn about every configured secret file group or others can read; return those.

    The secrets: AGORA_NATS_CREDS, AGORA_TLS_KEY, and every ``AGORA_*_FILE`` variable (an API
    key file, the HTTP endpoints' token files), whichever component reads it.
    """
    return [
        path
        for path, name in settings.secret_files()
        if warn_if_loose(path, f"secret file ({name})")
    ]


def server_config(settings: Settings, credentials: Mapping[str, Credentials] | None) -> str:
    """The embedded server's security configuration: authorization and, if set, TLS."""
    text = authorization_config(credentials) if credentials else ""
    if settings.tls_cert is not None and settings.tls_key is not None:
        warn_if_loose(settings.tls_key, "TLS private key (AGORA_TLS_KEY)")
        text += (
            "tls {\n"
            f"  cert_file: {json.dumps(str(settings.tls_cert))}\n"
            f"  key_file: {json.dumps(str(settings.tls_key))}\n"
            "}\n"
        )
    return text


def prepare_embedded_security(settings: Settings) -> str:
    """Generate (or reuse) credentials when auth is on; the server configuration to append."""
    credentials = ensure_credentials(settings.nats_dir) if settings.nats_auth else None
    return server_config(settings, credentials)


def service_env(settings: Settings, identity: str) -> dict[str, str]:
    """Environment that makes a child process connect as ``identity`` with generated creds."""
    path = credentials_path(settings.nats_dir, identity)
    return {"AGORA_NATS_CREDS": str(path.resolve())} if path.exists() else {}

"""The permission table and credential handling of infra/platform/auth.py (pure, or files only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from events.catalog import AnyEvent
from events.errors import ConfigurationError
from events.subjects import is_inbox_reply
from infra.platform.auth import (
    ADMIN,
    CLIENT,
    EVENT_OWNERS,
    IDENTITIES,
    SERVICE_IDENTITIES,
    answer_subjects,
    authorization_config,
    check_secret_files,
    client_credentials,
    connect_options,
    credentials_path,
    ensure_credentials,
    permissions,
)
from infra.platform.runner import SERVICES
from infra.platform.topology import SERVICE_CONSUMERS
from infra.settings import Settings

EVENT_TYPES = {str(cls.__struct_config__.tag) for cls in AnyEvent.__args__}


def test_every_event_type_has_an_owner_so_the_server_lets_it_through() -> None:
    # A new event type without an owner would be refused by the server under `agora up`.
    assert set(EVENT_OWNERS) == EVENT_TYPES


def test_a_service_publishes_only_its_own_event_types() -> None:
    executor = permissions("executor")
    assert executor is not None
    events = {s for s in executor.publish_allow if s.startswith("agora.events.")}
    assert "agora.events.*.task_completed" in events
    # A ReAct step's call that needs a person's approval is asked for by the executor.
    assert "agora.events.*.approval_requested" in events
    assert "agora.events.*.approval_granted" not in events
    assert "agora.events.*.plan_created" not in events
    assert not any(s in executor.publish_allow for s in ("agora.events.>", ">", "$JS.API.>"))
    assert "agora.dlq.executor" in executor.publish_allow
    assert "agora.dlq.planner" not in executor.publish_allow


@pytest.mark.parametrize("identity", [i for i in IDENTITIES if i != ADMIN])
def test_no_one_but_admin_may_manage_streams(identity: str) -> None:
    perms = permissions(identity)
    assert perms is not None
    for subject in perms.publish_allow:
        if subject.startswith("$JS.API.STREAM.") and subject.endswith(
            ".OBJ_AGORA_MEMORY_SNAPSHOTS"
        ):
            # Memory's own snapshot bucket, and only memory's (below).
            assert identity == "memory", subject
            continue
        assert not subject.startswith(
            ("$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE", "$JS.API.STREAM.DELETE")
        )
        assert not subject.startswith(("$JS.API.STREAM.PURGE", "$JS.API.STREAM.MSG.DELETE"))
        if subject.startswith("$JS.API."):  # never a wildcard over API families
            assert subject.split(".")[2] not in ("*", ">"), subject
    assert permissions(ADMIN) is None


def test_each_service_may_consume_only_through_its_own_durables() -> None:
    for service, specs in SERVICE_CONSUMERS.items():
        perms = permissions(service)
        assert perms is not None
        for spec in specs:
            assert f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}" in perms.publish_allow
            assert f"$JS.ACK.{spec.stream}.{spec.durable}.>" in perms.publish_allow
        others = {s.durable for v in SERVICE_CONSUMERS.values() for s in v} - {service}
        for other in others:
            assert f"$JS.API.CONSUMER.MSG.NEXT.*.{other}" in perms.publish_deny
            assert f"$JS.ACK.*.{other}.>" in perms.publish_deny
        assert f"$JS.API.CONSUMER.DELETE.*.{service}" in perms.publish_deny
        assert perms.subscribe_allow[0] == f"_INBOX_{service}.>"


def test_the_client_submits_reads_and_queries_but_writes_no_events() -> None:
    perms = permissions(CLIENT)
    assert perms is not None
    assert "agora.intake.>" in perms.publish_allow
    assert "agora.query" in perms.publish_allow
    assert not any(s.startswith(("agora.events", "agora.dlq")) for s in perms.publish_allow)
    assert not any(s.startswith("_INBOX") for s in perms.publish_allow)


def test_services_answer_requests_onto_inboxes_only_and_clients_do_not() -> None:
    # Queries (projector, memory) and $SRV/stats requests (every service) get answers, onto
    # inboxes; no allow_responses, which nats-server honours even against a deny list.
    answering = [
        i
        for i in IDENTITIES
        if (p := permissions(i)) is not None and set(answer_subjects()) <= set(p.publish_allow)
    ]
    assert answering == list(SERVICE_IDENTITIES)
    assert all(subject.startswith(("_INBOX", "_R_.")) for subject in answer_subjects())


def test_the_server_config_lets_no_answer_onto_a_subject_it_does_not_allow(
    tmp_path: Path,
) -> None:
    config = authorization_config(ensure_credentials(tmp_path))
    assert "allow_responses" not in config
    # The client subscribes to its inbox, which the platform's account exports to it; every
    # service may answer onto it, and onto the replies of requests from the clients' account.
    assert config.count('"_INBOX_client.>"') == 1 + 2 + len(SERVICE_IDENTITIES)
    assert config.count('"_R_.>"') == len(SERVICE_IDENTITIES)


@pytest.mark.parametrize(
    "reply",
    ["_INBOX.abc", "_INBOX.abc.def", "_INBOX_client.Xy12.3", "_INBOX_planner.a-b_c", "_R_.ab.Cd"],
)
def test_inboxes_are_where_answers_go(reply: str) -> None:
    assert is_inbox_reply(reply)


@pytest.mark.parametrize(
    "reply",
    [
        "agora.events.g-1.goal_failed",
        "agora.dlq.planner",
        "$JS.API.STREAM.PURGE.AGORA_EVENTS",
        "$JS.ACK.AGORA_EVENTS.planner.1.2.3.4.5",
        "_INBOX",
        "_INBOX.",
        "_INBOX..a",
        "_INBOX.>",
        "_INBOX.*",
        "_INBOXX.a",
        "_INBOX.a\n",
        "_INBOX.a.agora.events.g.x extra",
        "_INBOX." + "a" * 300,
        "x._INBOX.a",
    ],
)
def test_anything_else_is_no_place_for_an_answer(reply: str) -> None:
    assert not is_inbox_reply(reply)


def test_unknown_identities_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="unknown identity"):
        permissions("intruder")


def test_credentials_are_generated_private_and_reused(tmp_path: Path) -> None:
    first = ensure_credentials(tmp_path)
    again = ensure_credentials(tmp_path)
    assert first == again
    assert set(first) == set(IDENTITIES)
    assert len({c.password for c in first.values()}) == len(IDENTITIES)
    assert (tmp_path / "credentials").stat().st_mode & 0o777 == 0o700
    path = credentials_path(tmp_path, "executor")
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["user"] == "executor"
    assert "password" not in repr(first["executor"])


def test_the_server_config_has_no_anonymous_user(tmp_path: Path) -> None:
    config = authorization_config(ensure_credentials(tmp_path))
    assert "no_auth_user" not in config
    assert config.count("user:") == len(IDENTITIES)


def test_a_process_finds_its_identity_unless_told_otherwise(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert client_credentials(settings, "planner") is None  # nothing generated: anonymous
    ensure_credentials(settings.nats_dir)
    found = client_credentials(settings, "planner")
    assert found is not None
    assert found.user == "planner"
    explicit = Settings(data_dir=tmp_path, nats_user="ops", nats_password="pw")
    assert connect_options(explicit, "planner")["user"] == "ops"
    given = Settings(data_dir=tmp_path, nats_creds=credentials_path(settings.nats_dir, "memory"))
    assert connect_options(given, "planner")["user"] == "memory"
    assert connect_options(settings, "executor")["inbox_prefix"] == "_INBOX_executor"


def test_loose_secret_files_are_warned_about_at_start_up(tmp_path: Path) -> None:
    key = tmp_path / "api.key"
    key.write_text("sk-secret")
    key.chmod(0o644)
    tight = tmp_path / "tls.key"
    tight.write_text("-----BEGIN KEY-----")
    tight.chmod(0o600)
    settings = Settings.from_env(
        {
            "AGORA_DATA_DIR": str(tmp_path),
            "AGORA_TLS_CERT": str(tmp_path / "c.pem"),
            "AGORA_TLS_KEY": str(tight),
            "AGORA_LLM_API_KEY_FILE": str(key),
        }
    )
    with capture_logs() as logs:
        loose = check_secret_files(settings)
    assert loose == [key]
    assert [entry["event"] for entry in logs] == ["secret_file_permissions_loose"]
    assert "chmod 600" in logs[0]["problem"]
    assert "sk-secret" not in json.dumps(logs)


def test_security_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "AGORA_NATS_AUTH": "off",
        "AGORA_NATS_CREDS": str(tmp_path / "c.json"),
        "AGORA_TLS_CERT": str(tmp_path / "cert.pem"),
        "AGORA_TLS_KEY": str(tmp_path / "key.pem"),
        "AGORA_TLS_CA": str(tmp_path / "ca.pem"),
    }
    settings = Settings.from_env(env)
    assert not settings.nats_auth
    assert settings.nats_creds == tmp_path / "c.json"
    # Children get TLS and auth mode, never this process's own credentials.
    child = settings.to_env()
    assert child["AGORA_TLS_CA"] == str(tmp_path / "ca.pem")
    assert child["AGORA_NATS_AUTH"] == "off"
    assert "AGORA_NATS_CREDS" not in child
    assert Settings().nats_auth  # on by default
    with pytest.raises(ConfigurationError, match="AGORA_NATS_AUTH"):
        Settings.from_env({"AGORA_NATS_AUTH": "maybe"})
    with pytest.raises(ConfigurationError, match="go together"):
        Settings.from_env({"AGORA_TLS_CERT": "cert.pem"})


def test_every_service_the_supervisor_runs_has_an_identity() -> None:
    # A service without one would get no credentials from `agora up` and be refused.
    assert set(SERVICES) <= set(IDENTITIES)
    for service in SERVICES:
        assert permissions(service) is not None


def test_sandbox_limits_from_the_environment() -> None:
    settings = Settings.from_env({"AGORA_SANDBOX_CPU_S": "2", "AGORA_SANDBOX_WALL_S": "3.5"})
    assert (settings.sandbox_cpu_s, settings.sandbox_wall_s) == (2, 3.5)
    assert Settings.from_env(settings.to_env()).sandbox_wall_s == 3.5
    with pytest.raises(ConfigurationError, match="AGORA_SANDBOX"):
        Settings.from_env({"AGORA_SANDBOX_MEMORY_MB": "0"})


@pytest.mark.parametrize("service", ["planner", "executor", "memory", "evaluator"])
def test_a_redrive_that_fails_again_may_be_dead_lettered(service: str) -> None:
    # The redrive consumer's dead letters go to agora.dlq.redrive-<service>; refused, the
    # record was redelivered without end while no dead letter showed.
    perms = permissions(service)
    assert perms is not None
    assert f"agora.dlq.redrive-{service}" in perms.publish_allow
    assert f"agora.dlq.{service}" in perms.publish_allow


def test_a_client_follows_the_log_with_any_library_defaults() -> None:
    perms = permissions(CLIENT)
    assert perms is not None
    # Default inboxes (a JetStream publish's ack), live core subscriptions on the log.
    assert {"_INBOX.>", "agora.events.>"} <= set(perms.subscribe_allow)
    assert "$JS.API.CONSUMER.CREATE.*.*.>" in perms.publish_allow
    assert "$JS.API.CONSUMER.CREATE.*" not in perms.publish_allow  # unnamed: could name a durable

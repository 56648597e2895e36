"""What a process connects to NATS with: its credentials, TLS, its private inbox prefix.

Kept apart from the permission table (infra/platform/auth.py), which reads every service's
manifest: a command that only connects (``agora query``) should not import all of that.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from events.errors import ConfigurationError
from infra.logging import get_logger

if TYPE_CHECKING:
    from infra.client_settings import ConnectionSettings

__all__ = [
    "CLIENT",
    "CREDENTIALS_DIR",
    "Credentials",
    "client_credentials",
    "client_tls",
    "connect_options",
    "credentials_path",
    "inbox_prefix",
    "load_credentials",
    "loose_permissions",
    "warn_if_loose",
]

CLIENT = "client"
CREDENTIALS_DIR = "credentials"
log = get_logger("agora.auth")


def inbox_prefix(identity: str) -> str:
    """Each identity's private inboxes: no one else can subscribe to its replies."""
    return f"_INBOX_{identity}"


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str = field(repr=False)


def credentials_path(nats_dir: Path, identity: str) -> Path:
    return nats_dir / CREDENTIALS_DIR / f"{identity}.json"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only, from the first byte (no window at 0644)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    temporary.replace(path)


def load_credentials(path: Path) -> Credentials:
    """A credentials file: ``{"user": ..., "password": ...}``."""
    try:
        data = json.loads(path.read_text())
        return Credentials(user=str(data["user"]), password=str(data["password"]))
    except OSError as exc:
        raise ConfigurationError(f"cannot read NATS credentials {path}: {exc.strerror}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"{path} is not an agora credentials file "
            '({"user": "...", "password": "..."}): ' + str(exc)
        ) from exc


def loose_permissions(path: Path) -> str | None:
    """Why ``path`` (a secret) is readable by others, or None when only its owner can read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"mode {stat.S_IMODE(mode):04o} lets group/others read it; run chmod 600 {path}"
    return None


def warn_if_loose(path: Path, what: str) -> bool:
    """Log a warning when a secret file is readable by group or others. True if it was."""
    problem = loose_permissions(path)
    if problem:
        log.warning("secret_file_permissions_loose", secret=what, path=str(path), problem=problem)
    return problem is not None


# -- what a client process connects with ---------------------------------------------------


def client_credentials(settings: ConnectionSettings, identity: str) -> Credentials | None:
    """This process's credentials: AGORA_NATS_USER/PASSWORD, else AGORA_NATS_CREDS, else the
    file ``agora up`` generated for ``identity`` under the data dir, else None (anonymous)."""
    if settings.nats_user:
        return Credentials(user=settings.nats_user, password=settings.nats_password or "")
    if settings.nats_creds is not None:
        warn_if_loose(settings.nats_creds, "NATS credentials (AGORA_NATS_CREDS)")
        return load_credentials(settings.nats_creds)
    generated = credentials_path(settings.nats_dir, identity)
    if generated.exists():
        return load_credentials(generated)
    return None


def client_tls(settings: ConnectionSettings) -> ssl.SSLContext | None:
    """A TLS context trusting AGORA_TLS_CA (or the system's CAs), when TLS is configured."""
    if settings.tls_ca is None and settings.tls_cert is None:
        return None
    return ssl.create_default_context(
        cafile=str(settings.tls_ca) if settings.tls_ca is not None else None
    )


def connect_options(settings: ConnectionSettings, identity: str) -> dict[str, Any]:
    """nats-py ``connect`` keyword arguments for ``identity``: credentials, TLS, inbox prefix."""
    options: dict[str, Any] = {"inbox_prefix": inbox_prefix(identity)}
    creds = client_credentials(settings, identity)
    if creds is not None:
        options.update(user=creds.user, password=creds.password)
    tls = client_tls(settings)
    if tls is not None:
        options["tls"] = tls
    return options

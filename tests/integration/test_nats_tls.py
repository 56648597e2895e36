"""Optional TLS (AGORA_TLS_CERT/KEY/CA): the embedded server and agora's clients speak TLS."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from infra.bus.connection import connect, open_hot_path
from infra.bus.core import NatsPyCore
from infra.bus.history import read_events
from infra.bus.streams import provision
from infra.clients.goals import AgoraClient
from infra.platform.auth import ADMIN, prepare_embedded_security
from infra.platform.embedded import EmbeddedNats
from infra.settings import Settings


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=agora-test", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


async def test_tls_with_credentials_end_to_end(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    base = replace(Settings(), data_dir=tmp_path / "data", tls_cert=cert, tls_key=key, tls_ca=cert)
    with EmbeddedNats(
        base.nats_dir, durability="os", extra_config=prepare_embedded_security(base)
    ) as server:
        settings = replace(base, nats_urls=(server.url,))
        # A client without TLS is turned away.
        # A plain client is told TLS is required before anything else.
        assert server.port > 0
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            info = json.loads((await asyncio.wait_for(reader.readline(), 5))[len("INFO ") :])
        finally:
            writer.close()
            await writer.wait_closed()
        assert info["tls_required"] is True
        assert info["auth_required"] is True
        admin = await connect(settings, "test-admin", identity=ADMIN)
        try:
            await provision(admin.jetstream(), settings)
            assert admin._server_info.get("tls_required") is True
            submitted = await AgoraClient(admin).submit({"text": "over tls"})
            assert not submitted.duplicate
            client = await connect(settings, "test-client")
            try:
                assert client.is_connected
                # Reads go through the stream reader's nats-py path under TLS.
                assert [seq async for seq, _ in read_events(client, "agora.events.>")] == []
                # So does the services' hot path (the wire client speaks no TLS).
                assert isinstance(await open_hot_path(settings, client, "test-tls"), NatsPyCore)
            finally:
                await client.close()
        finally:
            await admin.close()

"""TLS and mTLS are one setting away: certificates made here with openssl (a CA, a server
certificate for localhost, a client certificate), identity served with them, and the import
service's identity client connecting with ROLLCALL_IDENTITY_TLS_CA."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from identity_service.bootstrap import IdentityApp, build_identity
from identity_service.domain.passwords import PasswordHasher
from import_service.adapters.identity.client import IdentityClient
from shared.grpc_kit.server import client_credentials
from shared.proto.rollcall.identity.v1 import identity_service_pb2 as pb
from shared.proto.rollcall.identity.v1 import identity_service_pb2_grpc as pb_grpc
from shared.settings import Settings

ADMIN = "tls-admin-token-000001"
IMPORTER = "tls-importer-token-0001"
TOKENS = f"ops:admin:{ADMIN},importer:importer:{IMPORTER}"


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(folder: Path, name: str, subject: str, extension: str) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", subject,
             "-out", f"{name}.csr", cwd=folder)  # fmt: skip
    (folder / f"{name}.ext").write_text(extension)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.crt", cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=rollcall test CA", cwd=folder)  # fmt: skip
    _issue(folder, "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _issue(folder, "client", "/CN=import-service", "extendedKeyUsage=clientAuth\n")
    return Certs(
        folder / "ca.crt",
        folder / "server.crt",
        folder / "server.key",
        folder / "client.crt",
        folder / "client.key",
    )


async def _serve(identity_db_url: str, certs: Certs, *, require_client_cert: bool) -> IdentityApp:
    settings = Settings(
        identity_database_url=identity_db_url,
        tokens=TOKENS,
        identity_metrics_port=0,
        tls_cert=certs.server_cert,
        tls_key=certs.server_key,
        tls_client_ca=certs.ca if require_client_cert else None,
    )
    app = await build_identity(settings, password_hasher=PasswordHasher(time_cost=1, memory_cost_kib=8192))
    await app.start(port=0, host="127.0.0.1")
    return app


@pytest.fixture
async def tls_identity(identity_db_url: str, certs: Certs) -> AsyncIterator[str]:
    app = await _serve(identity_db_url, certs, require_client_cert=False)
    assert app.running is not None
    yield f"localhost:{app.running.port}"
    await app.close(grace=0)


@pytest.fixture
async def mtls_identity(identity_db_url: str, certs: Certs) -> AsyncIterator[str]:
    app = await _serve(identity_db_url, certs, require_client_cert=True)
    assert app.running is not None
    yield f"localhost:{app.running.port}"
    await app.close(grace=0)


async def _create_school(address: str, credentials: grpc.ChannelCredentials | None) -> str:
    channel = (
        grpc.aio.secure_channel(address, credentials) if credentials else grpc.aio.insecure_channel(address)
    )
    async with channel:
        request = pb.CreateSchoolRequest(name=f"TLS {uuid.uuid4().hex[:6]}")
        school = await pb_grpc.IdentityServiceStub(channel).CreateSchool(
            request, metadata=(("authorization", f"Bearer {ADMIN}"),), timeout=5
        )
        return school.id


async def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(
    tls_identity: str, certs: Certs
) -> None:
    trusted = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    assert await _create_school(tls_identity, trusted)
    with pytest.raises(grpc.aio.AioRpcError) as plaintext:
        await _create_school(tls_identity, None)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate(mtls_identity: str, certs: Certs) -> None:
    without_cert = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _create_school(mtls_identity, without_cert)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with_cert = grpc.ssl_channel_credentials(
        certs.ca.read_bytes(), certs.client_key.read_bytes(), certs.client_cert.read_bytes()
    )
    assert await _create_school(mtls_identity, with_cert)


async def test_the_import_service_reaches_identity_over_mtls_with_one_setting(
    mtls_identity: str, certs: Certs
) -> None:
    settings = Settings(
        identity_tls_ca=certs.ca, tls_cert=certs.client_cert, tls_key=certs.client_key, import_token=IMPORTER
    )
    school_id = await _create_school(mtls_identity, client_credentials(settings, certs.ca))
    client = IdentityClient(
        mtls_identity, IMPORTER, 5.0, client_credentials(settings, settings.identity_tls_ca)
    )
    try:
        assert await client.get_user(str(uuid.uuid4())) is None  # an answer over mTLS: the user is unknown
    finally:
        await client.close()
    assert school_id

"""The pipelined Redis connection honours the TLS options of a rediss:// URL, as redis-py does."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.redis_pipeline import PipelinedConnection


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate for 127.0.0.1 signed by nobody, like managed Redis services serve."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def answer_pings(reader, writer):
    """Just enough of a Redis server: +PONG for every command received."""
    while data := await reader.read(4096):
        writer.write(b"+PONG\r\n" * data.count(b"*"))
        await writer.drain()
    writer.close()


async def ping_over_tls(self_signed, query: str):
    cert_path, key_path = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    server = await asyncio.start_server(answer_pings, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        connection = PipelinedConnection(f"rediss://127.0.0.1:{port}/0{query}")
        return await connection.execute("PING")
    finally:
        server.close()


def test_self_signed_certificate_is_accepted_when_the_url_says_so(self_signed):
    # What settings add to rediss:// URLs with REDIS_SSL_CERT_REQS=none (Heroku's setting).
    assert asyncio.run(ping_over_tls(self_signed, "?ssl_cert_reqs=none")) == b"PONG"


def test_self_signed_certificate_is_refused_by_default(self_signed):
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(ping_over_tls(self_signed, ""))


def test_a_trusted_certificate_authority_from_the_url_is_used(self_signed):
    cert_path, _ = self_signed
    # Trusted now, but issued for another name: the hostname check still refuses it.
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(ping_over_tls(self_signed, f"?ssl_ca_certs={cert_path}"))
    query = f"?ssl_ca_certs={cert_path}&ssl_check_hostname=false"
    assert asyncio.run(ping_over_tls(self_signed, query)) == b"PONG"

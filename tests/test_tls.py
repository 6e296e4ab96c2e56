"""TLS on both ports: a certificate made here (a CA and a server certificate for 127.0.0.1 and
localhost), grpcurl and the official WooCommerce client against it, and the gateway's own
channel verifying the service."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from notes.v1 import notes_pb2 as pb
from notes.v1 import notes_pb2_grpc as pb_grpc
from woocommerce import API

from .conftest import BIN, records, start_service, stop_service


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("notes test CA"))
        .issuer_name(_name("notes test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server-key.pem",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_service(service, tmp_path):
    """A second `notes serve` over TLS, on the session service's database (so the session's
    tenants work), with the gateway verifying it against the test CA."""
    ca, cert, key = make_certificates(tmp_path)
    svc = start_service(
        service.database_url,
        tmp_path,
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        env_extra={"NOTES_GATEWAY_CA_FILE": str(ca)},
    )
    svc.ca = ca
    yield svc
    stop_service(svc)


@pytest.mark.slow
def test_grpcurl_verifies_the_service_and_calls_it_over_tls(tls_service, tenant):
    serving = next(r for r in records(tls_service.log) if r["event"] == "serving")
    assert serving["tls"] is True
    note = tenant.create("over tls").note
    out = subprocess.run(
        [
            str(BIN / "grpcurl"),
            "-cacert",
            str(tls_service.ca),
            "-H",
            f"authorization: Bearer {tenant.secret}",
            "-d",
            json.dumps({"id": note.id}),
            tls_service.grpc_target,
            "notes.v1.NotesService/GetNote",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["note"]["body"] == "over tls"
    # Without the CA the certificate is not trusted; in plaintext nothing answers.
    untrusted = subprocess.run(
        [str(BIN / "grpcurl"), tls_service.grpc_target, "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert untrusted.returncode != 0
    with grpc.insecure_channel(tls_service.grpc_target) as plain, pytest.raises(grpc.RpcError):
        pb_grpc.NotesServiceStub(plain).GetNote(pb.GetNoteRequest(id=note.id), timeout=5)
    with grpc.secure_channel(
        tls_service.grpc_target,
        grpc.ssl_channel_credentials(root_certificates=tls_service.ca.read_bytes()),
    ) as secure:
        got = pb_grpc.NotesServiceStub(secure).GetNote(
            pb.GetNoteRequest(id=note.id), metadata=tenant.auth, timeout=10
        )
        assert got.note.id == note.id


@pytest.mark.slow
def test_the_woocommerce_client_works_over_https_through_the_verified_gateway(tls_service, tenant):
    wcapi = API(
        url=f"https://127.0.0.1:{tls_service.http_port}",
        consumer_key=tenant.key_id,
        consumer_secret=tenant.secret,
        version="wc/v3",
        verify_ssl=str(tls_service.ca),
        timeout=20,
    )
    created = wcapi.post("orders/723/notes", {"note": "Sent over https."})
    assert created.status_code == 201, created.text
    listed = wcapi.get("orders/723/notes")
    assert listed.status_code == 200
    assert "Sent over https." in [n["note"] for n in listed.json()]
    # Plain HTTP is not served on the TLS port; an untrusted client refuses the certificate.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_service.http_port}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{tls_service.http_port}/healthz", timeout=5)

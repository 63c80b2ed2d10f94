"""Fixtures shared by the core tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chat_shell._models.openai_backend import OpenAIBackend
from model_support import Authority


@pytest.fixture
async def backend() -> AsyncIterator[OpenAIBackend]:
    """The lean OpenAI-protocol client, closed after the test."""
    backend = OpenAIBackend()
    yield backend
    await backend.aclose()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key): self-signed for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="session")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A company-style CA (not self-signed leaves): the server's certificate chains to it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("ca")

    def run(*args: str) -> str:
        done = subprocess.run([openssl, *args], check=True, capture_output=True, text=True)
        return done.stdout

    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    run(
        *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
        *("-keyout", str(ca_key), "-out", str(ca), "-subj", "/CN=Example Corp Test CA"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    key, request, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(request),
        "-subj",
        "/CN=127.0.0.1",
    )
    extensions = folder / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run(
        *("x509", "-req", "-in", str(request), "-CA", str(ca), "-CAkey", str(ca_key)),
        *("-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(extensions)),
    )
    hashed = folder / "hashed"
    hashed.mkdir()
    digest = run("x509", "-hash", "-noout", "-in", str(ca)).strip()
    shutil.copy(ca, hashed / f"{digest}.0")
    return Authority(ca=ca, folder=hashed, cert=cert, key=key)

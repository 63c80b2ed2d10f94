"""Whom a model endpoint's TLS certificate must be signed by: what the platform trusts, as the
official OpenAI SDK decides it.

In order: a model's own ``ca_bundle`` (a PEM file, or a folder hashed as ``openssl rehash``
makes it); else ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``; else the operating system's store —
through ``truststore`` on macOS and Windows (the system's own verifier, so a company CA
installed there is trusted), OpenSSL's default paths elsewhere (the distribution's CA bundle,
where ``update-ca-certificates`` puts a company CA), and certifi's bundle only when the system
has none at all (a bare container).
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["TrustError", "trust_context"]


class TrustError(ValueError):
    """A CA bundle that cannot be used (missing, unreadable, not PEM)."""


def trust_context(
    ca_bundle: str | None = None, environ: Mapping[str, str] | None = None
) -> ssl.SSLContext:
    """A verifying client context trusting ``ca_bundle``, else what the environment says."""
    env = os.environ if environ is None else environ
    if ca_bundle:
        return _from_path(ca_bundle, "the model's ca_bundle")
    if path := env.get("SSL_CERT_FILE"):
        return _from_path(path, "SSL_CERT_FILE")
    if path := env.get("SSL_CERT_DIR"):
        return _from_path(path, "SSL_CERT_DIR")
    if sys.platform in ("darwin", "win32"):
        import truststore

        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return system_context(ssl.get_default_verify_paths())


def system_context(paths: ssl.DefaultVerifyPaths) -> ssl.SSLContext:
    """OpenSSL's compiled-in CA file and folder (``paths``), or certifi's bundle if neither
    holds a certificate. (Not ``set_default_verify_paths()``: it would read ``SSL_CERT_*``.)"""
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if _has_hashed_certificates(paths.openssl_capath) else None
    if cafile is None and capath is None:
        import certifi

        cafile = certifi.where()
    return ssl.create_default_context(cafile=cafile, capath=capath)


def _has_hashed_certificates(folder: str) -> bool:
    try:
        return any(name.endswith(".0") for name in os.listdir(folder))
    except OSError:
        return False


def _from_path(path: str, origin: str) -> ssl.SSLContext:
    where = Path(path).expanduser()
    try:
        if where.is_dir():
            return ssl.create_default_context(capath=str(where))
        return ssl.create_default_context(cafile=str(where))
    except FileNotFoundError:
        raise TrustError(f"{origin} {path} does not exist") from None
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise TrustError(f"{origin} {path} is not a usable PEM CA bundle ({reason})") from None

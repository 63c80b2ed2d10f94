"""API keys: Bearer tokens checked against hashes in constant time; who owns what."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["Authenticator", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``owner`` is the API key's id (``None`` when auth is off).

    Sessions and runs record the owner that created them; another owner gets 404, as if they
    did not exist. With auth off there is one anonymous principal that sees everything.
    """

    owner: str | None

    def can_access(self, stored_owner: str | None) -> bool:
        if self.owner is None:
            return True
        return stored_owner == self.owner or (
            stored_owner is not None and stored_owner.startswith(self.owner + "/")
        )

    def storage_owner(self, client_owner: str | None) -> str | None:
        """The owner to record for a session a remote-storage client creates.

        A client's own ``owner`` label lives inside its key's namespace (``key-…/label``).
        """
        if self.owner is None:
            return client_owner
        return self.owner if client_owner is None else f"{self.owner}/{client_owner}"

    def visible_owner(self, stored_owner: str | None) -> str | None:
        """The owner label as the remote-storage client that stored it sees it."""
        if self.owner is None or stored_owner is None:
            return stored_owner
        if stored_owner == self.owner:
            return None
        prefix = self.owner + "/"
        return stored_owner[len(prefix) :] if stored_owner.startswith(prefix) else stored_owner


ANONYMOUS = Principal(owner=None)


class Authenticator:
    """Checks ``Authorization: Bearer <key>`` against SHA-256 digests of the accepted keys."""

    def __init__(self, key_hashes: list[str]) -> None:
        self._digests = [bytes.fromhex(item.removeprefix("sha256:")) for item in key_hashes]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal for this header, or ``None`` if it names no accepted key."""
        if not self._digests:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        match: bytes | None = None
        for candidate in self._digests:  # no early exit: the time does not tell which key
            if hmac.compare_digest(digest, candidate):
                match = candidate
        if match is None:
            return None
        return Principal(owner="key-" + match.hex()[:16])

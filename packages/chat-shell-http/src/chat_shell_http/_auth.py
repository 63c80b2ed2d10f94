"""API keys: Bearer tokens checked against hashes in constant time; who owns what."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["MAX_SESSION_ID", "Authenticator", "Principal"]

MAX_SESSION_ID = 128  # as core's validate_session_id


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``owner`` is the API key's id (``None`` when auth is off).

    Sessions and runs record the owner that created them. Session ids are per key: a key's
    session ``s1`` is stored as ``<owner>:s1``, so another key's ``s1`` is a different session
    and no key can tell which ids others use. With auth off there is one anonymous principal
    that sees everything, under the ids as given (shared with ``chat-shell chat``).
    """

    owner: str | None

    @property
    def max_session_id(self) -> int:
        """The longest session id this caller may use (a key's prefix takes some room)."""
        return MAX_SESSION_ID - (0 if self.owner is None else len(self.owner) + 1)

    def session_key(self, session_id: str) -> str | None:
        """The id under which this caller's session ``session_id`` is stored (``None``: too
        long to be stored with this key's prefix)."""
        if self.owner is None:
            return session_id
        if len(session_id) > self.max_session_id:
            return None
        return f"{self.owner}:{session_id}"

    def public_session_id(self, stored_id: str) -> str:
        """The id this caller knows a stored session by."""
        if self.owner is None:
            return stored_id
        return stored_id.removeprefix(self.owner + ":")

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

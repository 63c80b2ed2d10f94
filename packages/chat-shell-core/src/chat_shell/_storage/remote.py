"""History kept by a chat-shell server: the client of its remote-storage protocol.

Every ``HistoryStorage`` method is one HTTP call under ``{url}/api/v1/sessions`` (see
docs/http.md, "Remote storage"). Idempotent calls (GET, PATCH, DELETE, and the truncation)
are retried on connection failures and 502/503/504 answers; an append is not, so it is never
stored twice. httpx is imported when the backend is opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import NotFoundError, SessionBusyError, StorageError, UserError
from .._messages import Message, SessionInfo, validate_session_id
from .contract import HistoryStorage, StorageProvider, check_keep

if TYPE_CHECKING:
    import httpx

    from .._usage import SessionUsage

__all__ = ["RemoteHistoryStorage", "RemoteStorage"]

_RETRY_STATUS = frozenset({502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "PATCH", "DELETE", "HEAD"})


class RemoteHistoryStorage(HistoryStorage):
    """``HistoryStorage`` over HTTP; made and owned by ``RemoteStorage``."""

    def __init__(self, client: httpx.AsyncClient, *, retries: int, backoff: float) -> None:
        self._client = client
        self._retries = retries
        self._backoff = backoff

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = False,
    ) -> Any:
        import httpx

        attempts = self._retries + 1 if idempotent or method in _IDEMPOTENT else 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._client.request(method, path, json=json, params=params)
            except httpx.TimeoutException as exc:
                if last:
                    raise StorageError(f"the storage server timed out ({method} {path})") from exc
            except httpx.HTTPError as exc:
                if last:
                    raise StorageError(
                        f"cannot reach the storage server at {self._client.base_url} "
                        f"({type(exc).__name__})"
                    ) from exc
            else:
                if response.status_code in _RETRY_STATUS and not last:
                    await response.aclose()
                else:
                    return self._result(response)
            await asyncio.sleep(self._backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _result(response: httpx.Response) -> Any:
        status = response.status_code
        if status == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if status < 400:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        message = str(message or f"HTTP {status}")
        if status == 404:
            raise NotFoundError(message)
        if status == 409 and isinstance(error, dict) and error.get("code") == "session_busy":
            raise SessionBusyError("", str(error.get("run_id") or ""), message)
        if status in (401, 403):
            raise UserError(f"the storage server refused the API key: {message}")
        if status in (400, 413, 422):
            raise UserError(f"the storage server refused the request: {message}")
        raise StorageError(f"the storage server failed (HTTP {status}): {message}")

    @staticmethod
    def _session(session_id: str) -> str:
        return f"/api/v1/sessions/{validate_session_id(session_id)}"

    async def get_history(self, session_id: str, limit: int | None = None) -> list[Message]:
        params = None if limit is None else {"limit": limit}
        body = await self._call("GET", self._session(session_id) + "/messages", params=params)
        return [Message.model_validate(item) for item in body["messages"]]

    async def append_messages(
        self, session_id: str, messages: Sequence[Message], *, owner: str | None = None
    ) -> None:
        path = self._session(session_id) + "/messages"
        if not messages:
            return
        payload: dict[str, Any] = {"messages": [m.model_dump(mode="json") for m in messages]}
        if owner is not None:
            payload["owner"] = owner
        await self._call("POST", path, json=payload)

    async def clear_history(self, session_id: str) -> None:
        await self._call("DELETE", self._session(session_id) + "/messages")

    async def truncate_history(self, session_id: str, keep: int) -> None:
        path = self._session(session_id) + "/messages/truncate"
        # Keeping the first ``keep`` again changes nothing, so a retry is safe.
        await self._call("POST", path, json={"keep": check_keep(keep)}, idempotent=True)

    async def get_session(self, session_id: str) -> SessionInfo:
        return SessionInfo.model_validate(await self._call("GET", self._session(session_id)))

    async def list_sessions(
        self, *, limit: int = 50, offset: int = 0, owner: str | None = None
    ) -> list[SessionInfo]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if owner is not None:
            params["owner"] = owner
        body = await self._call("GET", "/api/v1/sessions", params=params)
        return [SessionInfo.model_validate(item) for item in body["sessions"]]

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        payload: dict[str, Any] = {}
        if title is not None:
            payload["title"] = title
        if metadata is not None:
            payload["metadata"] = metadata
        body = await self._call("PATCH", self._session(session_id), json=payload)
        return SessionInfo.model_validate(body)

    async def delete_session(self, session_id: str) -> None:
        await self._call("DELETE", self._session(session_id))

    async def get_usage(self, session_id: str) -> SessionUsage:
        from .._usage import SessionUsage

        body = await self._call("GET", self._session(session_id) + "/usage")
        return SessionUsage.model_validate(body)


class RemoteStorage(StorageProvider):
    """History kept by a chat-shell server (``chat-shell serve``).

    ``create_storage("remote", url="http://host:8000", api_key="...")``; the settings
    ``storage_url`` and ``storage_api_key`` (``CHAT_SHELL_STORAGE_URL``,
    ``CHAT_SHELL_STORAGE_API_KEY``) give them to the CLI.
    """

    name = "remote"
    shared_between_processes = True

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        if not url:
            raise UserError(
                "the remote storage needs the server's URL: set storage_url "
                "(CHAT_SHELL_STORAGE_URL), e.g. http://127.0.0.1:8000"
            )
        if not url.startswith(("http://", "https://")):
            raise UserError(f"storage_url must start with http:// or https:// (got {url!r})")
        self.url = url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self._client: httpx.AsyncClient | None = None
        self._history: RemoteHistoryStorage | None = None

    def __repr__(self) -> str:
        return f"RemoteStorage(url={self.url!r})"

    @property
    def history(self) -> HistoryStorage:
        if self._history is None:
            raise StorageError("the remote storage is not open: call `await initialize()`")
        return self._history

    async def initialize(self) -> None:
        if self._client is not None:
            return
        import httpx

        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
        )
        self._history = RemoteHistoryStorage(
            self._client, retries=self.retries, backoff=self.backoff
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = None
        self._history = None

"""core's RemoteStorage against a real `python -m chat_shell_http` process: the storage
conformance suite, plus retries and key handling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from chat_shell import (
    Message,
    RemoteStorage,
    StorageError,
    StorageProvider,
    UserError,
    create_storage,
)
from chat_shell.testing import StorageConformance
from http_support import ProcessServer

KEY = "remote-key-0123456789abcdef"


class TestRemoteStorageConformance(StorageConformance):
    """Each test gets a fresh server process with a fresh SQLite file."""

    @pytest_asyncio.fixture
    async def provider(self, tmp_path: Path) -> AsyncIterator[StorageProvider]:
        server = ProcessServer(tmp_path, "--api-key", KEY).wait_ready()
        provider = create_storage("remote", url=server.url, api_key=KEY)
        await provider.initialize()
        try:
            yield provider
        finally:
            await provider.close()
            server.stop()


async def test_wrong_key_and_unreachable_server(tmp_path: Path) -> None:
    server = ProcessServer(tmp_path, "--api-key", KEY).wait_ready()
    try:
        async with RemoteStorage(url=server.url, api_key="not-the-key-123456789") as storage:
            with pytest.raises(UserError, match="refused the API key"):
                await storage.history.get_history("s1")
        async with RemoteStorage(url=server.url, api_key=KEY) as storage:
            await storage.history.append_messages("s1", [Message(role="user", content="x")])
            assert [m.content for m in await storage.history.get_history("s1")] == ["x"]
            assert await storage.health()
    finally:
        server.stop()
    async with RemoteStorage(url=server.url, api_key=KEY, retries=2, backoff=0.01) as storage:
        with pytest.raises(StorageError, match="cannot reach"):
            await storage.history.list_sessions()
        assert not await storage.health()


def test_remote_storage_needs_a_url() -> None:
    with pytest.raises(UserError, match="storage_url"):
        RemoteStorage()
    with pytest.raises(UserError):
        RemoteStorage(url="ftp://x")

"""The core storage conformance suite, on a real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_shell import StorageProvider, create_storage
from chat_shell.testing import StorageConformance
from chat_shell_postgres import PostgresStorage


class TestPostgresConformance(StorageConformance):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        return PostgresStorage(self.url)


class TestPostgresThroughEntryPoint(StorageConformance):
    """The same suite on the backend as core finds it: through the entry point."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    async def make_storage(self, tmp_path: Path) -> StorageProvider:
        return create_storage("postgres", url=self.url)

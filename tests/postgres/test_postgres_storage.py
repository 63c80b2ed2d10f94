"""chat-shell-postgres beyond the conformance suite: search, owners, what PostgreSQL's text
cannot hold, migrations under many starting instances, and failures said in one clear line."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import AsyncIterator
from importlib.metadata import entry_points

import psycopg
import pytest
import pytest_asyncio
from chat_shell import (
    Message,
    Settings,
    StorageError,
    ToolCall,
    UserError,
    create_storage,
    storage_from_settings,
)
from chat_shell_postgres import SCHEMA_VERSION, PostgresHistoryStorage, PostgresStorage
from chat_shell_postgres._migrations import STEPS


@pytest_asyncio.fixture
async def storage(postgres_url: str) -> AsyncIterator[PostgresStorage]:
    async with PostgresStorage(postgres_url) as opened:
        yield opened


@pytest.fixture
def history(storage: PostgresStorage) -> PostgresHistoryStorage:
    return storage.history


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql.encode(), args).fetchall()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_registered_through_the_entry_point() -> None:
    (found,) = entry_points(group="chat_shell.storage", name="postgres")
    assert found.load() is PostgresStorage


def test_settings_select_it_with_a_url(postgres_url: str) -> None:
    provider = storage_from_settings(Settings(storage="postgres", storage_url=postgres_url))
    assert isinstance(provider, PostgresStorage)
    assert provider.url == postgres_url


def test_a_missing_or_bad_url_is_a_user_error() -> None:
    with pytest.raises(UserError, match="storage_url"):
        storage_from_settings(Settings(storage="postgres"))
    with pytest.raises(UserError, match="not a PostgreSQL URL"):
        create_storage("postgres", url="postgresql://h/db?nosuchoption=1")
    with pytest.raises(UserError):
        PostgresStorage("postgresql://h/db", pool_size=0)


async def test_search(storage: PostgresStorage, history: PostgresHistoryStorage) -> None:
    await history.append_messages(
        "s1",
        [
            Message(role="user", content="How do I bake sourdough bread?"),
            Message(role="assistant", content="Feed the starter, then bake at 250 °C."),
        ],
        owner="alice",
    )
    await history.append_messages(
        "s2", [Message(role="user", content="Café opening hours")], owner="bob"
    )
    hits = await storage.search("bake")
    assert {hit.message.content for hit in hits} == {
        "How do I bake sourdough bread?",
        "Feed the starter, then bake at 250 °C.",
    }
    assert all("**bake**" in hit.snippet for hit in hits)
    assert [h.message.content for h in await history.search("SOURDOUGH bread")] == [
        "How do I bake sourdough bread?"
    ]
    assert [h.session_id for h in await history.search("cafe")] == ["s2"]  # accents ignored
    assert [h.session_id for h in await history.search("CAFÉ")] == ["s2"]
    assert await history.search("bake", owner="bob") == []
    assert len(await history.search("bake", owner="alice")) == 2
    assert await history.search("bake", session_id="s2") == []
    assert len(await history.search("bake", limit=1)) == 1
    # tsquery syntax in the text is taken literally, never an error
    assert await history.search("bread & !(sourdough):* <-> ") != []
    assert await history.search("'bread' | nothing") == []
    with pytest.raises(UserError):
        await history.search("  -- ")


async def test_search_forgets_deleted_and_cleared_messages(history: PostgresHistoryStorage) -> None:
    await history.append_messages("gone", [Message(role="user", content="unicorn stable")])
    await history.append_messages("cleared", [Message(role="user", content="unicorn farm")])
    await history.delete_session("gone")
    await history.clear_history("cleared")
    assert await history.search("unicorn") == []


async def test_owners_are_kept_apart(history: PostgresHistoryStorage) -> None:
    await history.append_messages("a1", [Message(role="user", content="x")], owner="alice")
    await history.append_messages("b1", [Message(role="user", content="x")], owner="bob")
    await history.append_messages("a1", [Message(role="user", content="y")], owner="bob")
    assert (await history.get_session("a1")).owner == "alice"  # the first owner stays
    assert [s.id for s in await history.list_sessions(owner="alice")] == ["a1"]
    assert [s.id for s in await history.list_sessions(owner="bob")] == ["b1"]
    assert await history.list_sessions(owner="carol") == []


async def test_text_postgresql_cannot_hold_is_kept_exactly(history: PostgresHistoryStorage) -> None:
    messages = [
        Message(role="user", content='nul \x00 inside, and a quote: "'),
        Message(
            role="assistant",
            content=None,
            tool_calls=[ToolCall(id="c1", name="calculator", arguments={"x": "a\x00b"})],
            metadata={"note": "\x00", "nested": {"list": [1, 2.5, None]}},
        ),
    ]
    await history.append_messages("odd", messages)
    stored = await history.get_history("odd")
    assert [m.model_dump() for m in stored] == [m.model_dump() for m in messages]
    assert [h.session_id for h in await history.search("inside")] == ["odd"]


async def test_unstorable_metadata_is_a_user_error_and_writes_nothing(
    history: PostgresHistoryStorage,
) -> None:
    with pytest.raises(UserError):
        await history.append_messages(
            "s", [Message(role="user", content="x", metadata={"bad": object()})]
        )
    assert await history.list_sessions() == []


async def test_ten_instances_starting_at_once_migrate_once(postgres_url: str) -> None:
    storages = [PostgresStorage(postgres_url, pool_size=1) for _ in range(10)]
    try:
        await asyncio.gather(*(s.initialize() for s in storages))
        await storages[3].history.append_messages("s", [Message(role="user", content="hi")])
        assert len(await storages[7].history.get_history("s")) == 1
    finally:
        await asyncio.gather(*(s.close() for s in storages))
    rows = query(postgres_url, "SELECT version, name FROM chat_shell_schema ORDER BY version")
    assert rows == [(n + 1, name) for n, (name, _sql) in enumerate(STEPS)]
    assert len(STEPS) == SCHEMA_VERSION


async def test_opening_again_applies_nothing(postgres_url: str) -> None:
    async with PostgresStorage(postgres_url):
        pass
    (first,) = query(postgres_url, "SELECT applied_at FROM chat_shell_schema WHERE version = 1")
    async with PostgresStorage(postgres_url) as storage:
        assert await storage.health()
    assert query(postgres_url, "SELECT applied_at FROM chat_shell_schema WHERE version = 1") == [
        first
    ]


async def test_a_database_of_a_newer_version_is_refused_untouched(postgres_url: str) -> None:
    async with PostgresStorage(postgres_url):
        pass
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO chat_shell_schema (version, name) VALUES (%s, 'from the future')",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(StorageError, match="newer than this chat-shell-postgres"):
        await PostgresStorage(postgres_url).initialize()


async def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    url = f"postgresql://chat:hunter2secret@127.0.0.1:{closed_port()}/chat"
    storage = PostgresStorage(url, connect_timeout=2)
    with pytest.raises(StorageError) as caught:
        await storage.initialize()
    message = caught.value.message
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:")
    assert "/chat:" in message
    assert "\n" not in message
    assert "hunter2secret" not in str(caught.value)
    with pytest.raises(StorageError, match="not initialized"):
        _ = storage.history


async def test_a_wrong_password_is_one_clear_error(postgres_url: str) -> None:
    parts = urllib.parse.urlsplit(postgres_url)
    wrong = parts._replace(netloc=f"{parts.username}:wrong-password@{parts.hostname}:{parts.port}")
    with pytest.raises(StorageError, match="password authentication failed") as caught:
        await PostgresStorage(urllib.parse.urlunsplit(wrong)).initialize()
    assert "wrong-password" not in str(caught.value)


async def test_a_slow_database_does_not_block_the_event_loop(
    postgres_url: str, history: PostgresHistoryStorage
) -> None:
    await history.append_messages("s", [Message(role="user", content="first")])
    with psycopg.connect(postgres_url) as blocker:
        blocker.execute("LOCK TABLE chat_shell_sessions IN EXCLUSIVE MODE")
        append = asyncio.create_task(
            history.append_messages("s", [Message(role="user", content="second")])
        )
        # the append waits on the lock; the loop still runs every other task meanwhile
        ticks = 0
        while ticks < 200:
            await asyncio.sleep(0.001)
            ticks += 1
        assert not append.done()
        blocker.rollback()
    await append
    assert [m.content for m in await history.get_history("s")] == ["first", "second"]


async def test_the_pool_reconnects_after_its_connections_are_killed(
    postgres_url: str, history: PostgresHistoryStorage
) -> None:
    await history.append_messages("s", [Message(role="user", content="before")])
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()) AS k"
        ).fetchone()
    assert killed is not None
    assert killed[0] >= 1
    await history.append_messages("s", [Message(role="user", content="after")])
    assert [m.content for m in await history.get_history("s")] == ["before", "after"]

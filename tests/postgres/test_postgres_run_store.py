"""The core run-store conformance suite on PostgreSQL, and what the suite cannot see: the
database itself refuses a second run of a session, a follower is woken by NOTIFY and still gets
everything when notifications are lost, and retention keeps the history."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from chat_shell import (
    ChatEvent,
    EventType,
    Message,
    RunInfo,
    RunStore,
    SessionBusyError,
    Settings,
    create_run_store,
    run_store_from_settings,
)
from chat_shell.testing import RunStoreSuite
from chat_shell_postgres import PostgresRunStore, PostgresStorage


class TestPostgresRunStore(RunStoreSuite):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    async def make_store(self, tmp_path: Path) -> RunStore:
        return PostgresRunStore(self.url)


class TestPostgresRunStoreThroughEntryPoint(RunStoreSuite):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    async def make_store(self, tmp_path: Path) -> RunStore:
        return create_run_store("postgres", url=self.url)


def _info(session_id: str = "s1", holder: str = "holder-a") -> RunInfo:
    return RunInfo(
        run_id=f"run_{uuid.uuid4().hex}",
        session_id=session_id,
        holder=holder,
        status="running",
        created_at=time.time(),
    )


def _event(info: RunInfo, seq: int, event_type: EventType = EventType.CONTENT) -> ChatEvent:
    data = {"delta": f"t{seq}"} if event_type is EventType.CONTENT else {"status": "completed"}
    return ChatEvent.make(event_type, data, run_id=info.run_id, session_id=info.session_id, seq=seq)


@pytest_asyncio.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgresRunStore, PostgresRunStore]]:
    # a slow safety-net poll: what arrives sooner came through NOTIFY
    one = PostgresRunStore(postgres_url, poll_seconds=600)
    two = PostgresRunStore(postgres_url, poll_seconds=600)
    await one.initialize()
    await two.initialize()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


def test_settings_choose_it_with_the_storage() -> None:
    settings = Settings(storage="postgres", storage_url="postgresql://u:p@127.0.0.1/db")
    store = run_store_from_settings(settings)
    assert isinstance(store, PostgresRunStore)
    assert store.url == settings.storage_url


async def test_the_database_refuses_a_second_run_of_a_session(
    postgres_url: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    one, _ = stores
    info = _info()
    await one.create_run(info, lease_seconds=30)
    with psycopg.connect(postgres_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO chat_shell_runs (run_id, session_id, info) VALUES ('run_x', 's1', '{}')"
        )


async def test_followers_are_woken_by_notify(
    stores: tuple[PostgresRunStore, PostgresRunStore],
) -> None:
    one, two = stores
    info = _info()
    await one.create_run(info, lease_seconds=30)
    got: list[int] = []

    async def follow() -> None:
        async for event in two.follow(info.run_id):
            got.append(event.seq)

    follower = asyncio.create_task(follow())
    for seq in range(5):
        await one.append_events(info.run_id, [_event(info, seq)])
        await asyncio.sleep(0.01)
    done = info.model_copy(update={"status": "completed", "finished_at": time.time()})
    await one.finish_run(info.run_id, [_event(info, 5, EventType.COMPLETE)], done)
    # with a 600 s poll, only the notifications can have ended this in time
    await asyncio.wait_for(follower, 30)
    assert got == [0, 1, 2, 3, 4, 5]


async def test_nothing_is_lost_when_notifications_are(postgres_url: str) -> None:
    """The listening connection is killed mid-run: the follower reconnects, and the poll
    finds what the lost notifications would have told."""
    writer = PostgresRunStore(postgres_url)
    reader = PostgresRunStore(postgres_url, poll_seconds=0.2)
    await writer.initialize()
    await reader.initialize()
    try:
        info = _info()
        await writer.create_run(info, lease_seconds=30)
        followed = asyncio.create_task(_collect(reader.follow(info.run_id)))
        await writer.append_events(info.run_id, [_event(info, 0)])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            )
        for seq in range(1, 50):
            await writer.append_events(info.run_id, [_event(info, seq)])
        done = info.model_copy(update={"status": "completed", "finished_at": time.time()})
        await writer.finish_run(info.run_id, [_event(info, 50, EventType.COMPLETE)], done)
        events = await asyncio.wait_for(followed, 60)
        assert [event.seq for event in events] == list(range(51))
    finally:
        await writer.close()
        await reader.close()


async def _collect(iterator: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in iterator]


async def test_a_flush_of_many_runs_is_one_transaction(
    postgres_url: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    one, two = stores
    runs = [_info(f"s{n}") for n in range(20)]
    for info in runs:
        await one.create_run(info, lease_seconds=30)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        (before,) = admin.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone() or (0,)
        await one.append_batches([(info.run_id, [_event(info, 0)], None) for info in runs])
        admin.execute("SELECT pg_stat_clear_snapshot()")
        (after,) = admin.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone() or (0,)
    # the flush, plus the statistics queries of this check: never one per run
    assert after - before < len(runs) / 2
    for info in runs:
        assert [e.seq for e in await two.read_events(info.run_id)] == [0]


async def test_retention_deletes_runs_and_keeps_the_history(postgres_url: str) -> None:
    async with PostgresStorage(postgres_url) as storage, PostgresRunStore(postgres_url) as runs:
        await storage.history.append_messages("s1", [Message(role="user", content="kept")])
        info = _info()
        await runs.create_run(info, lease_seconds=30)
        done = info.model_copy(update={"status": "completed", "finished_at": time.time()})
        await runs.finish_run(info.run_id, [_event(info, 0, EventType.COMPLETE)], done)
        assert await runs.purge(max_count=0) == 1
        assert [m.content for m in await storage.history.get_history("s1")] == ["kept"]
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT count(*) FROM chat_shell_run_events").fetchall()
    assert rows == [(0,)]


def _commits(admin: psycopg.Connection[tuple[int]]) -> int:
    admin.execute("SELECT pg_stat_clear_snapshot()")
    (count,) = admin.execute(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone() or (0,)
    return count


async def test_a_burst_of_claims_goes_to_the_database_together(
    postgres_url: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    one, two = stores
    held = _info("held")
    await two.create_run(held, lease_seconds=30)
    fresh = [_info(f"burst{n}") for n in range(60)]
    contested = [_info("contested", holder=f"h{n}") for n in range(5)]
    again = fresh[0].model_copy(update={"session_id": "elsewhere"})  # a run id claimed twice
    claims = [*fresh, *contested, _info("held"), again]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        before = _commits(admin)
        outcomes = await asyncio.gather(
            *(one.create_run(info, lease_seconds=30) for info in claims), return_exceptions=True
        )
        after = _commits(admin)
    assert all(isinstance(o, RunInfo) for o in outcomes[:60])
    assert [o.run_id for o in outcomes[:60] if isinstance(o, RunInfo)] == [i.run_id for i in fresh]
    assert all(o.lease_expires_at is not None for o in outcomes[:60] if isinstance(o, RunInfo))
    winners = [o for o in outcomes[60:65] if isinstance(o, RunInfo)]
    assert len(winners) == 1
    for loser in outcomes[60:65]:
        if not isinstance(loser, RunInfo):
            assert isinstance(loser, SessionBusyError)
            assert loser.run_id == winners[0].run_id
    busy = outcomes[65]
    assert isinstance(busy, SessionBusyError)
    assert busy.run_id == held.run_id
    assert isinstance(outcomes[66], ValueError)
    assert "exists" in str(outcomes[66])
    # 67 claims: a few statements, never one per claim (the statistics queries count too)
    assert after - before < 20
    for info in fresh:
        assert await two.session_run(info.session_id) == info.run_id
    assert await two.session_run("elsewhere") is None


async def test_a_burst_of_ends_is_written_together_and_one_bad_end_fails_alone(
    postgres_url: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    one, two = stores
    runs = [_info(f"end{n}") for n in range(40)]
    for info in runs:
        await one.create_run(info, lease_seconds=30)
        await one.append_events(info.run_id, [_event(info, 0)])

    def ending(info: RunInfo, seq: int) -> tuple[list[ChatEvent], RunInfo]:
        final = info.model_copy(
            update={"status": "completed", "finished_at": time.time(), "content": "t0"}
        )
        return [_event(info, seq, EventType.COMPLETE)], final

    ends = [ending(info, 1) for info in runs]
    ends[7] = ending(runs[7], 5)  # a gap: its events would not follow the stored ones
    outcomes = await asyncio.gather(
        *(one.finish_run(info.run_id, *end) for info, end in zip(runs, ends, strict=True)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[7], ValueError)
    assert [o for n, o in enumerate(outcomes) if n != 7] == [True] * 39
    for n, info in enumerate(runs):
        stored = await two.get_run(info.run_id)
        if n == 7:
            assert not stored.done
            assert stored.last_seq == 0
        else:
            assert stored.status == "completed"
            assert stored.last_seq == 1
            assert stored.content == "t0"
            assert stored.lease_expires_at is None
            assert await two.session_run(info.session_id) is None
    assert await one.finish_run(runs[0].run_id, *ending(runs[0], 2)) is False
    assert await one.finish_run(runs[7].run_id, *ending(runs[7], 1)) is True


async def test_a_pooled_connection_the_server_ended_is_replaced_before_use(
    postgres_url: str,
) -> None:
    from chat_shell_postgres._connect import open_pool

    pool = await open_pool(postgres_url, 1, 10.0, "test")
    try:
        async with pool.connection() as conn:
            first = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert first is not None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first[0],))
        await asyncio.sleep(0.5)  # the server's goodbye reaches the idle connection's socket
        async with pool.connection() as conn:
            second = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert second is not None
        assert second[0] != first[0]
    finally:
        await pool.close()


async def test_a_flush_of_many_runs_with_long_ids_notifies_in_several_payloads(
    stores: tuple[PostgresRunStore, PostgresRunStore],
) -> None:
    """A notification's payload is limited to 8,000 bytes: news of many runs is split, and a
    run id that JSON escapes (here six bytes a character) is counted as escaped."""
    one, two = stores
    runs = [
        _info(f"long{n}").model_copy(update={"run_id": f"run_{n}_" + "é" * 150}) for n in range(60)
    ]
    for info in runs:
        await one.create_run(info, lease_seconds=30)
    last = runs[-1]
    followed = asyncio.create_task(_collect(two.follow(last.run_id)))
    await asyncio.sleep(0.2)  # the follower has read nothing yet, and waits for news
    await one.append_batches([(info.run_id, [_event(info, 0)], None) for info in runs])
    done = last.model_copy(update={"status": "completed", "finished_at": time.time()})
    await one.finish_run(last.run_id, [_event(last, 1, EventType.COMPLETE)], done)
    # with a 600 s poll, only the notifications can have ended this in time
    events = await asyncio.wait_for(followed, 30)
    assert [event.seq for event in events] == [0, 1]
    for info in runs[:-1]:
        assert [e.seq for e in await two.read_events(info.run_id)] == [0]


async def test_a_claim_whose_caller_gives_up_is_taken_back(
    postgres_url: str, stores: tuple[PostgresRunStore, PostgresRunStore]
) -> None:
    """A caller cancelled while its claim waits behind a batch takes it out; one cancelled while
    its claim is written has it deleted afterwards: no run nobody runs holds a session."""
    one, two = stores
    first, second = _info("held-by-admin"), _info("queued")
    with psycopg.connect(postgres_url) as admin:  # a transaction left open: the batch waits
        admin.execute(
            "INSERT INTO chat_shell_runs (run_id, session_id, info) VALUES ('run_admin',"
            " 'held-by-admin', '{}')"
        )
        written = asyncio.create_task(one.create_run(first, lease_seconds=30))
        await asyncio.sleep(0.5)  # its statement now waits for the admin's row
        queued = asyncio.create_task(one.create_run(second, lease_seconds=30))
        await asyncio.sleep(0.1)
        queued.cancel()
        written.cancel()
        admin.rollback()  # the first claim's statement goes through, for a caller that is gone
    for task in (written, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        for _ in range(100):
            (left,) = admin.execute(
                "SELECT count(*) FROM chat_shell_runs WHERE run_id = ANY(%s)",
                ([first.run_id, second.run_id],),
            ).fetchone() or (0,)
            if not left:
                break
            await asyncio.sleep(0.1)
    assert left == 0
    assert await two.session_run("held-by-admin") is None
    again = await two.create_run(_info("held-by-admin"), lease_seconds=30)
    assert await one.session_run("held-by-admin") == again.run_id


async def test_batches_cancelled_mid_write_leave_no_caller_waiting() -> None:
    from chat_shell_postgres._batches import Batches

    started = asyncio.Event()

    async def write(items: list[int]) -> Sequence[int | Exception]:
        started.set()
        await asyncio.sleep(3600)
        return items

    batches: Batches[int, int] = Batches(write)
    caller = asyncio.create_task(batches.submit(1))
    await asyncio.wait_for(started.wait(), 5)
    queued = asyncio.create_task(batches.submit(2))
    await asyncio.sleep(0)
    drain = batches._task
    assert drain is not None
    drain.cancel()  # the loop shutting down under it
    for task in (caller, queued):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

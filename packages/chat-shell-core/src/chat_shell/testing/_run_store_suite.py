"""The run-store conformance suite: subclass it once per store.

    class TestMyRunStore(RunStoreSuite):
        async def make_store(self, tmp_path):
            return MyRunStore(path=tmp_path / "runs.db")

        async def make_peer(self, store, tmp_path):
            # another store object on the same backing: another connection, as another
            # process would open it (the default makes a second ``make_store(tmp_path)``)
            return MyRunStore(path=tmp_path / "runs.db")

Both are initialized by the suite and closed after each test. Needs pytest and pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from .._errors import NotFoundError, SessionBusyError
from .._events import ChatEvent, EventType
from .._runs.contract import INTERRUPTED_REASON, RunInfo, RunStore

__all__ = ["RunStoreSuite"]

LEASE = 30.0
# Longest a test waits for something another store object did (never a timing assertion: a
# store that is merely slow passes; one that never delivers fails instead of hanging).
PATIENCE = 10.0


def _info(session_id: str = "s1", holder: str = "holder-a", **fields: Any) -> RunInfo:
    return RunInfo(
        run_id=f"run_{uuid.uuid4().hex}",
        session_id=session_id,
        owner="k1",
        holder=holder,
        status="running",
        created_at=time.time(),
        started_at=time.time(),
        **fields,
    )


def _events(info: RunInfo, start: int, count: int, text: str = "tok") -> list[ChatEvent]:
    return [
        ChatEvent.make(
            EventType.CONTENT,
            {"delta": f"{text}{seq} "},
            run_id=info.run_id,
            session_id=info.session_id,
            seq=seq,
        )
        for seq in range(start, start + count)
    ]


def _complete(info: RunInfo, seq: int, status: str = "completed") -> ChatEvent:
    return ChatEvent.make(
        EventType.COMPLETE,
        {"status": status, "content": info.content, "usage": {}, "model": "m"},
        run_id=info.run_id,
        session_id=info.session_id,
        seq=seq,
    )


def _final(info: RunInfo, status: str = "completed", **fields: Any) -> RunInfo:
    return info.model_copy(update={"status": status, "finished_at": time.time(), **fields})


async def _finish(store: RunStore, info: RunInfo, count: int, status: str = "completed") -> None:
    """Append ``count`` content events, then the complete event, and end the run."""
    text = "".join(e.delta for e in _events(info, 0, count))
    await store.append_events(info.run_id, _events(info, 0, count), info)
    ended = _final(info, status, content=text)
    assert await store.finish_run(info.run_id, [_complete(ended, count, status)], ended)


async def _collect(iterator: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [event async for event in iterator]


class RunStoreSuite:
    """Behaviour every ``RunStore`` must have."""

    async def make_store(self, tmp_path: Path) -> RunStore:
        raise NotImplementedError

    async def make_peer(self, store: RunStore, tmp_path: Path) -> RunStore:
        """Another store object on ``store``'s backing (another process would open this)."""
        return await self.make_store(tmp_path)

    @pytest_asyncio.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RunStore]:
        store = await self.make_store(tmp_path)
        await store.initialize()
        try:
            yield store
        finally:
            await store.close()

    @pytest_asyncio.fixture
    async def peer(self, store: RunStore, tmp_path: Path) -> AsyncIterator[RunStore]:
        peer = await self.make_peer(store, tmp_path)
        await peer.initialize()
        try:
            yield peer
        finally:
            await peer.close()

    # -- creating and claiming -------------------------------------------------------------

    async def test_create_and_get(self, store: RunStore, peer: RunStore) -> None:
        info = _info(metadata={"client_session_id": "mine"}, stores_history=False)
        before = time.time()
        created = await store.create_run(info, lease_seconds=LEASE)
        assert created.run_id == info.run_id
        assert created.status == "running"
        assert created.last_seq == -1
        assert created.lease_expires_at is not None
        assert created.lease_expires_at >= before + LEASE - 5
        for reader in (store, peer):
            got = await reader.get_run(info.run_id)
            assert got.session_id == "s1"
            assert got.owner == "k1"
            assert got.holder == "holder-a"
            assert got.metadata == {"client_session_id": "mine"}
            assert got.stores_history is False
            assert not got.done
            assert await reader.session_run("s1") == info.run_id
            assert await reader.session_run("s2") is None

    async def test_unknown_runs_are_not_found(self, store: RunStore) -> None:
        with pytest.raises(NotFoundError):
            await store.get_run("run_missing")
        with pytest.raises(NotFoundError):
            await store.read_events("run_missing")
        with pytest.raises(NotFoundError):
            await store.request_cancel("run_missing")
        with pytest.raises(NotFoundError):
            await _collect(store.follow("run_missing"))

    async def test_one_run_per_session_across_store_objects(
        self, store: RunStore, peer: RunStore
    ) -> None:
        first = _info()
        await store.create_run(first, lease_seconds=LEASE)
        for creator in (store, peer):
            with pytest.raises(SessionBusyError) as caught:
                await creator.create_run(_info(holder="holder-b"), lease_seconds=LEASE)
            assert caught.value.run_id == first.run_id
            assert caught.value.code == "session_busy"
        other = await peer.create_run(_info("s2", holder="holder-b"), lease_seconds=LEASE)
        assert other.session_id == "s2"
        await _finish(store, first, 1)
        assert await peer.session_run("s1") is None
        again = await peer.create_run(_info(holder="holder-b"), lease_seconds=LEASE)
        assert await store.session_run("s1") == again.run_id

    async def test_concurrent_claims_have_one_winner(self, store: RunStore, peer: RunStore) -> None:
        candidates = [_info("contested", holder=f"h{n}") for n in range(10)]
        outcomes = await asyncio.gather(
            *(
                (store if n % 2 else peer).create_run(info, lease_seconds=LEASE)
                for n, info in enumerate(candidates)
            ),
            return_exceptions=True,
        )
        winners = [o for o in outcomes if isinstance(o, RunInfo)]
        assert len(winners) == 1
        losers = [o for o in outcomes if not isinstance(o, RunInfo)]
        assert all(isinstance(o, SessionBusyError) for o in losers)
        assert all(o.run_id == winners[0].run_id for o in losers if isinstance(o, SessionBusyError))

    async def test_a_run_id_is_created_once(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        with pytest.raises(ValueError):  # noqa: PT011 - the contract fixes the type, not the words
            await peer.create_run(info.model_copy(update={"session_id": "s2"}), lease_seconds=1)

    # -- events ------------------------------------------------------------------------------

    async def test_batches_keep_order_and_summary(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await store.append_events(info.run_id, _events(info, 0, 3), info.model_copy())
        progress = info.model_copy(
            update={
                "content": "tok0 tok1 tok2 tok3 tok4 ",
                "model": "openai/x",
                "usage": {"total_tokens": 7},
                "step_content": "tok3 tok4 ",
                "open_tool_calls": [{"id": "c1", "name": "calculator"}],
                "tool_calls": [{"id": "c1", "name": "calculator", "arguments": {}}],
            }
        )
        await store.append_events(info.run_id, _events(info, 3, 2), progress)
        got = await peer.get_run(info.run_id)
        assert got.last_seq == 4
        assert got.content == "tok0 tok1 tok2 tok3 tok4 "
        assert got.model == "openai/x"
        assert got.usage == {"total_tokens": 7}
        assert got.step_content == "tok3 tok4 "
        assert got.open_tool_calls == [{"id": "c1", "name": "calculator"}]
        assert got.tool_calls[0]["id"] == "c1"
        events = await peer.read_events(info.run_id)
        assert [e.seq for e in events] == [0, 1, 2, 3, 4]
        assert [e.data for e in events] == [e.data for e in _events(info, 0, 5)]
        assert all(e.run_id == info.run_id and e.session_id == "s1" for e in events)
        assert [e.seq for e in await peer.read_events(info.run_id, after=2)] == [3, 4]
        assert [e.seq for e in await peer.read_events(info.run_id, after=0, limit=2)] == [1, 2]
        assert await peer.read_events(info.run_id, after=4) == []

    async def test_a_retried_batch_is_harmless_and_a_gap_refused(self, store: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await store.append_events(info.run_id, _events(info, 0, 3))
        await store.append_events(info.run_id, _events(info, 1, 4))  # 1, 2 again, then 3, 4
        assert [e.seq for e in await store.read_events(info.run_id)] == [0, 1, 2, 3, 4]
        with pytest.raises(ValueError):  # noqa: PT011 - the contract fixes the type, not the words
            await store.append_events(info.run_id, _events(info, 7, 1))
        assert (await store.get_run(info.run_id)).last_seq == 4

    async def test_batches_of_many_runs_at_once(self, store: RunStore, peer: RunStore) -> None:
        runs = [_info(f"b{n}") for n in range(3)]
        for info in runs:
            await store.create_run(info, lease_seconds=LEASE)
        await store.append_batches(
            [
                (info.run_id, _events(info, 0, n + 1), info.model_copy(update={"content": "x" * n}))
                for n, info in enumerate(runs)
            ]
        )
        for n, info in enumerate(runs):
            got = await peer.get_run(info.run_id)
            assert got.last_seq == n
            assert got.content == "x" * n
            assert len(await peer.read_events(info.run_id)) == n + 1

    async def test_event_fields_round_trip(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        text = 'héllo ✓ 你好 \U0001f600 "q" \n \\ \x00'
        call = {"id": "c1", "name": "calc", "arguments": {"expression": "1+1", "n": [1, 2.5]}}
        made = [
            ChatEvent.make(EventType.CONTENT, {"delta": text}, run_id=info.run_id,
                           session_id="s1", seq=0),
            ChatEvent.make(EventType.TOOL_CALL, call, run_id=info.run_id, session_id="s1", seq=1),
            ChatEvent.make(EventType.ERROR, {"code": "x", "message": "m", "retryable": False},
                           run_id=info.run_id, session_id="s1", seq=2),
        ]  # fmt: skip
        await store.append_events(info.run_id, made)
        stored = await peer.read_events(info.run_id)
        assert [e.model_dump() for e in stored] == [e.model_dump() for e in made]
        assert stored[0].event_type is EventType.CONTENT

    # -- following ---------------------------------------------------------------------------

    async def test_follow_across_store_objects(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await store.append_events(info.run_id, _events(info, 0, 2))
        seen: list[int] = []
        got_two = asyncio.Event()

        async def follower() -> list[ChatEvent]:
            events = []
            async for event in peer.follow(info.run_id):
                events.append(event)
                seen.append(event.seq)
                if len(events) == 2:
                    got_two.set()
            return events

        task = asyncio.create_task(follower())
        await asyncio.wait_for(got_two.wait(), PATIENCE)
        for start in range(2, 40, 4):  # batches arriving while the follower waits
            await store.append_events(info.run_id, _events(info, start, 4))
            await asyncio.sleep(0.005)
        ended = _final(info)
        await store.finish_run(info.run_id, [_complete(ended, 42)], ended)
        events = await asyncio.wait_for(task, PATIENCE)
        assert [e.seq for e in events] == list(range(43))
        assert events[-1].event_type is EventType.COMPLETE

    async def test_follow_from_a_seq(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await _finish(store, info, 10)
        assert [e.seq for e in await _collect(peer.follow(info.run_id, after=6))] == [7, 8, 9, 10]
        assert await _collect(peer.follow(info.run_id, after=10)) == []

    async def test_a_finished_run_replays_whole(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        for start in range(0, 5000, 250):
            await store.append_events(info.run_id, _events(info, start, 250))
        ended = _final(info)
        await store.finish_run(info.run_id, [_complete(ended, 5000)], ended)
        for reader in (store, peer):
            events = await _collect(reader.follow(info.run_id))
            assert [e.seq for e in events] == list(range(5001))
            assert events[4999].delta == "tok4999 "
            assert len(await reader.read_events(info.run_id)) == 5001
        got = await peer.get_run(info.run_id)
        assert got.last_seq == 5000
        assert got.event_bytes > 5000 * 40

    async def test_many_followers_see_the_same_log(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        tasks = [
            asyncio.create_task(_collect((peer if n % 2 else store).follow(info.run_id)))
            for n in range(6)
        ]
        await asyncio.sleep(0)
        await _finish(store, info, 30)
        results = await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE)
        for events in results:
            assert [e.seq for e in events] == list(range(31))

    # -- finishing ---------------------------------------------------------------------------

    async def test_finish_stores_the_final_summary(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await store.append_events(info.run_id, _events(info, 0, 2), info)
        ended = _final(
            info,
            "failed",
            content="tok0 tok1 ",
            error={"code": "unavailable", "message": "down", "retryable": True},
            reason=None,
            finish_reason="stop",
            warnings=["fallback skipped"],
        )
        assert await store.finish_run(info.run_id, [_complete(ended, 2, "failed")], ended)
        got = await peer.get_run(info.run_id)
        assert got.status == "failed"
        assert got.done
        assert got.finished_at is not None
        assert got.error == {"code": "unavailable", "message": "down", "retryable": True}
        assert got.warnings == ["fallback skipped"]
        assert got.finish_reason == "stop"
        assert got.last_seq == 2
        assert got.event_bytes > 0
        assert await peer.session_run("s1") is None
        assert not await peer.finish_run(info.run_id, [], ended)  # twice: nothing changes
        await store.append_events(info.run_id, _events(info, 3, 1))  # after the end: ignored
        assert (await peer.get_run(info.run_id)).last_seq == 2
        assert not await peer.request_cancel(info.run_id)

    async def test_finish_needs_a_final_status(self, store: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        with pytest.raises(ValueError):  # noqa: PT011 - the contract fixes the type, not the words
            await store.finish_run(info.run_id, [], info)

    # -- cancelling --------------------------------------------------------------------------

    async def test_cancel_across_store_objects(self, store: RunStore, peer: RunStore) -> None:
        early = _info("early")
        await store.create_run(early, lease_seconds=LEASE)
        assert await peer.request_cancel(early.run_id)  # before anyone watches
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        theirs = _info("s3", holder="holder-b")
        await store.create_run(theirs, lease_seconds=LEASE)
        seen: list[str] = []
        both = asyncio.Event()

        async def watch() -> None:
            async for run_id in store.watch_cancels("holder-a"):
                seen.append(run_id)
                if {early.run_id, info.run_id} <= set(seen):
                    both.set()

        watcher = asyncio.create_task(watch())
        try:
            await asyncio.sleep(0.01)
            assert await peer.request_cancel(theirs.run_id)  # another holder's: not ours
            assert await peer.request_cancel(info.run_id)
            assert await peer.request_cancel(info.run_id)  # twice is harmless
            await asyncio.wait_for(both.wait(), PATIENCE)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        assert theirs.run_id not in seen
        assert (await store.get_run(info.run_id)).cancel_requested
        ended = _final(info, "cancelled")
        assert await store.finish_run(info.run_id, [_complete(ended, 0, "cancelled")], ended)
        assert not await peer.request_cancel(info.run_id)

    async def test_approval_answers_across_store_objects(
        self, store: RunStore, peer: RunStore
    ) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        assert await store.approval_answer(info.run_id, "call_1") is None
        assert await peer.answer_approval(info.run_id, "call_1", True)
        assert await peer.answer_approval(info.run_id, "call_2", False)
        assert await store.approval_answer(info.run_id, "call_1") is True
        assert await store.approval_answer(info.run_id, "call_2") is False
        # the first answer wins, from any store object
        assert not await store.answer_approval(info.run_id, "call_1", False)
        assert not await peer.answer_approval(info.run_id, "call_2", True)
        assert await peer.approval_answer(info.run_id, "call_1") is True
        assert await peer.approval_answer(info.run_id, "call_2") is False
        with pytest.raises(NotFoundError):
            await peer.answer_approval("run_" + "0" * 32, "call_1", True)
        assert await peer.approval_answer("run_" + "0" * 32, "call_1") is None
        ended = _final(info)
        assert await store.finish_run(info.run_id, [_complete(ended, 0)], ended)
        assert not await peer.answer_approval(info.run_id, "call_3", True)  # the run ended
        assert await store.approval_answer(info.run_id, "call_3") is None
        assert await store.approval_answer(info.run_id, "call_1") is True  # kept with the run
        assert await peer.purge(max_count=0) == 1
        assert await store.approval_answer(info.run_id, "call_1") is None  # purged with it

    async def test_watching_ends_when_the_store_closes(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        await store.initialize()
        watcher = asyncio.create_task(_collect_ids(store.watch_cancels("holder-a")))
        await asyncio.sleep(0.01)
        await store.close()
        assert await asyncio.wait_for(watcher, PATIENCE) == []

    # -- leases and interruption -------------------------------------------------------------

    async def test_renew_leases(self, store: RunStore, peer: RunStore) -> None:
        mine, other, done = _info("a"), _info("b", holder="holder-b"), _info("c")
        for info in (mine, other, done):
            await store.create_run(info, lease_seconds=5)
        await _finish(store, done, 1)
        before = (await store.get_run(mine.run_id)).lease_expires_at
        theirs = (await store.get_run(other.run_id)).lease_expires_at
        assert before is not None
        renewed = await peer.renew_leases(
            "holder-a", [mine.run_id, other.run_id, done.run_id, "run_missing"], LEASE
        )
        assert renewed == {mine.run_id}
        after = (await store.get_run(mine.run_id)).lease_expires_at
        assert after is not None
        assert after > before
        assert (await store.get_run(other.run_id)).lease_expires_at == theirs

    async def test_a_lapsed_lease_is_interrupted_once(
        self, store: RunStore, peer: RunStore
    ) -> None:
        lapsed, alive = _info("a"), _info("b", holder="holder-b")
        await store.create_run(lapsed, lease_seconds=5)
        await store.create_run(alive, lease_seconds=600)
        progress = lapsed.model_copy(
            update={"content": "tok0 tok1 tok2 ", "step_content": "tok2 ", "model": "m"}
        )
        await store.append_events(lapsed.run_id, _events(lapsed, 0, 3), progress)
        assert await store.interrupt_expired() == []  # nothing has lapsed yet
        later = time.time() + 60
        outcomes = await asyncio.gather(
            store.interrupt_expired(now=later), peer.interrupt_expired(now=later)
        )
        ended = [info for outcome in outcomes for info in outcome]
        assert [info.run_id for info in ended] == [lapsed.run_id]
        info = ended[0]
        assert info.status == "interrupted"
        assert info.content == "tok0 tok1 tok2 "
        assert info.step_content == "tok2 "
        assert info.finished_at is not None
        assert info.reason == INTERRUPTED_REASON
        for reader in (store, peer):
            events = await _collect(reader.follow(lapsed.run_id))
            assert [e.seq for e in events] == [0, 1, 2, 3]
            assert events[-1].event_type is EventType.COMPLETE
            assert events[-1].data["status"] == "interrupted"
            assert events[-1].data["content"] == "tok0 tok1 tok2 "
            assert (await reader.get_run(lapsed.run_id)).status == "interrupted"
            assert await reader.session_run("a") is None
        assert (await store.get_run(alive.run_id)).status == "running"
        assert await store.interrupt_expired(now=later) == []
        # its holder, back too late, has lost it: nothing it writes is taken
        assert await store.renew_leases("holder-a", [lapsed.run_id], LEASE) == set()
        await store.append_events(lapsed.run_id, _events(lapsed, 3, 1))
        final = _final(lapsed)
        assert not await store.finish_run(lapsed.run_id, [_complete(final, 3)], final)
        assert (await peer.get_run(lapsed.run_id)).status == "interrupted"
        await peer.create_run(_info("a", holder="holder-b"), lease_seconds=LEASE)

    async def test_a_follower_sees_the_interruption(self, store: RunStore, peer: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=5)
        await store.append_events(info.run_id, _events(info, 0, 2))
        follower = asyncio.create_task(_collect(peer.follow(info.run_id)))
        await asyncio.sleep(0.01)
        await peer.interrupt_expired(now=time.time() + 60)
        events = await asyncio.wait_for(follower, PATIENCE)
        assert [e.seq for e in events] == [0, 1, 2]
        assert events[-1].data["status"] == "interrupted"

    # -- retention ---------------------------------------------------------------------------

    async def _finished_runs(self, store: RunStore, count: int, size: int) -> list[RunInfo]:
        runs = []
        for n in range(count):
            info = _info(f"p{n}")
            await store.create_run(info, lease_seconds=LEASE)
            await _finish(store, info, size)
            runs.append(await store.get_run(info.run_id))
        return runs

    async def _exists(self, store: RunStore, run_id: str) -> bool:
        try:
            await store.get_run(run_id)
        except NotFoundError:
            return False
        return True

    async def test_purge_by_count_keeps_the_newest(self, store: RunStore, peer: RunStore) -> None:
        runs = await self._finished_runs(store, 5, 2)
        running = _info("busy")
        await store.create_run(running, lease_seconds=LEASE)
        assert await peer.purge(max_count=2) == 3
        kept = [await self._exists(store, info.run_id) for info in runs]
        assert kept == [False, False, False, True, True]
        assert await self._exists(store, running.run_id)
        with pytest.raises(NotFoundError):
            await store.read_events(runs[0].run_id)
        assert await peer.purge(max_count=0) == 2
        assert await self._exists(store, running.run_id)

    async def test_purge_by_age(self, store: RunStore, peer: RunStore) -> None:
        runs = await self._finished_runs(store, 3, 1)
        assert await peer.purge(max_age_seconds=3600) == 0
        assert await peer.purge(max_age_seconds=10, now=time.time() + 3600) == 3
        assert not any([await self._exists(store, info.run_id) for info in runs])

    async def test_purge_by_bytes(self, store: RunStore, peer: RunStore) -> None:
        runs = await self._finished_runs(store, 4, 50)
        sizes = [info.event_bytes for info in runs]
        assert all(size > 50 * 20 for size in sizes)
        budget = sizes[2] + sizes[3]
        assert await peer.purge(max_bytes=budget) == 2
        kept = [await self._exists(store, info.run_id) for info in runs]
        assert kept == [False, False, True, True]
        assert await peer.purge(max_bytes=budget - 1) == 1
        assert await peer.purge(max_bytes=10**12, max_count=10**6, max_age_seconds=10**9) == 0

    async def test_purge_never_takes_a_run_in_progress(self, store: RunStore) -> None:
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await store.append_events(info.run_id, _events(info, 0, 100))
        assert await store.purge(max_age_seconds=0, max_count=0, max_bytes=0) == 0
        assert len(await store.read_events(info.run_id)) == 100

    async def test_initialize_and_close_are_idempotent(self, tmp_path: Path) -> None:
        store = await self.make_store(tmp_path)
        await store.initialize()
        await store.initialize()
        info = _info()
        await store.create_run(info, lease_seconds=LEASE)
        await store.close()
        await store.close()


async def _collect_ids(iterator: AsyncIterator[str]) -> list[str]:
    return [run_id async for run_id in iterator]

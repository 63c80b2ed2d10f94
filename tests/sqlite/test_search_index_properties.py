"""A property of the search index, tested on random sequences (hypothesis, stateful):

whatever appends, clears, truncations, deletes, imports and searches happen, over several
sessions and through two storages on one file, the file stays sound (``PRAGMA
integrity_check``, FTS5's ``integrity-check``, the index holding exactly the messages at or
below its mark) and a search finds exactly the messages that a plain scan of what was written
finds.

A search indexes what waits, so the checks made after every step search through a third,
read-only storage (it leaves the file as it is: the waiting messages are searched in a
temporary index), and searches of the storage that writes are steps of their own. The batch
size is lowered to 3 so that appends and imports also index their batches within a few steps.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from chat_shell import MemoryStorage, Message, NotFoundError, export_sessions
from chat_shell_sqlite import SQLiteStorage, _search_index
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlite_support import assert_search_index_sound, words

T = TypeVar("T")

VOCABULARY = ("amber", "birch", "cedar", "dune")
SESSIONS = ("s1", "s2", "s3", "s4")
SEARCH_ALL = 100_000


class SearchIndexMachine(RuleBasedStateMachine):
    """The model: each session's contents in order (``None`` for a message without content);
    each content ends in a unique tag."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="chat-shell-fts-"))
        self.db = self.folder / "history.db"
        self.loop = asyncio.Runner()
        self.writer = SQLiteStorage(path=self.db)
        self.other = SQLiteStorage(path=self.db)  # a second writer: another process's storage
        self.reader = SQLiteStorage(path=self.db, read_only=True)
        for storage in (self.writer, self.other, self.reader):
            self.run(storage.initialize())
        self.sessions: dict[str, list[str | None]] = {}
        self.tags = 0

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(step)

    def teardown(self) -> None:
        for storage in (self.writer, self.other, self.reader):
            self.run(storage.close())
        self.loop.close()
        shutil.rmtree(self.folder)

    def contents(self, chosen: list[list[str]]) -> list[str]:
        made = []
        for text in chosen:
            self.tags += 1
            made.append(" ".join([*text, f"tag{self.tags}"]))
        return made

    def expected(self, word: str) -> list[str]:
        """The plain scan: every message, in every session, that has the word."""
        return sorted(
            content
            for contents in self.sessions.values()
            for content in contents
            if content is not None and word in words(content)
        )

    @staticmethod
    def found(hits: list[Any]) -> list[str]:
        return sorted(hit.message.content for hit in hits)

    texts = st.lists(st.lists(st.sampled_from(VOCABULARY), max_size=3), min_size=1, max_size=4)

    @rule(session=st.sampled_from(SESSIONS), texts=texts, second_writer=st.booleans())
    def append(self, session: str, texts: list[list[str]], second_writer: bool) -> None:
        contents = self.contents(texts)
        storage = self.other if second_writer else self.writer
        messages = [Message(role="user", content=content) for content in contents]
        self.run(storage.history.append_messages(session, messages))
        self.sessions.setdefault(session, []).extend(contents)

    @rule(session=st.sampled_from(SESSIONS))
    def append_without_content(self, session: str) -> None:
        # a message with no content (an assistant's tool call) is never in the index
        self.run(self.writer.history.append_messages(session, [Message(role="assistant")]))
        self.sessions.setdefault(session, []).append(None)

    @rule(session=st.sampled_from(SESSIONS))
    def clear(self, session: str) -> None:
        self.run(self.writer.history.clear_history(session))
        if session in self.sessions:
            self.sessions[session] = []

    @precondition(lambda self: bool(self.sessions))
    @rule(data=st.data(), second_writer=st.booleans())
    def truncate(self, data: st.DataObject, second_writer: bool) -> None:
        # cutting the newest messages frees their ids for the next inserts, as deletes do
        session = data.draw(st.sampled_from(sorted(self.sessions)))
        keep = data.draw(st.integers(0, len(self.sessions[session])))
        storage = self.other if second_writer else self.writer
        self.run(storage.history.truncate_history(session, keep))
        del self.sessions[session][keep:]

    @rule(session=st.sampled_from(SESSIONS), second_writer=st.booleans())
    def delete(self, session: str, second_writer: bool) -> None:
        storage = self.other if second_writer else self.writer
        if session in self.sessions:
            self.run(storage.history.delete_session(session))
            del self.sessions[session]
        else:
            with pytest.raises(NotFoundError):
                self.run(storage.history.delete_session(session))

    @rule(session=st.sampled_from(SESSIONS), texts=texts)
    def import_session(self, session: str, texts: list[list[str]]) -> None:
        contents = self.contents(texts)

        async def exported() -> list[str]:
            source = MemoryStorage().history
            await source.append_messages(
                session, [Message(role="user", content=content) for content in contents]
            )
            return [line async for line in export_sessions(source)]

        report = self.run(self.writer.import_sessions(self.run(exported())))
        if session in self.sessions:
            assert list(report.skipped) == [session]
        else:
            assert report.imported == [session]
            self.sessions[session] = [*contents]

    @rule(word=st.sampled_from(VOCABULARY), second_writer=st.booleans())
    def search(self, word: str, second_writer: bool) -> None:
        storage = self.other if second_writer else self.writer
        hits = self.run(storage.search(word, limit=SEARCH_ALL))
        assert self.found(hits) == self.expected(word)

    @precondition(lambda self: bool(self.sessions))
    @rule(data=st.data())
    def search_one_session(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(sorted(self.sessions)))
        word = data.draw(st.sampled_from(VOCABULARY))
        hits = self.run(self.writer.search(word, session_id=session, limit=SEARCH_ALL))
        expected = sorted(c for c in self.sessions[session] if c is not None and word in words(c))
        assert self.found(hits) == expected

    @invariant()
    def file_and_index_are_sound(self) -> None:
        assert_search_index_sound(self.db)

    @invariant()
    def search_finds_what_a_scan_finds(self) -> None:
        for word in VOCABULARY:
            hits = self.run(self.reader.search(word, limit=SEARCH_ALL))
            assert self.found(hits) == self.expected(word), word


@pytest.mark.slow
def test_no_sequence_of_writes_puts_the_search_index_out_of_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_search_index, "FTS_BATCH", 3)
    run_state_machine_as_test(
        SearchIndexMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            database=None,  # nothing written into the source tree
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )

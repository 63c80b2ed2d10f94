"""The full-text index of message content: what is in it, what waits for it, checks and repair.

``messages_fts`` is an external-content FTS5 index of ``messages.content``, filled in batches;
``messages_fts_state.indexed_upto`` (the mark) says how far. Everything rests on one rule:

    a message with content is in the index  exactly when  its id <= the mark <= the newest id

The first half says what the index holds. The second half is what keeps the first true: SQLite
gives a new row the newest id + 1, so a message written after the mark is always above it,
waiting, and never counts as indexed. The schema keeps the rule by itself (the delete trigger of
migration 4 lowers the mark whenever a delete leaves it above the newest message), so every
writer of the file keeps it, in whatever order deletes remove rows.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "FTS_BATCH",
    "index_due",
    "index_for_search",
    "index_waiting_apart",
    "problems",
    "rebuild",
    "waiting",
]

# How many messages may wait for the search index before an append indexes them. Indexing one
# message per append costs more than the rest of the append; a batch costs a few microseconds a
# message, and bounds what the next search has to catch up on.
FTS_BATCH = 256

# The tokenizer of messages_fts (migration 2), for the temporary index of a read-only search.
_TOKENIZE = "unicode61 remove_diacritics 2"
_STATE = "SELECT indexed_upto, coalesce((SELECT max(id) FROM messages), 0) FROM messages_fts_state"
_INDEX_RANGE = (
    "INSERT INTO {table} (rowid, content) SELECT id, content FROM messages"
    " WHERE id > ? AND id <= ? AND content IS NOT NULL"
)


def waiting(conn: sqlite3.Connection) -> tuple[int, int]:
    """(the mark, the newest message id): the messages in between wait for the index."""
    mark, newest = conn.execute(_STATE).fetchone()
    return int(mark), int(newest)


def index_for_search(conn: sqlite3.Connection) -> int:
    """Add the messages waiting for the search index to it; returns how many ids it covered.

    Call it inside a write transaction: the mark and the index move together, and no other
    writer can slip a message in between.
    """
    mark, newest = waiting(conn)
    if newest <= mark:
        return 0
    conn.execute(_INDEX_RANGE.format(table="messages_fts"), (mark, newest))
    conn.execute("UPDATE messages_fts_state SET indexed_upto = ?", (newest,))
    return newest - mark


def index_due(conn: sqlite3.Connection) -> None:
    """In a write transaction that added messages: index them once enough are waiting."""
    mark, newest = waiting(conn)
    if newest - mark >= FTS_BATCH:
        index_for_search(conn)


def index_waiting_apart(conn: sqlite3.Connection) -> bool:
    """For a search on a read-only connection, which cannot move the mark: put the waiting
    messages in ``temp.messages_fts_waiting``, a temporary index with the same tokenizer.

    Returns whether any message waits. Call it in the read transaction of the search, so the
    two indexes hold one snapshot of the messages between them, each message in one of them.
    """
    mark, newest = waiting(conn)
    if newest <= mark:
        return False
    conn.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.messages_fts_waiting"
        f" USING fts5 (content, tokenize = '{_TOKENIZE}')"
    )
    conn.execute("DELETE FROM temp.messages_fts_waiting")
    conn.execute(_INDEX_RANGE.format(table="temp.messages_fts_waiting"), (mark, newest))
    return True


def _recorded_rows(conn: sqlite3.Connection) -> int:
    """How many documents FTS5 believes the index holds.

    FTS5 keeps that count in its "averages" record (row 1 of ``messages_fts_data``): a SQLite
    varint, first of the record. Each delete sent for a message that was never indexed lowered
    it; once it reaches zero, the next delete fails with "database disk image is malformed".
    """
    row = conn.execute("SELECT block FROM messages_fts_data WHERE id = 1").fetchone()
    if row is None or not row[0]:
        return 0
    value = 0
    for position, byte in enumerate(bytes(row[0])[:9]):
        if position == 8:  # the ninth byte of a varint gives all 8 of its bits
            value = (value << 8) | byte
            break
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value - (1 << 64) if value >= 1 << 63 else value  # stored as a signed 64-bit count


def problems(conn: sqlite3.Connection, *, structure: bool = False) -> list[str]:
    """What is wrong with the search index bookkeeping (nothing: ``[]``).

    Reads only: the mark against the newest message, which messages the index holds (one
    ``messages_fts_docsize`` row per document) against those it should, and the count FTS5
    keeps against the documents it has. ``structure`` adds FTS5's own ``integrity-check`` of
    the index's structure (it reads the whole index: seconds on a million messages; it is
    written as an INSERT, so a read-only connection skips it).
    """
    found = []
    mark, newest = waiting(conn)
    if mark > newest:
        found.append(f"the index mark ({mark}) is above the newest message ({newest})")
    expected = conn.execute(
        "SELECT count(*) FROM messages WHERE content IS NOT NULL AND id <= ?", (mark,)
    ).fetchone()[0]
    held = conn.execute("SELECT count(*) FROM messages_fts_docsize").fetchone()[0]
    stray = conn.execute(
        "SELECT count(*) FROM messages_fts_docsize AS d WHERE d.id > ? OR NOT EXISTS"
        " (SELECT 1 FROM messages AS m WHERE m.id = d.id AND m.content IS NOT NULL)",
        (mark,),
    ).fetchone()[0]
    missing = expected - (held - stray)  # those it should hold, less those it rightly holds
    if missing:
        found.append(f"{missing} messages count as indexed but are not in the index")
    if stray:
        found.append(f"{stray} index entries belong to no indexed message")
    recorded = _recorded_rows(conn)
    if recorded != held:
        found.append(f"the index counts {recorded} documents but holds {held}")
    if structure:
        try:
            conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            name = getattr(exc, "sqlite_errorname", "") or ""
            if name.startswith("SQLITE_CORRUPT") or "malformed" in str(exc):
                found.append(f"FTS5 integrity-check: {exc}")
            elif not name.startswith("SQLITE_READONLY"):
                raise
    return found


def rebuild(conn: sqlite3.Connection) -> None:
    """Index every message again, from the messages themselves, and set the mark to the newest.

    Inside a write transaction. Nothing of the messages is read from the old index, so a
    damaged one is simply replaced; FTS5's own ``rebuild`` is not used because it would also
    index the messages without content, which the delete trigger never removes.
    """
    conn.execute("INSERT INTO messages_fts (messages_fts) VALUES ('delete-all')")
    conn.execute(
        "INSERT INTO messages_fts (rowid, content)"
        " SELECT id, content FROM messages WHERE content IS NOT NULL"
    )
    conn.execute(
        "UPDATE messages_fts_state SET indexed_upto = (SELECT coalesce(max(id), 0) FROM messages)"
    )

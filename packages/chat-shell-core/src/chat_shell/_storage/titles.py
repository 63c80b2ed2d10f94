"""Session titles: a session without one is titled after the first question asked in it.

The agent applies it to every run that stores a session's first messages, so a session gets the
same title whichever mode started it (library, HTTP, CLI). A title set by hand is never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._messages import Message, SessionInfo

if TYPE_CHECKING:
    from .contract import HistoryStorage

__all__ = ["TITLE_LENGTH", "session_title", "title_untitled"]

TITLE_LENGTH = 60


def session_title(text: str) -> str:
    """The title made of a message: its first line that is not blank, cut to 60 characters
    (the last one ``…`` when cut); ``""`` for a blank message."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1] + "…"


async def title_untitled(
    history: HistoryStorage, session_id: str, messages: Sequence[Message]
) -> SessionInfo | None:
    """Give the session the title of the first user message of ``messages`` if it has no title
    yet; the updated info, or ``None`` when nothing changed."""
    title = next(
        (
            session_title(m.content)
            for m in messages
            if m.role == "user" and m.content and m.content.strip()
        ),
        None,
    )
    if title is None:
        return None
    info = await history.get_session(session_id)
    if info.title is not None:
        return None
    return await history.update_session(session_id, title=title)

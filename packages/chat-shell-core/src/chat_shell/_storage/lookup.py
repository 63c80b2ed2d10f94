"""Finding sessions and messages with nothing but the contract's own methods: a session by a
prefix of its id, and messages by their words. They are the defaults of
``HistoryStorage.find_session`` and ``HistoryStorage.search``; a backend with an index of its
own overrides them."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from .._errors import AmbiguousSessionError, NotFoundError, UserError
from .._messages import SessionInfo, validate_session_id

if TYPE_CHECKING:
    from .contract import HistoryStorage, SearchHit

__all__ = ["find_by_prefix", "fold", "match_words", "scan_for_words", "search_words"]

_PAGE = 200
_SHOWN_MATCHES = 5
_WORD = re.compile(r"[^\W_]+")  # letters and digits, as SQLite's unicode61 tokenizer splits
_SNIPPET_BEFORE = 40
_SNIPPET_LENGTH = 120


async def find_by_prefix(history: HistoryStorage, id_or_prefix: str) -> SessionInfo:
    """``HistoryStorage.find_session`` over ``get_session`` and ``list_sessions``."""
    validate_session_id(id_or_prefix)
    try:
        return await history.get_session(id_or_prefix)
    except NotFoundError:
        pass
    matches: list[SessionInfo] = []
    offset = 0
    while True:
        page = await history.list_sessions(limit=_PAGE, offset=offset)
        matches += [info for info in page if info.id.startswith(id_or_prefix)]
        if len(page) < _PAGE or len(matches) > _SHOWN_MATCHES:
            break
        offset += _PAGE
    return _one_match(id_or_prefix, matches)


def _one_match(id_or_prefix: str, matches: list[SessionInfo]) -> SessionInfo:
    """The one session of ``matches`` (those whose id starts with ``id_or_prefix``), else
    the typed error: ``NotFoundError`` for none, ``AmbiguousSessionError`` for several."""
    if not matches:
        raise NotFoundError(f"no session {id_or_prefix!r}, nor one whose id starts with it")
    if len(matches) > 1:
        shown = sorted(info.id for info in matches)[:_SHOWN_MATCHES]
        more = ", …" if len(matches) > _SHOWN_MATCHES else ""
        raise AmbiguousSessionError(
            f"session id {id_or_prefix!r} is ambiguous: {', '.join(shown)}{more} start with it;"
            " give more of the id",
            shown,
        )
    return matches[0]


def fold(text: str) -> str:
    """Lower case without accents: ``Café`` → ``cafe``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_words(text: str) -> list[str]:
    """The words a search looks for (folded); ``UserError`` if there are none."""
    words = _WORD.findall(fold(text))
    if not words:
        raise UserError("search text has no words to look for")
    return words


def match_words(content: str, words: list[str]) -> str | None:
    """A snippet of ``content`` with each of ``words`` between ``**`` if it holds them all as
    whole words, else ``None``."""
    folded = fold(content)
    found = {match.group() for match in _WORD.finditer(folded)}
    if not all(word in found for word in words):
        return None
    wanted = set(words)
    # Folding can change the length of a text; mark the words in the original only when it
    # did not, else in the folded text (the words still read the same).
    source = content if len(folded) == len(content) else folded
    spans = [m.span() for m in _WORD.finditer(folded) if m.group() in wanted]
    first = spans[0][0]
    start = max(first - _SNIPPET_BEFORE, 0)
    end = min(start + _SNIPPET_LENGTH, len(source))
    parts, position = [], start
    for left, right in spans:
        if left < start or right > end:
            continue
        parts += [source[position:left], "**", source[left:right], "**"]
        position = right
    parts.append(source[position:end])
    return ("…" if start else "") + "".join(parts) + ("…" if end < len(source) else "")


async def scan_for_words(
    history: HistoryStorage,
    text: str,
    *,
    limit: int,
    owner: str | None,
    session_id: str | None,
) -> list[SearchHit]:
    """``HistoryStorage.search`` by reading sessions, most recently updated first."""
    from .contract import SearchHit

    words = search_words(text)
    if limit < 0:
        raise UserError(f"limit must be 0 or more (got {limit})")
    hits: list[SearchHit] = []
    if session_id is not None:
        validate_session_id(session_id)
    if limit == 0:
        return hits

    async def scan(info_id: str) -> bool:
        for message in await history.get_history(info_id):
            snippet = match_words(message.content or "", words)
            if snippet is not None:
                hits.append(SearchHit(session_id=info_id, message=message, snippet=snippet))
                if len(hits) >= limit:
                    return True
        return False

    if session_id is not None:
        try:
            info = await history.get_session(session_id)
        except NotFoundError:
            return hits
        if owner is None or info.owner == owner:
            await scan(session_id)
        return hits
    offset = 0
    while True:
        page = await history.list_sessions(limit=_PAGE, offset=offset, owner=owner)
        for info in page:
            if await scan(info.id):
                return hits
        if len(page) < _PAGE:
            return hits
        offset += _PAGE

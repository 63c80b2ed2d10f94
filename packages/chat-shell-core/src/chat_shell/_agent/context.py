"""Keeping a model request within the model's context window.

The stored history is never changed here: this module only chooses which of its messages a
request carries. What always goes: the system prompt and the turn's extra context (pinned), the
history's leading system messages, and the newest user message with everything after it. What
goes first when the rest does not fit: the oldest whole turns (a user message and everything up
to the next one), so a tool call is never sent without its result; then, if the newest turn
alone is too long, its oldest tool rounds (an assistant message with the results of its calls).

With ``context = "summarize"`` the oldest turns are replaced by a summary the model writes; it is
stored as a system message marked ``metadata["context_summary"]`` (the number of stored
messages it stands for, from the start of the session), and later turns send it instead of those
messages.

Token counts are estimates (``estimate_tokens``): well under a nanosecond per character,
within about ±10 % of OpenAI's and Claude's tokenizers for English, code and JSON, and
over-counting most other scripts (docs/benchmarks.md). ``SAFETY_MARGIN`` of the window is left
unused for their error.
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._messages import Message
from .._models.model_table import model_facts

__all__ = [
    "SUMMARY_KEY",
    "Budget",
    "ContextMode",
    "Fitted",
    "RequestContext",
    "budget_for",
    "estimate_tokens",
    "summary_message",
    "summary_request",
]

ContextMode = Literal["drop", "summarize", "off"]

SUMMARY_KEY = "context_summary"
SUMMARY_HEADING = "Summary of the earlier conversation:"
# Room for the answer when neither the request nor the config says max_tokens.
DEFAULT_ANSWER_TOKENS = 4096
SAFETY_MARGIN = 0.10
# Per message: the role and the chat template's separators (OpenAI counts 3-4).
MESSAGE_OVERHEAD = 4
# Longest summary asked for, in tokens.
SUMMARY_TOKENS = 1024

_WORDY = (string.ascii_letters + " \t\n").encode()


def estimate_tokens(text: str) -> int:
    """A fast, slightly generous estimate of the tokens ``text`` takes.

    ASCII text: a letter or a blank is a quarter of a token, a digit or a punctuation mark
    (which tokenizers mostly keep apart) 1/1.6. Other text: a character is a quarter of a
    token, each byte of UTF-8 beyond the first half a token more (Cyrillic ~0.75, CJK ~1.25).
    """
    if not text:
        return 0
    chars = len(text)
    if text.isascii():
        other = len(text.encode().translate(None, _WORDY))
        return int((chars - other) / 4 + other / 1.6) + 1
    extra = len(text.encode()) - chars
    return int(chars / 4 + extra / 2) + 1


def _message_tokens(message: dict[str, Any]) -> int:
    tokens = MESSAGE_OVERHEAD + estimate_tokens(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        tokens += 3 + estimate_tokens(function.get("name") or "")
        tokens += estimate_tokens(function.get("arguments") or "")
    if message.get("name"):
        tokens += 1 + estimate_tokens(message["name"])
    return tokens


@dataclass(frozen=True, slots=True)
class Budget:
    """A model's context window, and how much of it a request's input may take."""

    window: int
    answer: int  # room left for the answer

    @property
    def input_tokens(self) -> int:
        usable = int(self.window * (1 - SAFETY_MARGIN)) - self.answer
        return max(usable, self.window // 4)


def budget_for(name: str, context_window: int | None, max_tokens: int | None) -> Budget | None:
    """The budget of the model ``name`` (``provider/model``): its context window from config
    (``context_window``), else from the model table; ``None`` when neither knows it."""
    facts = model_facts(name)
    window = context_window or (facts.max_input_tokens if facts is not None else None)
    if window is None:
        return None
    answer = max_tokens
    if answer is None:
        known = facts.max_output_tokens if facts is not None else None
        answer = min(DEFAULT_ANSWER_TOKENS, known or DEFAULT_ANSWER_TOKENS, window // 4)
    return Budget(window=window, answer=min(answer, window // 2))


@dataclass(slots=True)
class Fitted:
    """The messages of one request, and what was left out."""

    messages: list[dict[str, Any]]
    tokens: int  # the estimate for what is sent, tool schemas included
    dropped: int = 0  # stored (or context) messages not sent
    summarized: int = 0  # of the history, messages a summary stands for
    old_turns: list[Message] = field(default_factory=list)  # whole turns left out, oldest first


def _turn_starts(messages: Sequence[Message]) -> list[int]:
    """Where each turn starts: 0 and every user message."""
    starts = [0]
    starts += [i for i, message in enumerate(messages) if message.role == "user" and i]
    return starts


def _rounds(messages: Sequence[Message]) -> list[int]:
    """Where each piece of a turn starts: its first message, then every assistant message."""
    starts = [0]
    starts += [i for i, message in enumerate(messages) if message.role == "assistant" and i]
    return starts


class RequestContext:
    """The conversation of a run, and the messages each of its model requests carries.

    ``history`` is the session's stored history when the run started, ``new`` the turn's new
    messages; ``append`` adds what the run says (assistant answers, tool results) in the order
    they are stored.
    """

    def __init__(
        self,
        history: Sequence[Message],
        new: Sequence[Message],
        *,
        system_prompt: str | None = None,
        extra: Sequence[Message] = (),
        mode: ContextMode = "drop",
    ) -> None:
        self.mode: ContextMode = mode
        self.pinned: list[Message] = []
        if system_prompt:
            self.pinned.append(Message(role="system", content=system_prompt))
        self.pinned += extra
        # Stored messages, as stored (summaries included): positions are what summaries name.
        self.stored: list[Message] = [*history, *new]
        self._sizes: dict[int, int] = {}
        self._dicts: dict[int, dict[str, Any]] = {}

    def append(self, messages: Sequence[Message]) -> None:
        self.stored.extend(messages)

    # -- what is sent -------------------------------------------------------------------------

    def _dict(self, message: Message) -> dict[str, Any]:
        key = id(message)
        made = self._dicts.get(key)
        if made is None:
            made = self._dicts[key] = message.to_model_dict()
            self._sizes[key] = _message_tokens(made)
        return made

    def _size(self, message: Message) -> int:
        key = id(message)
        if key not in self._sizes:
            self._dict(message)
        return self._sizes[key]

    def _parts(self) -> tuple[list[Message], Message | None, int, list[Message]]:
        """(leading system messages, latest summary, messages it stands for, the rest)."""
        stored = self.stored
        lead = 0
        while (
            lead < len(stored)
            and stored[lead].role == "system"
            and SUMMARY_KEY not in stored[lead].metadata
        ):
            lead += 1
        summary: Message | None = None
        covers = lead
        for message in reversed(stored):
            value = message.metadata.get(SUMMARY_KEY)
            if isinstance(value, int) and not isinstance(value, bool) and lead <= value:
                summary, covers = message, min(value, len(stored))
                break
        rest = [m for m in stored[covers:] if SUMMARY_KEY not in m.metadata]
        if summary is None:
            rest = [m for m in stored[lead:] if SUMMARY_KEY not in m.metadata]
        summarized = (
            covers - lead - sum(1 for m in stored[lead:covers] if SUMMARY_KEY in m.metadata)
        )
        return stored[:lead], summary, summarized, rest

    def all_messages(self) -> list[Message]:
        """Everything the conversation holds, as a request without a window would carry it."""
        lead, summary, _, rest = self._parts()
        return [*self.pinned, *lead, *([summary] if summary else []), *rest]

    def fit(
        self,
        budget: Budget | None,
        tools: list[dict[str, Any]] | None = None,
        *,
        fill: float = 1.0,
    ) -> Fitted:
        """The messages of a request within ``budget`` (everything when ``None`` or mode off).

        ``fill`` < 1 leaves more out than needed, down to that share of the budget (a summary
        made that way leaves room for the turns after it)."""
        lead, summary, summarized, rest = self._parts()
        head = [*self.pinned, *lead, *([summary] if summary else [])]
        fixed = sum(self._size(m) for m in head)
        if tools:
            fixed += estimate_tokens(json.dumps(tools))
        sizes = [self._size(m) for m in rest]
        total = fixed + sum(sizes)
        if budget is None or self.mode == "off" or total <= budget.input_tokens:
            messages = [self._dict(m) for m in (*head, *rest)]
            return Fitted(messages, total, summarized=summarized)
        limit = int(budget.input_tokens * fill)
        starts = _turn_starts(rest)
        first = 0  # index into rest of the first message sent
        for start in starts[1:]:
            if total <= limit:
                break
            total -= sum(sizes[first:start])
            first = start
        old_turns = rest[:first]
        tail = rest[first:]
        tail_sizes = sizes[first:]
        skipped: set[int] = set()
        if total > limit:
            # The newest turn alone is too long: its oldest rounds go, never its user message
            # (the turn's first message) nor its latest round.
            pieces = _rounds(tail)
            for begin, end in itertools.pairwise(pieces[1:]):
                if total <= limit:
                    break
                total -= sum(tail_sizes[begin:end])
                skipped.update(range(begin, end))
        sent = [m for i, m in enumerate(tail) if i not in skipped]
        messages = [self._dict(m) for m in (*head, *sent)]
        return Fitted(
            messages,
            total,
            dropped=len(old_turns) + len(skipped) + summarized,
            summarized=summarized,
            old_turns=old_turns,
        )

    def summary_covers(self, old_turns: Sequence[Message]) -> int:
        """The stored position up to which a summary of ``old_turns`` (and of the summary
        before it) stands for the history."""
        last = old_turns[-1]
        for index, message in enumerate(self.stored):
            if message is last:
                return index + 1
        raise ValueError("the turns are not in the stored history")

    def previous_summary(self) -> str | None:
        """The text of the summary the conversation carries, if any."""
        summary = self._parts()[1]
        if summary is None:
            return None
        return (summary.content or "").removeprefix(SUMMARY_HEADING).strip()


def summary_message(text: str, covers: int, metadata: dict[str, Any]) -> Message:
    """The stored form of a summary standing for the first ``covers`` stored messages."""
    return Message(
        role="system",
        content=f"{SUMMARY_HEADING}\n\n{text}",
        metadata={SUMMARY_KEY: covers, **metadata},
    )


_SUMMARY_INSTRUCTIONS = (
    "You condense conversations. Summarize the conversation below for the assistant who will "
    "continue it: the user's goals and preferences, facts and decisions established, names, "
    "numbers, file names and code that matter, questions still open, and what tools returned "
    "that is still needed. Write plain, dense prose or short bullet points, in the language "
    "of the conversation, at most {words} words. Do not address the user; do not add anything "
    "that was not said."
)


def _transcript_line(message: Message) -> str:
    text = message.content or ""
    if message.role == "assistant" and message.tool_calls:
        calls = "; ".join(f"{c.name}({json.dumps(c.arguments)})" for c in message.tool_calls)
        text = f"{text}\n[called {calls}]".strip()
    if message.role == "tool":
        return f"[tool {message.name or ''} returned]: {text}"
    return f"{message.role}: {text}"


def summary_request(
    previous: str | None, turns: Sequence[Message], budget: Budget | None
) -> tuple[list[dict[str, Any]], int, int]:
    """A request asking a model to summarize ``previous`` (an earlier summary's text) and the
    oldest of ``turns`` that fit the budget: ``(messages, answer token limit, how many of
    turns it holds)``. A single message longer than the budget is cut to its end."""
    limit = SUMMARY_TOKENS if budget is None else min(SUMMARY_TOKENS, budget.input_tokens // 4)
    instructions = _SUMMARY_INSTRUCTIONS.format(words=limit * 2 // 3)
    lines = [f"[summary of the conversation before]: {previous}"] if previous else []
    room = None
    if budget is not None:
        room = budget.input_tokens - limit - estimate_tokens(instructions) - 3 * MESSAGE_OVERHEAD
    used = 0
    size = sum(estimate_tokens(line) + 1 for line in lines)
    for message in turns:
        line = _transcript_line(message)
        tokens = estimate_tokens(line) + 1
        if room is not None and size + tokens > room:
            if used == 0:  # the first one alone is too long: its end
                lines.append(line[-max(room - size, 1) * 2 :])
                used = 1
            break
        lines.append(line)
        size += tokens
        used += 1
    transcript = "\n\n".join(lines)
    messages = [
        {"role": "system", "content": instructions},
        {"role": "user", "content": f"<conversation>\n{transcript}\n</conversation>"},
    ]
    return messages, limit, used

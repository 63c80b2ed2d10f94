"""The SSE grammar (WHATWG), fed the way a network delivers it: in pieces cut anywhere."""

from __future__ import annotations

import time

import pytest
from chat_shell._models.sse import LineSplitter, SSEError, SSEParser

Events = list[tuple[bytes, bytes]]


def parse(stream: bytes, cuts: list[int] | None = None) -> Events:
    """The events of ``stream`` fed in pieces cut at ``cuts`` (offsets), then ended."""
    parser = SSEParser()
    events: Events = []
    start = 0
    for cut in [*(cuts or []), len(stream)]:
        events += parser.feed(stream[start:cut])
        start = cut
    return events + parser.end()


STREAM = (
    b"\xef\xbb\xbf: a comment, then a named event and one whose data spans three lines\n"
    b"event: status\n"
    b'data: {"a": 1}\n'
    b"id: 7\n"
    b"retry: 1000\n"
    b"\n"
    b"data: first\n"
    b"data:second\n"
    b"data\n"
    b"\n"
    b"data: [DONE]\n"
    b"\n"
)
EVENTS = [(b"status", b'{"a": 1}'), (b"message", b"first\nsecond\n"), (b"message", b"[DONE]")]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_every_line_end_and_field(line_end: bytes) -> None:
    stream = STREAM.replace(b"\n", line_end)
    assert parse(stream) == EVENTS


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_the_same_events_wherever_the_stream_is_cut(line_end: bytes) -> None:
    stream = STREAM.replace(b"\n", line_end)
    for cut in range(len(stream) + 1):  # one cut anywhere, a CRLF's halves apart included
        assert parse(stream, [cut]) == EVENTS, cut
    assert parse(stream, list(range(1, len(stream)))) == EVENTS  # byte by byte


def test_a_lone_cr_then_lf_in_the_next_piece_is_one_line_end() -> None:
    assert parse(b"data: a\r\n\r\ndata: b\r\n\r\n", [8, 9, 10]) == [
        (b"message", b"a"),
        (b"message", b"b"),
    ]


def test_one_space_after_the_colon_is_dropped_and_no_more() -> None:
    assert parse(b"data:  two spaces\n\ndata:none\n\n") == [
        (b"message", b" two spaces"),
        (b"message", b"none"),
    ]


def test_an_event_with_no_data_is_not_dispatched_and_its_type_is_reset() -> None:
    assert parse(b"event: ping\n\ndata: x\n\n") == [(b"message", b"x")]


def test_the_last_event_without_a_blank_line_is_given_at_the_end() -> None:
    assert parse(b"data: a\n\ndata: last") == [(b"message", b"a"), (b"message", b"last")]


def test_a_line_over_the_limit_is_an_error_even_if_it_never_ends() -> None:
    parser = SSEParser(max_size=1000)
    for _ in range(9):
        parser.feed(b"data: " + b"x" * 100)
    with pytest.raises(SSEError, match="longer than 1000 bytes"):
        parser.feed(b"data: " + b"x" * 100)


def test_an_event_over_the_limit_is_an_error() -> None:
    parser = SSEParser(max_size=1000)
    with pytest.raises(SSEError, match="event longer than 1000 bytes"):
        parser.feed(b"data: " + b"x" * 600 + b"\ndata: " + b"y" * 600 + b"\n")


def test_lines_for_ndjson() -> None:
    splitter = LineSplitter()
    assert splitter.lines(b'{"a": 1}\r\n{"b"') == [b'{"a": 1}']
    assert splitter.lines(b": 2}\n\n") == [b'{"b": 2}', b""]
    assert splitter.lines(b'{"c": 3}') == []
    assert splitter.end() == [b'{"c": 3}']


def _feed_time(pieces: list[bytes]) -> float:
    parser = SSEParser()
    start = time.perf_counter()
    for piece in pieces:
        parser.feed(piece)
    parser.end()
    return time.perf_counter() - start


def test_the_cost_of_a_long_line_is_linear_in_its_length() -> None:
    """8 MB in one line, delivered in 4 KiB reads, against the same bytes as short events:
    joining the pieces once keeps both linear (joining at every read was quadratic: ~1,000×
    the baseline)."""
    size, read = 8 << 20, 4096
    line = b"data: " + b"x" * size + b"\n\n"
    long_line = [line[i : i + read] for i in range(0, len(line), read)]
    events = (b"data: " + b"x" * 100 + b"\n\n") * (len(line) // 108)
    short_lines = [events[i : i + read] for i in range(0, len(events), read)]
    baseline = min(_feed_time(short_lines) for _ in range(3))
    measured = min(_feed_time(long_line) for _ in range(3))
    assert measured < max(baseline, 0.01) * 10, (measured, baseline)

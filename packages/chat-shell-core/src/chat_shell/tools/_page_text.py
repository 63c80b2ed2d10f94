"""The readable text of a fetched page: charset decoding and HTML-to-text.

This is CPU work on input a hostile site chooses, so ``fetch_url`` runs it in a worker process
(this file run as a script, see ``main``) that is killed when the tool's time is up; the event
loop only moves bytes through pipes. What runs here is linear in its input:

- the HTML parser is libxml2's (lxml), driven as a stream of start/end/data callbacks, so no
  tree is built; the standard library's ``html.parser`` is quadratic on ``"<a" * n`` and
  ``"<!--" * n``, and lexbor (selectolax) on deeply nested ``<div>`` (docs/tools.md has the
  measurements);
- charsets come from an allow-list of the WHATWG encodings browsers know, each decoded by one
  of CPython's C codecs; any other label (``punycode``, whose decoder is quadratic, ``utf-7``,
  ``idna`` …) is decoded as UTF-8 and said so.

The module imports only the standard library (lxml when first parsing), so the worker starts
fast and needs nothing of chat-shell.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Literal, TypedDict

__all__ = [
    "PageKind",
    "PageText",
    "charset_codec",
    "decode",
    "html_to_text",
    "main",
    "page_text",
]

PageKind = Literal["html", "text", "sniff"]
"""``html`` parses, ``text`` keeps the text as it is, ``sniff`` parses if it looks like HTML."""


class PageText(TypedDict):
    text: str
    more: bool  # the text was cut
    note: str | None  # e.g. that the charset was not honoured


# WHATWG Encoding Standard labels (squashed: lowercase letters and digits only) -> the CPython
# codec that decodes them as browsers do (latin-1 and ascii mean windows-1252, gbk means
# gb18030, euc-kr means windows-949 …).
_LABELS: dict[str, str] = {
    **dict.fromkeys(["utf8", "unicode11utf8", "unicode20utf8", "xunicode20utf8"], "utf-8"),
    **dict.fromkeys(
        ["utf16le", "utf16", "csunicode", "iso10646ucs2", "ucs2", "unicode", "unicodefeff"],
        "utf-16-le",
    ),
    **dict.fromkeys(["utf16be", "unicodefffe"], "utf-16-be"),
    **dict.fromkeys(["866", "cp866", "csibm866", "ibm866"], "cp866"),
    **dict.fromkeys(
        [
            "ascii",
            "usascii",
            "ansix341968",
            "iso88591",
            "latin1",
            "l1",
            "cp819",
            "ibm819",
            "csisolatin1",
            "isoir100",
            "cp1252",
            "windows1252",
            "xcp1252",
        ],
        "cp1252",
    ),
    **{f"iso8859{n}": f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)},
    **{f"iso8859{n}i": f"iso8859-{n}" for n in (6, 8)},
    **{f"latin{n}": f"iso8859-{m}" for n, m in ((2, 2), (3, 3), (4, 4), (6, 10), (9, 15))},
    **{f"cp125{n}": f"cp125{n}" for n in range(9) if n != 2},
    **{f"windows125{n}": f"cp125{n}" for n in range(9) if n != 2},
    **{f"xcp125{n}": f"cp125{n}" for n in range(9) if n != 2},
    **dict.fromkeys(["cyrillic", "csisolatincyrillic"], "iso8859-5"),
    **dict.fromkeys(["greek", "greek8", "elot928", "ecma118"], "iso8859-7"),
    **dict.fromkeys(["hebrew", "visual", "logical"], "iso8859-8"),
    **dict.fromkeys(["arabic", "asmo708", "ecma114"], "iso8859-6"),
    **dict.fromkeys(["koi8r", "koi8", "koi", "cskoi8r"], "koi8-r"),
    **dict.fromkeys(["koi8u", "koi8ru"], "koi8-u"),
    **dict.fromkeys(["macintosh", "mac", "xmacroman", "csmacintosh"], "mac-roman"),
    **dict.fromkeys(["xmaccyrillic", "xmacukrainian"], "mac-cyrillic"),
    **dict.fromkeys(["windows874", "dos874", "iso885911", "tis620"], "cp874"),
    **dict.fromkeys(
        ["gbk", "gb2312", "gb231280", "chinese", "csgb2312", "xgbk", "isoir58", "gb18030"],
        "gb18030",
    ),
    **dict.fromkeys(["big5", "big5hkscs", "cnbig5", "csbig5", "xxbig5"], "big5hkscs"),
    **dict.fromkeys(["eucjp", "xeucjp", "cseucpkdfmtjapanese"], "euc-jp"),
    **dict.fromkeys(["iso2022jp", "csiso2022jp"], "iso2022-jp"),
    **dict.fromkeys(
        ["shiftjis", "sjis", "xsjis", "mskanji", "windows31j", "csshiftjis", "ms932"], "cp932"
    ),
    **dict.fromkeys(
        [
            "euckr",
            "cseuckr",
            "korean",
            "ksc5601",
            "ksc56011987",
            "ksc56011989",
            "isoir149",
            "csksc56011987",
            "windows949",
        ],
        "cp949",
    ),
}
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def charset_codec(label: str | None) -> str | None:
    """The codec for a ``charset`` label, or ``None`` if it is not one of the allowed ones.

    The label is looked up in the table above only, never in Python's codec registry, so a
    page cannot pick one of the slow or odd codecs Python also has.
    """
    if label is None:
        return None
    return _LABELS.get(re.sub(r"[^a-z0-9]", "", label.lower()[:64]))


def decode(body: bytes, charset: str | None) -> tuple[str, str | None]:
    """The text of ``body`` and, when its charset was not honoured, a note saying so.

    A byte-order mark wins over the declared charset, as in browsers; no charset means UTF-8.
    """
    for bom, bom_codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(bom_codec, errors="replace"), None
    if not charset:
        return body.decode("utf-8", errors="replace"), None
    codec = charset_codec(charset)
    if codec is None:
        note = f"[the charset {charset[:40]!r} is not supported; the text was decoded as UTF-8]"
        return body.decode("utf-8", errors="replace"), note
    return body.decode(codec, errors="replace"), None


_SKIP = {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "head"}
_BLOCK = {
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tr",
    "ul",
}
_BREAK_BEFORE_ONLY = {"br", "hr", "li"}  # one line break is enough (list items: no blank lines)


class _TextTarget:
    """lxml parser target collecting the title and the visible text, blocks on their own lines."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.title: list[str] = []
        self.skipping = 0
        self.in_title = False

    def start(self, tag: str, attrib: Any) -> None:
        if tag == "title":
            self.in_title = True
        elif tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n- " if tag == "li" else "\n")

    def end(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK and tag not in _BREAK_BEFORE_ONLY:
            self.parts.append("\n")

    def data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.skipping:
            self.parts.append(data)

    def close(self) -> None:
        return None


def html_to_text(html: str) -> str:
    """The readable text of an HTML page: scripts, styles and markup dropped, blocks on lines."""
    from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type hints

    target = _TextTarget()
    parser = etree.HTMLParser(target=target, no_network=True)
    try:
        parser.feed(html)
        parser.close()
    except etree.LxmlError:
        pass  # libxml2 recovers from almost anything; keep what was read
    lines = [" ".join(line.split()) for line in "".join(target.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(target.title).split())
    return f"# {title}\n\n{text}" if title else text


def page_text(body: bytes, *, charset: str | None, kind: PageKind, max_chars: int) -> PageText:
    """The page's text, cut at ``max_chars``, and the charset note, if any."""
    text, note = decode(body, charset)
    if kind == "html" or (kind == "sniff" and "<html" in text[:1000].lower()):
        text = html_to_text(text)
    return {"text": text[:max_chars], "more": len(text) > max_chars, "note": note}


def main() -> None:
    """The worker: stdin is one JSON line (``page_text``'s keyword arguments), then the body;
    stdout is ``page_text``'s answer as JSON."""
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the server that started it keeps the CPU first
    stdin = sys.stdin.buffer
    options = json.loads(stdin.readline())
    answer = page_text(stdin.read(), **options)
    sys.stdout.buffer.write(json.dumps(answer).encode("ascii"))


if __name__ == "__main__":
    main()

"""``read_file`` and ``list_files``: reading inside one configured folder, and nowhere else.

Paths from the model are relative to the root. They are never handed to ``open()`` whole:
each component is opened relative to the directory before it (``dir_fd``) with
``O_NOFOLLOW``, so a symlink swapped in while a call runs cannot redirect it. Symlinks are
followed by hand, and only while they stay inside the root; ``..`` and absolute paths from the
model are refused outright. Only regular files are read (never devices, FIFOs or sockets) and
only up to a size cap; binary files are reported, not dumped.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ToolError, UserError
from .._tools import Tool

if TYPE_CHECKING:
    from .._config import Settings

__all__ = ["FileRoot", "list_files_tool", "make_file_tools", "read_file_tool"]

MAX_PATH_CHARS = 1_024
MAX_SYMLINK_HOPS = 40
MAX_ENTRIES = 500
_BINARY_SNIFF = 8_192

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_SAFE_OPEN = os.open in os.supports_dir_fd and _O_NOFOLLOW != 0 and _O_DIRECTORY != 0

# Tests replace these to swap things in the middle of a call.
_open = os.open
_stat = os.stat


class _Escape(ToolError):
    pass


def _split(path: str) -> list[str]:
    """The model's path as components; refuses what could point outside the root by itself."""
    if not isinstance(path, str):
        raise ToolError("the path must be a string")
    if len(path) > MAX_PATH_CHARS:
        raise ToolError(f"the path is too long (limit {MAX_PATH_CHARS} characters)")
    if "\x00" in path:
        raise _Escape("the path contains a NUL character")
    try:
        os.fsencode(path)
    except UnicodeEncodeError:
        raise ToolError("the path is not valid text (it has an unpaired surrogate)") from None
    text = path.strip()
    normalised = text.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise _Escape(
            f"absolute paths are not allowed ({path!r}); give a path relative to the root"
        )
    parts = [part for part in normalised.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _Escape(f"'..' is not allowed in paths ({path!r})")
    if text.startswith("~"):
        raise _Escape(f"'~' paths are not allowed ({path!r}); give a path relative to the root")
    return parts


@dataclass(frozen=True)
class FileRoot:
    """The folder the file tools may read, with their limits."""

    path: Path
    max_read_bytes: int = 65_536
    max_entries: int = MAX_ENTRIES

    @classmethod
    def create(cls, root: str | os.PathLike[str], **limits: Any) -> FileRoot:
        real = Path(os.path.realpath(os.path.expanduser(os.fspath(root))))
        if not real.is_dir():
            raise UserError(f"file_root {os.fspath(root)!r} is not an existing folder")
        return cls(real, **limits)

    # -- resolution ------------------------------------------------------------------------

    def _open(self, path: str, *, directory: bool) -> tuple[int, str]:
        """An open descriptor of ``path`` inside the root, and its path relative to the root."""
        parts = _split(path)
        try:
            if not _SAFE_OPEN:  # pragma: no cover - platforms without dir_fd/O_NOFOLLOW (Windows)
                return self._open_checked(parts, directory=directory)
            return self._walk(path, parts, directory=directory)
        except OSError as exc:  # what the walk did not expect: a clear error, not a traceback
            raise ToolError(f"cannot open {path!r}: {_reason(exc)}") from None

    def _walk(self, path: str, parts: list[str], *, directory: bool) -> tuple[int, str]:
        """``_open`` by ``openat``, one component at a time from the root."""
        pending = deque(parts)
        walked: list[str] = []
        fds = [_open(str(self.path), os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)]
        hops = 0
        try:
            while pending:
                name = pending.popleft()
                if name in ("", "."):
                    continue
                if name == "..":  # only from a symlink's target, resolved against real folders
                    if not walked:
                        raise _Escape(f"{path!r} leads outside the root (through a symlink)")
                    walked.pop()
                    os.close(fds.pop())
                    continue
                last = not pending
                try:
                    info = _stat(name, dir_fd=fds[-1], follow_symlinks=False)
                except FileNotFoundError:
                    raise ToolError(f"{path!r} does not exist") from None
                except NotADirectoryError:
                    raise ToolError(f"{'/'.join(walked)!r} is not a folder") from None
                if stat.S_ISLNK(info.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise ToolError(f"{path!r}: too many levels of symbolic links")
                    target = os.readlink(name, dir_fd=fds[-1])
                    if os.path.isabs(target):
                        relative = self._inside(target, path)
                        for fd in fds[1:]:
                            os.close(fd)
                        del fds[1:]
                        walked.clear()
                        target = relative
                    pending.extendleft(reversed(target.replace("\\", "/").split("/")))
                    continue
                want_dir = directory or not last
                if want_dir and not stat.S_ISDIR(info.st_mode):
                    shown = "/".join([*walked, name])
                    raise ToolError(f"{shown!r} is not a folder")
                if not want_dir and not stat.S_ISREG(info.st_mode):
                    raise ToolError(f"{path!r} is not a regular file ({_kind(info.st_mode)})")
                flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK | _O_NOCTTY
                if want_dir:
                    flags |= _O_DIRECTORY
                try:
                    fd = _open(name, flags, dir_fd=fds[-1])
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        raise ToolError(f"{path!r} changed while it was being opened") from None
                    raise ToolError(f"cannot open {path!r}: {_reason(exc)}") from None
                fds.append(fd)
                walked.append(name)
            if not walked and not directory:
                raise ToolError("give the path of a file, not the root folder")
            final = fds.pop()
            # What was opened must still be what was checked (a swap between stat and open).
            info = os.fstat(final)
            ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
            if not ok:
                os.close(final)
                raise ToolError(f"{path!r} changed while it was being opened")
            return final, "/".join(walked) or "."
        finally:
            for fd in fds:
                os.close(fd)

    def _inside(self, target: str, path: str) -> str:
        """An absolute symlink target as a path relative to the root, if it is inside."""
        real = os.path.normpath(target)
        root = str(self.path)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise _Escape(f"{path!r} leads outside the root (through a symlink)")
        return os.path.relpath(real, root)

    def _open_checked(  # pragma: no cover
        self, parts: list[str], *, directory: bool
    ) -> tuple[int, str]:
        """Fallback without ``dir_fd``: resolve, check, open, and check the opened file again."""
        real = os.path.realpath(os.path.join(self.path, *parts))
        relative = self._inside(real, "/".join(parts))
        info = os.stat(real)
        if directory and not stat.S_ISDIR(info.st_mode):
            raise ToolError(f"{relative!r} is not a folder")
        if not directory and not stat.S_ISREG(info.st_mode):
            raise ToolError(f"{relative!r} is not a regular file ({_kind(info.st_mode)})")
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        if not os.path.samestat(os.fstat(fd), info):
            os.close(fd)
            raise ToolError(f"{relative!r} changed while it was being opened")
        return fd, relative.replace(os.sep, "/")

    # -- the tools -------------------------------------------------------------------------

    def read(self, path: str, offset: int = 0) -> str:
        """Read a text file inside the configured folder.

        Large files come in pieces: the answer says which bytes it shows and the offset to
        ask for next. Binary files are reported, not shown.

        Args:
            path: the file's path relative to the folder, e.g. "notes/todo.md"
            offset: the byte to start at (0 = the beginning)
        """
        if offset < 0:
            raise ToolError("offset must be 0 or more")
        fd, relative = self._open(path, directory=False)
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if offset > 0 and offset >= size:
                raise ToolError(
                    f"offset {offset} is past the end of {relative!r}, which has {size} bytes"
                )
            try:
                handle.seek(offset)
                data = handle.read(self.max_read_bytes)
            except OSError as exc:
                raise ToolError(f"cannot read {relative!r}: {_reason(exc)}") from None
        if offset > 0:  # a piece may start inside a multi-byte character: skip its tail
            skip = 0
            while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
                skip += 1
            data, offset = data[skip:], offset + skip
        if b"\x00" in data[:_BINARY_SNIFF]:
            return f"{relative}: binary file ({size} bytes), not shown"
        text = _decode(data, complete=offset + len(data) >= size)
        if text is None:
            return f"{relative}: binary file ({size} bytes, not UTF-8 text), not shown"
        end = offset + len(data)
        if offset == 0 and end >= size:
            return text
        more = f"; call again with offset={end} for more" if end < size else ""
        return f"{text}\n[{relative}: bytes {offset}-{end} of {size}{more}]"

    def list(self, path: str = ".") -> dict[str, Any]:
        """List a folder inside the configured folder: names, kinds and sizes.

        Args:
            path: the folder relative to the configured folder ("." for the folder itself)
        """
        fd, relative = self._open(path, directory=True)
        entries: list[dict[str, Any]] = []
        total = 0
        try:
            with os.scandir(fd) as scan:
                for entry in scan:
                    total += 1
                    if len(entries) >= self.max_entries:
                        continue
                    info = entry.stat(follow_symlinks=False)
                    item: dict[str, Any] = {"name": entry.name, "type": _kind(info.st_mode)}
                    if stat.S_ISREG(info.st_mode):
                        item["size"] = info.st_size
                    entries.append(item)
        except OSError as exc:
            raise ToolError(f"cannot list {relative!r}: {_reason(exc)}") from None
        finally:
            os.close(fd)
        entries.sort(key=lambda item: (item["type"] != "folder", item["name"]))
        listing: dict[str, Any] = {"path": relative, "entries": entries}
        if total > len(entries):
            listing["truncated"] = f"showing {len(entries)} of {total} entries"
        return listing


def _reason(exc: OSError) -> str:
    """Why an operating-system call failed, in words (never the raw ``[Errno N]`` form)."""
    if exc.errno == errno.ENAMETOOLONG:
        return "a name in the path is too long for the file system (most allow 255 bytes)"
    return (exc.strerror or type(exc).__name__).lower()


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


def _decode(data: bytes, *, complete: bool) -> str | None:
    """UTF-8 text, or ``None`` for binary; a character cut at the end of a piece is dropped."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    head = text[:_BINARY_SNIFF]
    controls = sum(1 for char in head if ord(char) < 32 and char not in "\t\n\r\f\v\x1b")
    return None if controls > len(head) // 10 + 1 else text


def make_file_tools(
    root: str | os.PathLike[str], *, max_read_bytes: int = 65_536, max_entries: int = MAX_ENTRIES
) -> list[Tool]:
    """``read_file`` and ``list_files`` confined to ``root`` (which must be an existing folder)."""
    files = FileRoot.create(root, max_read_bytes=max_read_bytes, max_entries=max_entries)
    return [
        Tool(files.read, name="read_file", timeout=10.0, max_output_chars=max_read_bytes + 500),
        Tool(files.list, name="list_files", timeout=10.0, max_output_chars=100_000),
    ]


def _from_settings(settings: Settings) -> list[Tool]:
    if not settings.file_root:
        raise UserError(
            "the file tools are off: set file_root (CHAT_SHELL_FILE_ROOT or `file_root` in "
            "config.toml) to the folder they may read"
        )
    return make_file_tools(settings.file_root, max_read_bytes=settings.file_max_bytes)


def read_file_tool(settings: Settings) -> Tool:
    """Entry point of ``read_file``: needs ``file_root``."""
    return _from_settings(settings)[0]


def list_files_tool(settings: Settings) -> Tool:
    """Entry point of ``list_files``: needs ``file_root``."""
    return _from_settings(settings)[1]

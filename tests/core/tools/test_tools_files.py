"""read_file / list_files: confined to the root against crafted paths, symlinks and races."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from chat_shell import Settings, Tool, ToolError, ToolRegistry, UserError
from chat_shell.tools import _files, make_file_tools

SECRET = "TOP SECRET"

pytestmark = pytest.mark.skipif(not _files._SAFE_OPEN, reason="needs dir_fd and O_NOFOLLOW")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "inner.txt").write_text(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello world\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("inner text")
    (root / "sub" / "deeper").mkdir()
    (root / "sub" / "deeper" / "note.md").write_text("# note")
    (root / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (root / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "big.txt").write_text("0123456789" * 1000)
    (root / "link_in").symlink_to("hello.txt")
    (root / "link_dir_in").symlink_to("sub")
    (root / "link_abs_in").symlink_to(root / "hello.txt")
    (root / "sub" / "link_up_in").symlink_to("../hello.txt")
    (root / "link_out").symlink_to("../outside/secret.txt")
    (root / "link_out_abs").symlink_to(outside / "secret.txt")
    (root / "link_dir_out").symlink_to("../outside")
    (root / "link_dir_out_abs").symlink_to(outside)
    (root / "link_etc").symlink_to("/etc")
    (root / "link_parent").symlink_to("..")
    (root / "link_self_root").symlink_to(".")
    (root / "sub" / "up").symlink_to("../../outside")
    (root / "sub" / "up_twice").symlink_to("../link_dir_out")
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "devnull").symlink_to("/dev/null")
    (root / "proc").symlink_to("/proc/self/root")
    (root / "dangling").symlink_to("nowhere")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def tools(tree: Path) -> dict[str, Tool]:
    return {t.name: t for t in make_file_tools(tree, max_read_bytes=4_096)}


ESCAPES = [
    "../outside/secret.txt",
    "..",
    "../",
    "./..",
    "sub/../../outside/secret.txt",
    "sub/../hello.txt",
    "sub/deeper/../../../outside/secret.txt",
    "sub//..//..//outside/secret.txt",
    "sub/./../../outside/secret.txt",
    "hello.txt/..",
    " ../outside/secret.txt",
    "..\\outside\\secret.txt",
    "sub\\..\\..\\outside\\secret.txt",
    "/etc/passwd",
    "//etc/passwd",
    "/",
    "\\",
    "\\etc\\passwd",
    "\\\\server\\share\\secret.txt",
    "C:\\Windows\\win.ini",
    "C:/Windows/win.ini",
    "c:secret.txt",
    "~",
    "~/secret.txt",
    "~root/.ssh/id_rsa",
    "/proc/self/root/etc/passwd",
    "/dev/zero",
    "hello.txt\x00.png",
    "\x00",
    "%2e%2e/outside/secret.txt",
    "..%2foutside%2fsecret.txt",
    "\uff0e\uff0e/outside/secret.txt",
    "..\u2215outside\u2215secret.txt",
    "link_out",
    "link_out_abs",
    "link_dir_out/secret.txt",
    "link_dir_out_abs/secret.txt",
    "link_etc/passwd",
    "link_etc/hostname",
    "link_parent/outside/secret.txt",
    "link_parent",
    "link_self_root/link_parent/outside/secret.txt",
    "sub/up/secret.txt",
    "sub/up_twice/secret.txt",
    "link_dir_in/up/secret.txt",
    "link_dir_in/../outside/secret.txt",
    "loop1",
    "loop2/x",
    "devnull",
    "proc/etc/passwd",
    "fifo",
    "dangling",
    "hello.txt/x",
    "missing.txt",
    "a" * 2_000,
    "sub/" * 300 + "x",
]


def test_there_are_enough_escape_paths() -> None:
    assert len(ESCAPES) >= 50


@pytest.mark.parametrize("path", ESCAPES)
async def test_read_file_refuses_escapes(tools: dict[str, Tool], path: str) -> None:
    with pytest.raises(ToolError) as caught:
        await tools["read_file"].run({"path": path})
    assert SECRET not in caught.value.message


@pytest.mark.parametrize("path", ESCAPES)
async def test_list_files_refuses_escapes(tools: dict[str, Tool], path: str) -> None:
    try:
        listing = await tools["list_files"].run({"path": path})
    except ToolError:
        return
    # Only paths that really are folders inside the root may list.
    assert path in ("link_self_root",), listing


async def test_reads_files_and_symlinks_that_stay_inside(tools: dict[str, Tool]) -> None:
    read = tools["read_file"]
    assert await read.run({"path": "hello.txt"}) == "hello world\n"
    assert await read.run({"path": "./sub/inner.txt"}) == "inner text"
    assert await read.run({"path": "sub/deeper/note.md"}) == "# note"
    assert await read.run({"path": "link_in"}) == "hello world\n"
    assert await read.run({"path": "link_abs_in"}) == "hello world\n"
    assert await read.run({"path": "link_dir_in/inner.txt"}) == "inner text"
    assert await read.run({"path": "sub/link_up_in"}) == "hello world\n"


async def test_binary_files_are_reported_not_dumped(tools: dict[str, Tool]) -> None:
    text = await tools["read_file"].run({"path": "binary.bin"})
    assert text == "binary.bin: binary file (1024 bytes), not shown"
    latin = await tools["read_file"].run({"path": "latin1.txt"})
    assert "not UTF-8" in latin


async def test_big_files_come_in_capped_pieces(tools: dict[str, Tool]) -> None:
    first = await tools["read_file"].run({"path": "big.txt"})
    assert first.startswith("0123456789")
    assert "[big.txt: bytes 0-4096 of 10000; call again with offset=4096 for more]" in first
    last = await tools["read_file"].run({"path": "big.txt", "offset": 8192})
    assert "bytes 8192-10000 of 10000]" in last
    assert "offset=" not in last


async def test_negative_offsets_are_refused(tools: dict[str, Tool]) -> None:
    with pytest.raises(ToolError, match="offset"):
        await tools["read_file"].run({"path": "big.txt", "offset": -1})


@pytest.mark.parametrize(
    ("path", "size", "offset"),
    [
        ("big.txt", 10_000, 10_000),
        ("big.txt", 10_000, 10_001),
        ("big.txt", 10_000, 1_000_000),
        ("big.txt", 10_000, 2**63),
        ("big.txt", 10_000, 10**30),
        ("hello.txt", 12, 12),
        ("empty.txt", 0, 1),
    ],
)
async def test_offsets_past_the_end_are_refused(
    tools: dict[str, Tool], tree: Path, path: str, size: int, offset: int
) -> None:
    (tree / "empty.txt").touch()
    with pytest.raises(ToolError) as caught:
        await tools["read_file"].run({"path": path, "offset": offset})
    assert caught.value.message == (
        f"offset {offset} is past the end of {path!r}, which has {size} bytes"
    )


async def test_offsets_up_to_the_last_byte_read(tools: dict[str, Tool], tree: Path) -> None:
    (tree / "empty.txt").touch()
    read = tools["read_file"]
    assert await read.run({"path": "big.txt", "offset": 9_999}) == (
        "9\n[big.txt: bytes 9999-10000 of 10000]"
    )
    assert await read.run({"path": "empty.txt"}) == ""
    assert await read.run({"path": "empty.txt", "offset": 0}) == ""


# Paths the file system itself refuses (the checks before the disk let them through).
OS_REFUSED = {
    "name of 300 characters": "a" * 300,
    "name of 256 bytes": "b" * 256,
    "two-byte characters, 256 bytes": "\u00e9" * 128,
    "four-byte characters, 256 bytes": "\U0001f600" * 64,
    "long name below a folder": "sub/" + "c" * 300,
    "long name above a file": "d" * 300 + "/hello.txt",
    "long name through a symlink": "long_link",
    "long name in a symlinked folder": "link_dir_in/" + "e" * 300,
}
# Paths refused before the disk, with their own message.
PRE_REFUSED = {
    "path of 1025 characters": ("f/" * 512 + "g", "the path is too long"),
    "NUL alone": ("\x00", "NUL"),
    "NUL at the end": ("hello.txt\x00", "NUL"),
    "NUL at the start": ("\x00hello.txt", "NUL"),
    "NUL in a folder name": ("sub\x00/inner.txt", "NUL"),
    "high surrogate": ("\ud800", "unpaired surrogate"),
    "low surrogate in a name": ("sub/\udfff.txt", "unpaired surrogate"),
}


@pytest.mark.parametrize("tool_name", ["read_file", "list_files"])
@pytest.mark.parametrize("path", list(OS_REFUSED.values()), ids=list(OS_REFUSED))
async def test_names_the_file_system_refuses_are_clear_tool_errors(
    tools: dict[str, Tool], tree: Path, tool_name: str, path: str
) -> None:
    (tree / "long_link").symlink_to("h" * 300)
    with pytest.raises(ToolError) as caught:
        await tools[tool_name].run({"path": path})
    message = caught.value.message
    assert message == (
        f"cannot open {path!r}: a name in the path is too long for the file system"
        " (most allow 255 bytes)"
    )
    assert str(tree) not in message


@pytest.mark.parametrize("tool_name", ["read_file", "list_files"])
@pytest.mark.parametrize("case", list(PRE_REFUSED.values()), ids=list(PRE_REFUSED))
async def test_paths_no_file_system_takes_are_clear_tool_errors(
    tools: dict[str, Tool], tool_name: str, case: tuple[str, str]
) -> None:
    path, expected = case
    with pytest.raises(ToolError, match=expected) as caught:
        await tools[tool_name].run({"path": path})
    assert "Errno" not in caught.value.message


async def test_the_longest_names_the_file_system_takes_are_looked_up(
    tools: dict[str, Tool], tree: Path
) -> None:
    (tree / ("i" * 255)).write_text("long name")
    assert await tools["read_file"].run({"path": "i" * 255}) == "long name"
    with pytest.raises(ToolError, match="does not exist"):
        await tools["read_file"].run({"path": "j" * 255})


UNEXPECTED = [
    errno.EACCES,
    errno.EPERM,
    errno.EIO,
    errno.ELOOP,
    errno.EOVERFLOW,
    errno.EILSEQ,
    errno.EINVAL,
    errno.ESTALE,
    errno.ENOMEM,
    errno.ENAMETOOLONG,
]


@pytest.mark.parametrize("call", ["stat", "open"])
@pytest.mark.parametrize("code", UNEXPECTED, ids=[errno.errorcode[c] for c in UNEXPECTED])
async def test_any_os_error_of_the_walk_is_a_clear_tool_error(
    tools: dict[str, Tool], tree: Path, monkeypatch: pytest.MonkeyPatch, call: str, code: int
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), str(tree / "sub"))

    monkeypatch.setattr(_files, f"_{call}", fail)
    for tool_name in ("read_file", "list_files"):
        with pytest.raises(ToolError) as caught:
            await tools[tool_name].run({"path": "sub/inner.txt"})
        message = caught.value.message
        assert message.startswith("cannot open 'sub/inner.txt': ")
        assert "Errno" not in message
        assert str(tree) not in message


async def test_a_root_removed_after_start_is_a_clear_tool_error(
    tools: dict[str, Tool], tree: Path
) -> None:
    shutil.rmtree(tree)
    for tool_name in ("read_file", "list_files"):
        with pytest.raises(ToolError) as caught:
            await tools[tool_name].run({"path": "hello.txt"})
        assert caught.value.message == "cannot open 'hello.txt': no such file or directory"


async def test_list_files(tools: dict[str, Tool]) -> None:
    import json

    listing = json.loads(await tools["list_files"].run({}))
    assert listing["path"] == "."
    kinds = {entry["name"]: entry["type"] for entry in listing["entries"]}
    assert kinds["sub"] == "folder"
    assert kinds["hello.txt"] == "file"
    assert kinds["link_out"] == "symlink"
    assert kinds["fifo"] == "fifo"
    sizes = {e["name"]: e.get("size") for e in listing["entries"]}
    assert sizes["hello.txt"] == 12
    nested = json.loads(await tools["list_files"].run({"path": "link_dir_in/deeper"}))
    note = {"name": "note.md", "type": "file", "size": 6}
    assert nested == {"path": "sub/deeper", "entries": [note]}


async def test_list_files_caps_the_entries(tree: Path) -> None:
    many = tree / "many"
    many.mkdir()
    for index in range(30):
        (many / f"f{index:02}").write_text("x")
    _, list_files = make_file_tools(tree, max_entries=10)
    import json

    listing = json.loads(await list_files.run({"path": "many"}))
    assert len(listing["entries"]) == 10
    assert listing["truncated"] == "showing 10 of 30 entries"


def _swap_after_stat(monkeypatch: pytest.MonkeyPatch, name: str, swap: Any) -> list[str]:
    """Run ``swap()`` right after the tool has checked ``name`` and before it opens it."""
    real_stat = os.stat
    swapped: list[str] = []

    def stat_then_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_stat(path, *args, **kwargs)
        if path == name and not swapped:
            swap()
            swapped.append(name)
        return result

    monkeypatch.setattr(_files, "_stat", stat_then_swap)
    return swapped


async def test_a_folder_swapped_for_a_symlink_during_the_call_is_refused(
    tools: dict[str, Tool], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (tree / "sub").rename(tree / "sub_moved")
        (tree / "sub").symlink_to(tree.parent / "outside")

    swapped = _swap_after_stat(monkeypatch, "sub", swap)
    with pytest.raises(ToolError, match="changed while it was being opened"):
        await tools["read_file"].run({"path": "sub/inner.txt"})
    assert swapped == ["sub"]


async def test_a_file_swapped_for_a_symlink_during_the_call_is_refused(
    tools: dict[str, Tool], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (tree / "hello.txt").unlink()
        (tree / "hello.txt").symlink_to(tree.parent / "outside" / "secret.txt")

    _swap_after_stat(monkeypatch, "hello.txt", swap)
    with pytest.raises(ToolError, match="changed while it was being opened"):
        await tools["read_file"].run({"path": "hello.txt"})


async def test_a_file_swapped_for_a_fifo_during_the_call_is_refused(
    tools: dict[str, Tool], tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def swap() -> None:
        (tree / "hello.txt").unlink()
        os.mkfifo(tree / "hello.txt")

    _swap_after_stat(monkeypatch, "hello.txt", swap)
    with pytest.raises(ToolError, match="changed while it was being opened"):
        await tools["read_file"].run({"path": "hello.txt"})


async def test_a_symlink_flipping_in_another_thread_never_leaks(
    tools: dict[str, Tool], tree: Path
) -> None:
    flip = tree / "flip"
    inside, outside = tree / "sub", tree.parent / "outside"
    flip.symlink_to(inside)
    stop = threading.Event()

    def flipper() -> None:
        target = outside
        while not stop.is_set():
            tmp = tree / "flip.tmp"
            tmp.symlink_to(target)
            tmp.replace(flip)
            target = inside if target == outside else outside

    thread = threading.Thread(target=flipper)
    thread.start()
    outcomes = {"read": 0, "refused": 0}
    try:
        for _ in range(300):
            try:
                text = await tools["read_file"].run({"path": "flip/inner.txt"})
            except ToolError as exc:
                refusal = exc.message
                outcomes["refused"] += 1
                assert SECRET not in refusal
            else:
                assert text == "inner text"
                outcomes["read"] += 1
    finally:
        stop.set()
        thread.join()
    assert sum(outcomes.values()) == 300


def test_file_tools_are_off_unless_a_root_is_configured(tree: Path) -> None:
    registry = ToolRegistry.default(Settings())
    assert "read_file" not in registry.select()
    with pytest.raises(UserError, match="file_root"):
        registry.select(["read_file"])
    configured = ToolRegistry.default(Settings(file_root=str(tree), file_max_bytes=100))
    chosen = configured.select(["read_file", "list_files"])
    assert set(chosen) == {"read_file", "list_files"}


def test_a_missing_root_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an existing folder"):
        make_file_tools(tmp_path / "nope")

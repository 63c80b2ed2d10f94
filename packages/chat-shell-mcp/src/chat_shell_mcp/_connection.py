"""One running MCP server: a process over stdio or a streamable-HTTP session, held by its own task.

The SDK's client is an async context manager whose task group must be entered and left in one
task, so a connection owns a task that enters it, reports ready, and waits to be told to stop.
Calls are made from the agent's tasks. Leaving the context stops the process (the SDK closes
its stdin, then terminates and kills its whole process tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from chat_shell import ToolError

from ._config import McpServerConfig

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client

__all__ = ["Connection", "ServerGone"]

logger = logging.getLogger("chat_shell.mcp")

# How long stopping may take: the SDK's own grace period to exit, then kill, is shorter.
_STOP_TIMEOUT = 10.0


class ServerGone(ToolError):
    """The server stopped (crashed, exited, or its connection broke) during a request."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        if inner:
            return _describe(inner[0])
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_transport_failure(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection itself is gone (a closed pipe, a refused socket)."""
    import anyio

    kinds: tuple[type[BaseException], ...] = (
        OSError,
        EOFError,
        anyio.ClosedResourceError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
    )
    try:
        import httpx2

        kinds = (*kinds, httpx2.TransportError)
    except ImportError:  # pragma: no cover — the SDK's HTTP client
        pass
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_transport_failure(inner) for inner in exc.exceptions)
    return isinstance(exc, kinds)


class Connection:
    """An MCP server as one of its users sees it: ``start``, ``list_tools``, ``call_tool``,
    ``stop``. ``state`` is ``stopped``, ``starting``, ``running`` or ``failed`` (``error``
    says why); a connection that failed or stopped starts again on the next ``start``."""

    def __init__(
        self,
        name: str,
        config: McpServerConfig,
        *,
        on_tools_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.state = "stopped"
        self.error: str | None = None
        self._on_tools_changed = on_tools_changed
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # -- starting and stopping -----------------------------------------------------------------

    def _make_client(self) -> Client:
        from mcp import Client, StdioServerParameters

        config = self.config
        if config.command is not None:
            target: Any = StdioServerParameters(
                command=config.command,
                args=list(config.args),
                env=dict(config.env) or None,
                cwd=config.cwd,
            )
        else:
            assert config.url is not None
            target = config.url
            if config.headers:
                from mcp.client.streamable_http import streamable_http_client
                from mcp.shared._httpx_utils import create_mcp_http_client

                http = create_mcp_http_client(headers=dict(config.headers))
                target = streamable_http_client(config.url, http_client=http)
        return Client(target, message_handler=self._message, cache=None)

    async def _message(self, message: Any) -> None:
        import mcp_types

        if isinstance(message, mcp_types.ToolListChangedNotification) and self._on_tools_changed:
            task = asyncio.ensure_future(self._on_tools_changed())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _hold(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        try:
            async with self._make_client() as client:
                self._client = client
                self.state = "running"
                if not ready.done():
                    ready.set_result(None)
                watcher = self._watch_tools(client)
                try:
                    await stop.wait()
                finally:
                    if watcher is not None:
                        watcher.cancel()
                        with contextlib.suppress(BaseException):
                            await watcher
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            elif not stop.is_set():
                self._failed(_describe(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self._client = None
            if self.state == "running":
                self.state = "stopped"

    def _watch_tools(self, client: Client) -> asyncio.Task[None] | None:
        """On a 2026-era connection changes come through a ``subscriptions/listen`` stream
        (older servers send ``notifications/tools/list_changed``, seen by ``_message``)."""
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        capability = client.server_capabilities.tools
        if (
            self._on_tools_changed is None
            or client.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or capability is None
            or not capability.list_changed
        ):
            return None
        on_change = self._on_tools_changed

        async def watch() -> None:
            try:
                async with client.listen(tools_list_changed=True) as subscription:
                    async for _event in subscription:
                        await on_change()
            except Exception as exc:
                logger.debug("MCP server %s: no more tool-list changes: %s", self.name, exc)

        return asyncio.ensure_future(watch())

    def _failed(self, why: str) -> None:
        self.state = "failed"
        self.error = why
        logger.warning("MCP server %s: %s", self.name, why)

    async def start(self) -> None:
        """Start the server (if it is not running) within ``startup_timeout``; ``ToolError``
        says why it could not."""
        async with self._lock:
            if self.state == "running" and self._task is not None and not self._task.done():
                return
            await self._stop_task()
            self.state, self.error = "starting", None
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            self._stop = stop = asyncio.Event()
            self._task = loop.create_task(self._hold(ready, stop), name=f"mcp-server-{self.name}")
            try:
                async with asyncio.timeout(self.config.startup_timeout):
                    await asyncio.shield(ready)
            except TimeoutError:
                await self._stop_task()
                why = f"did not start within {self.config.startup_timeout:g} s"
                self._failed(why)
                raise ToolError(f"MCP server {self.name} {why}") from None
            except asyncio.CancelledError:
                await self._stop_task()
                self.state = "stopped"
                raise
            except Exception as exc:
                await self._stop_task()
                why = f"could not start: {_describe(exc)}"
                self._failed(why)
                raise ToolError(f"MCP server {self.name} {why}") from None

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._stop is not None:
            self._stop.set()
        if not task.done():
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
            except BaseException:  # noqa: S110 — its failure was recorded by _hold
                pass
        with contextlib.suppress(BaseException):
            await task

    async def stop(self) -> None:
        """Stop the server and wait until it has (bounded); safe to call more than once."""
        for task in list(self._background):
            task.cancel()
        async with self._lock:
            await self._stop_task()
            if self.state != "failed":
                self.state = "stopped"

    # -- requests ------------------------------------------------------------------------------

    def _running(self) -> Client:
        client = self._client
        if client is None or self.state != "running":
            raise ServerGone(f"MCP server {self.name} is not running")
        return client

    async def list_tools(self) -> list[mcp_types.Tool]:
        """Every tool the server offers (all pages)."""
        client = self._running()
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose pages never end cannot hang us
            page = await self._request(client.list_tools(cursor=cursor))
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> mcp_types.CallToolResult:
        client = self._running()
        result: mcp_types.CallToolResult = await self._request(client.call_tool(name, arguments))
        return result

    async def _request(self, request: Awaitable[Any]) -> Any:
        from mcp import MCPError

        try:
            return await request
        except MCPError as exc:
            if self._client is None or self._broken(exc):
                await self._gone(str(exc))
            raise ToolError(f"MCP server {self.name}: {exc}") from None
        except (asyncio.CancelledError, ToolError):
            raise
        except Exception as exc:
            if self._client is None or _is_transport_failure(exc):
                await self._gone(_describe(exc))
            # the server answered, but not as the protocol says: this call fails, it stays up
            raise ToolError(f"MCP server {self.name}: {_describe(exc)}") from None

    @staticmethod
    def _broken(exc: Exception) -> bool:
        from mcp_types import CONNECTION_CLOSED

        return getattr(exc, "code", None) == CONNECTION_CLOSED

    async def _gone(self, why: str) -> None:
        """The connection broke under a request: stop what is left of it, say so."""
        self._failed(f"stopped unexpectedly ({why})")
        with contextlib.suppress(Exception):
            async with self._lock:
                await self._stop_task()
        self.state = "failed"
        raise ServerGone(
            f"MCP server {self.name} stopped unexpectedly ({why}); it is started again on the "
            "next call"
        )

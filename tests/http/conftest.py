"""Fixtures: the scripted model upstream and a real uvicorn server on a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chat_shell.testing import ScriptedModelServer
from http_support import ThreadServer, make_settings, responder


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=responder) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    upstream: ScriptedModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadServer]:
    home = tmp_path_factory.mktemp("server")
    settings = make_settings(upstream.url, home, rate_limit_per_minute=0)
    running = ThreadServer(settings).start()
    yield running
    running.stop()

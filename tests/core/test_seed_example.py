"""The package-mode example of chat-shell's original design runs as written.

Only two things differ from the original text: the import path (``chat_shell``) and the model
name, which names the scripted server the test runs instead of a real provider's model.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from chat_shell import DirectChatInterface, EventType, InterfaceConfig, TextChunk
from chat_shell.testing import FakeModel, Reply, ScriptedModelServer

SEED_EXAMPLE = """\
from chat_shell import DirectChatInterface, InterfaceConfig

config = InterfaceConfig(model="openai/scripted", temperature=0.7)
interface = DirectChatInterface(config)
await interface.initialize()

async for chunk in interface.stream_chat("Tell me a story"):
    print(chunk.chunk, end="")
"""

# The example is written as at an async prompt (top-level await), so it runs as such.
RUN_AT_ASYNC_PROMPT = (
    "import ast, asyncio, sys; "
    "code = compile(sys.stdin.read(), 'seed-example', 'exec', "
    "flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT); "
    "asyncio.run(eval(code, {'__name__': '__main__'}))"
)


def test_the_seed_example_runs_verbatim(tmp_path: object) -> None:
    with ScriptedModelServer() as server:
        server.add(Reply.text("Once upon a time, a shell learned to talk."))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CHAT_SHELL_", "OPENAI_"))},
            "OPENAI_BASE_URL": server.url,
            "OPENAI_API_KEY": "sk-seed-example",
            "CHAT_SHELL_HOME": str(tmp_path),
        }
        result = subprocess.run(
            [sys.executable, "-c", RUN_AT_ASYNC_PROMPT],
            input=SEED_EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Once upon a time, a shell learned to talk."
    assert server.requests[0]["temperature"] == 0.7


@pytest.fixture
async def chat() -> AsyncIterator[DirectChatInterface]:
    model = FakeModel(Reply.text("one two three"))
    async with DirectChatInterface(InterfaceConfig(model=model)) as chat:
        yield chat


async def test_chunks_are_the_text_itself(chat: DirectChatInterface) -> None:
    chunks = [chunk async for chunk in chat.stream_chat("count")]
    # today's use: a chunk is a str, printed, joined and compared as one
    assert "".join(chunks) == "one two three"
    assert chunks == ["one", " two", " three"]
    assert all(isinstance(chunk, str) for chunk in chunks)
    assert f"{chunks[1]}|" == " two|"
    # the seed's use: .chunk is the same text, a plain str
    assert [chunk.chunk for chunk in chunks] == ["one", " two", " three"]
    assert all(type(chunk.chunk) is str for chunk in chunks)


async def test_a_chunk_carries_the_event_it_came_from(chat: DirectChatInterface) -> None:
    stream = chat.stream_chat("count")
    chunks = [chunk async for chunk in stream]
    events = [event async for event in stream.events()]
    content = [event for event in events if event.event_type is EventType.CONTENT]
    assert [chunk.event for chunk in chunks] == content
    assert {chunk.event.session_id for chunk in chunks} == {stream.session_id}
    assert [chunk.event.seq for chunk in chunks] == sorted(chunk.event.seq for chunk in chunks)


async def test_a_chunk_survives_copy_and_pickle(chat: DirectChatInterface) -> None:
    chunk = await anext(aiter(chat.stream_chat("count")))
    for twin in (copy.copy(chunk), copy.deepcopy(chunk), pickle.loads(pickle.dumps(chunk))):
        assert isinstance(twin, TextChunk)
        assert twin == chunk == "one"
        assert twin.event == chunk.event

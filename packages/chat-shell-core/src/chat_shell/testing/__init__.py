"""Test doubles for chat-shell users and for its own tests.

- ``ScriptedModelServer``: an OpenAI-compatible server on 127.0.0.1 answering from a script of
  ``Reply`` objects (or ``Recording`` objects: raw answers, such as real servers' recorded
  streams, replayed byte for byte); the real HTTP client code (ours or litellm's) talks to it.
- ``ScriptedOllamaServer``: the same scripts through Ollama's native ``/api/chat`` (NDJSON).
- ``FakeModel`` / ``FunctionModel``: in-process model backends for unit tests.
- ``StorageConformance``: the storage conformance suite (needs pytest and pytest-asyncio).
- ``RunStoreSuite``: the run-store conformance suite (the same).
"""

from typing import TYPE_CHECKING, Any

from ._fakes import FakeModel, FunctionModel
from ._ollama import ScriptedOllamaServer
from ._recording import Recording
from ._script import Reply, ScriptedToolCall, reply_chunks
from ._server import ScriptedModelServer, default_responder

if TYPE_CHECKING:
    from ._run_store_suite import RunStoreSuite
    from ._storage_suite import StorageConformance

__all__ = [
    "FakeModel",
    "FunctionModel",
    "Recording",
    "Reply",
    "RunStoreSuite",
    "ScriptedModelServer",
    "ScriptedOllamaServer",
    "ScriptedToolCall",
    "StorageConformance",
    "default_responder",
    "reply_chunks",
]


def __getattr__(name: str) -> Any:
    if name == "StorageConformance":  # imports pytest, so only on demand
        from ._storage_suite import StorageConformance

        return StorageConformance
    if name == "RunStoreSuite":
        from ._run_store_suite import RunStoreSuite

        return RunStoreSuite
    raise AttributeError(name)

"""Package mode in a few lines: a tool, a streamed answer.

Run it from a checkout with ``make quickstart`` (ask your own question with
``make quickstart ARGS="What is 7 * 191?"``), or with ``python examples/quickstart.py [QUESTION]``
where the packages are installed (``source .venv/bin/activate`` after ``make install``).

It uses the configured model (``CHAT_SHELL_MODEL`` or ``config.toml``, default
openai/gpt-4o-mini, with ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL``). When that model cannot be
called as configured (no credentials), it talks to chat-shell's scripted demo model on 127.0.0.1
instead, so the example runs anywhere.
"""

from __future__ import annotations

import asyncio
import os
import sys

from chat_shell import (
    DirectChatInterface,
    InterfaceConfig,
    ModelRouter,
    UserError,
    load_settings,
)
from chat_shell.testing import ScriptedModelServer


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


async def main(question: str, model: str | None = None) -> None:
    async with DirectChatInterface(InterfaceConfig(model=model, tools=[multiply])) as chat:
        async for text in chat.stream_chat(question):
            print(text, end="", flush=True)
        print()


def configured_model_problem() -> str | None:
    """Why the configured model cannot be called (missing credentials, …), or None."""
    settings = load_settings()
    try:
        ModelRouter(settings).resolve(settings.model)
    except UserError as exc:
        return exc.message
    return None


if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "What is 123 * 456?"
    problem = configured_model_problem()
    if problem is None:
        asyncio.run(main(question))
    else:
        print(f"The configured model cannot be used ({problem}).", file=sys.stderr)
        print("Using chat-shell's scripted demo model on 127.0.0.1 instead.\n", file=sys.stderr)
        with ScriptedModelServer() as demo:
            os.environ["OPENAI_BASE_URL"] = demo.url
            if question == "What is 123 * 456?":
                question = 'call multiply {"a": 123, "b": 456}'  # the demo model's tool syntax
            asyncio.run(main(question, model="openai/demo"))

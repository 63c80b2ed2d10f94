"""Package mode in a few lines — the README's example, runnable with `make run`.

Uses the configured model (CHAT_SHELL_MODEL, default openai/gpt-4o-mini, with OPENAI_API_KEY or
OPENAI_BASE_URL). With no credentials at all it talks to chat-shell's scripted demo model on
127.0.0.1, so the example runs anywhere.
"""

from __future__ import annotations

import asyncio
import os
import sys

from chat_shell import DirectChatInterface, InterfaceConfig
from chat_shell.testing import ScriptedModelServer


def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


async def main(question: str) -> None:
    async with DirectChatInterface(InterfaceConfig(tools=[multiply])) as chat:
        async for text in chat.stream_chat(question):
            print(text, end="", flush=True)
        print()


if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "What is 123 * 456?"
    credentials = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "CHAT_SHELL_MODEL")
    if any(os.environ.get(name) for name in credentials):
        asyncio.run(main(question))
    else:
        print("No model configured: using the scripted demo model on 127.0.0.1.", file=sys.stderr)
        print("Set OPENAI_API_KEY (or CHAT_SHELL_MODEL) to talk to a real one.\n", file=sys.stderr)
        with ScriptedModelServer() as demo:
            os.environ["OPENAI_BASE_URL"] = demo.url
            if question == "What is 123 * 456?":
                question = 'call multiply {"a": 123, "b": 456}'  # the demo model's tool syntax
            asyncio.run(main(question))

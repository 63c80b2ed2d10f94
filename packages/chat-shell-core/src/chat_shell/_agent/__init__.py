"""The agent: the loop that turns one user message into model calls and tool calls (``loop``);
its runs live in ``chat_shell._runs``."""
